//! Checking a log (审计核验): every line's hash, every link, every seq; all breaks listed.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use super::chain::{Kind, LineError, genesis, parse_line};
use super::{Algorithm, AuditError};

/// Breaks listed in full; the rest are only counted.
const MAX_BREAKS: usize = 100;
/// Gaps named in the summary line.
const MAX_GAPS_SHOWN: usize = 10;

/// What kind of break (断链) a line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The line's hash does not match its content: the record was edited.
    Changed,
    /// Records are missing before the line (its `prev` does not match and its seq jumps).
    Removed,
    /// The line's seq is not greater than the one before: lines were moved or copied.
    Reordered,
    /// Not a complete JSON record: an interrupted write, or damage.
    Torn,
    /// JSON, but not a record of this format (missing members, bad types, unknown algorithm).
    Malformed,
    /// `prev` does not match the line before although no seq is missing: a record was replaced.
    BrokenLink,
}

impl BreakKind {
    fn label(self) -> &'static str {
        match self {
            BreakKind::Changed => "changed",
            BreakKind::Removed => "removed",
            BreakKind::Reordered => "reordered",
            BreakKind::Torn => "torn",
            BreakKind::Malformed => "malformed",
            BreakKind::BrokenLink => "broken link",
        }
    }
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// 1-based line number.
    pub line: usize,
    /// The line's seq, when it has one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub kind: BreakKind,
    /// What happened, for the operator.
    pub detail: String,
}

/// A gap record (缺失记录) found in the log: records the gateway itself had to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapSeen {
    /// 1-based line number of the gap record.
    pub line: usize,
    /// Records lost.
    pub lost: u64,
    /// Earliest time of a lost record.
    pub since: DateTime<Utc>,
    /// Latest time of a lost record.
    pub until: DateTime<Utc>,
}

/// The result of [`verify`] (核验报告).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The file checked.
    pub path: PathBuf,
    /// Lines that hold a well-formed record (whether or not it verifies).
    pub records: u64,
    /// Seq of the first record.
    pub first_seq: Option<u64>,
    /// Seq of the last record.
    pub last_seq: Option<u64>,
    /// Algorithms used, in order of first use.
    pub algorithms: Vec<Algorithm>,
    /// "start" records: how often the gateway opened the log.
    pub starts: u64,
    /// Gap records.
    pub gaps: Vec<GapSeen>,
    /// Breaks, at most 100.
    pub breaks: Vec<Break>,
    /// Breaks beyond those listed.
    pub more_breaks: u64,
    /// When the file begins after a rotation: the previous file's last record (seq, hash), as its
    /// first `start` record names it.
    pub continues: Option<(u64, String)>,
    /// The hash of the last record.
    pub last_hash: Option<String>,
}

impl VerifyReport {
    /// True when no line is broken (gaps are losses the log itself declares, not breaks).
    pub fn is_intact(&self) -> bool {
        self.breaks.is_empty() && self.more_breaks == 0
    }

    fn push(&mut self, line: usize, seq: Option<u64>, kind: BreakKind, detail: String) {
        if self.breaks.len() < MAX_BREAKS {
            self.breaks.push(Break { line, seq, kind, detail });
        } else {
            self.more_breaks += 1;
        }
    }
}

/// Whether `next` begins where `previous` ended: its first record is a rotation's `start` naming
/// the previous file's last seq and hash.
pub fn continues_from(next: &VerifyReport, previous: &VerifyReport) -> bool {
    match (&next.continues, previous.last_seq, &previous.last_hash) {
        (Some((seq, hash)), Some(last_seq), Some(last_hash)) => *seq == last_seq && hash == last_hash,
        _ => false,
    }
}

/// Checks the log at `path`. Errors only when the file cannot be read; damage is in the report.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let io = |source| AuditError::Io { path: path.display().to_string(), source };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut report = VerifyReport {
        path: path.to_owned(),
        records: 0,
        first_seq: None,
        last_seq: None,
        algorithms: Vec::new(),
        starts: 0,
        gaps: Vec::new(),
        breaks: Vec::new(),
        more_breaks: 0,
        continues: None,
        last_hash: None,
    };
    // The record the next one must link to: (line, seq, hash); none before the first record.
    let mut link: Option<(usize, u64, String)> = None;
    // Seqs reported missing: (from, to, line), to explain records found later out of place.
    let mut missing: Vec<(u64, u64, usize)> = Vec::new();
    let mut buf = Vec::new();
    for line in 1.. {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let record = match parse_line(text) {
            Ok(record) => record,
            // A line without its own seq and hash does not move the link: the next record is
            // checked against the last good one, so a torn line costs exactly one break.
            Err(LineError::Malformed { why, seq, hash }) => {
                report.push(line, seq, BreakKind::Malformed, why);
                if let (Some(seq), Some(hash)) = (seq, hash) {
                    link = Some((line, seq, hash));
                }
                continue;
            }
            Err(LineError::Incomplete(why) | LineError::Torn(why)) => {
                report.push(line, None, BreakKind::Torn, why);
                continue;
            }
        };
        if report.records == 0
            && let Some(continues) = &record.continues
        {
            report.continues = Some((continues.seq, continues.hash.clone()));
        }
        report.records += 1;
        report.first_seq.get_or_insert(record.seq);
        report.last_seq = Some(record.seq);
        report.last_hash = Some(record.hash.clone());
        if !report.algorithms.contains(&record.alg) {
            report.algorithms.push(record.alg);
        }
        match (record.kind, &record.gap) {
            (Kind::Start, _) => report.starts += 1,
            (Kind::Gap, Some(gap)) => {
                report.gaps.push(GapSeen { line, lost: gap.lost, since: gap.since, until: gap.until })
            }
            _ => {}
        }
        let seq = Some(record.seq);
        if !record.hash_matches() {
            let detail = "the record's content does not match its hash; the log was edited here".to_owned();
            report.push(line, seq, BreakKind::Changed, detail);
            link = Some((line, record.seq, record.hash));
            continue;
        }
        let (expected_seq, expected_prev) = match &link {
            Some((_, seq, hash)) => (seq + 1, hash.clone()),
            None => (1, genesis(record.alg)),
        };
        if let Some((_, head, _)) = link.as_ref().filter(|(_, head, _)| record.seq <= *head) {
            let mut detail = format!("line {line} has seq {} after seq {head}; lines were moved or copied", record.seq);
            if let Some((_, _, at)) = missing.iter().find(|(from, to, _)| (*from..=*to).contains(&record.seq)) {
                detail += &format!(" (seq {} was reported missing before line {at})", record.seq);
            }
            // Keep linking to the newest record, so one moved line is not followed by more breaks.
            report.push(line, seq, BreakKind::Reordered, detail);
            continue;
        }
        if record.prev != expected_prev && record.seq > expected_seq {
            let last = record.seq - 1;
            let detail = if last == expected_seq {
                format!("record {last} is missing before line {line}; a line was deleted")
            } else {
                format!("records {expected_seq}..{last} are missing before line {line}; lines were deleted")
            };
            missing.push((expected_seq, last, line));
            report.push(line, seq, BreakKind::Removed, detail);
        } else if record.prev != expected_prev || record.seq != expected_seq {
            let before = match &link {
                Some((at, head, _)) => format!("the record at line {at} (seq {head})"),
                None => "the start of the file".to_owned(),
            };
            let detail = format!(
                "this record does not link to {before} although no seq is missing; that record was replaced by one with a recomputed hash, or records were spliced in from elsewhere"
            );
            report.push(line, seq, BreakKind::BrokenLink, detail);
        }
        link = Some((line, record.seq, record.hash));
    }
    Ok(report)
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(f, "audit log {}: ", self.path.display())?;
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => {
                write!(f, "{} (seq {first}..{last})", plural(self.records, "record", "records"))?
            }
            _ => f.write_str("no records")?,
        }
        for alg in &self.algorithms {
            write!(f, ", {alg}")?;
        }
        write!(f, ", {}", plural(self.starts, "start", "starts"))?;
        if let Some((seq, _)) = &self.continues {
            write!(f, ", continues a rotated file that ended at seq {seq}")?;
        }
        if !self.gaps.is_empty() {
            let shown: Vec<String> = self.gaps.iter().take(MAX_GAPS_SHOWN).map(describe_gap).collect();
            let more = self.gaps.len().saturating_sub(MAX_GAPS_SHOWN);
            let more = if more > 0 { format!("; and {more} more") } else { String::new() };
            write!(f, ", {} ({}{more})", plural(self.gaps.len() as u64, "gap", "gaps"), shown.join("; "))?;
        }
        if self.is_intact() {
            return f.write_str(": intact");
        }
        let total = self.breaks.len() as u64 + self.more_breaks;
        write!(f, ": NOT INTACT, {}:", plural(total, "break", "breaks"))?;
        for b in &self.breaks {
            match b.seq {
                Some(seq) => write!(f, "\n  line {} (seq {seq}): {} — {}", b.line, b.kind.label(), b.detail)?,
                None => write!(f, "\n  line {}: {} — {}", b.line, b.kind.label(), b.detail)?,
            }
        }
        if self.more_breaks > 0 {
            let breaks = if self.more_breaks == 1 { "break" } else { "breaks" };
            write!(f, "\n  … and {} more {breaks}", self.more_breaks)?;
        }
        f.write_str(
            "\nKeep this file unchanged as evidence and do not repair it. Compare it with the latest head hash \
             shipped off this machine and with backups, and report it to whoever is responsible for the gateway's security.",
        )
    }
}

fn describe_gap(gap: &GapSeen) -> String {
    let lost = if gap.lost == 1 { "1 record".to_owned() } else { format!("{} records", gap.lost) };
    let since = gap.since.to_rfc3339_opts(SecondsFormat::Secs, true);
    let until = if gap.until.date_naive() == gap.since.date_naive() {
        gap.until.format("%H:%M:%SZ").to_string()
    } else {
        gap.until.to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    format!("{lost} lost at line {}, {since}..{until}", gap.line)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::audit::chain::link_hash;
    use crate::audit::testing::{lines, write_log};

    /// A log of 7 lines (start, then exchanges seq 2..=7) edited by `tamper`, then verified.
    fn tampered(tamper: impl FnOnce(&mut Vec<String>)) -> VerifyReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        drop(write_log(&path, Algorithm::Sha256, 1, 6));
        let mut text = lines(&path);
        tamper(&mut text);
        std::fs::write(&path, text.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        verify(&path).unwrap()
    }

    fn breaks(report: &VerifyReport) -> Vec<(usize, Option<u64>, BreakKind)> {
        report.breaks.iter().map(|b| (b.line, b.seq, b.kind)).collect()
    }

    #[test]
    fn an_edited_record_is_changed() {
        let report = tampered(|l| l[3] = l[3].replace("partner-3", "partner-8"));
        assert_eq!(breaks(&report), [(4, Some(4), BreakKind::Changed)]);
        let text = report.to_string();
        assert!(text.contains("NOT INTACT, 1 break:\n  line 4 (seq 4): changed — the record's content does not match its hash; the log was edited here"), "{text}");
    }

    #[test]
    fn a_deleted_line_is_removed() {
        let report = tampered(|l| drop(l.remove(3)));
        assert_eq!(breaks(&report), [(4, Some(5), BreakKind::Removed)]);
        assert!(report.breaks[0].detail.starts_with("record 4 is missing before line 4"));
        let report = tampered(|l| drop(l.drain(0..3)));
        assert_eq!(breaks(&report), [(1, Some(4), BreakKind::Removed)]);
        assert!(report.breaks[0].detail.starts_with("records 1..3 are missing before line 1"));
    }

    #[test]
    fn swapped_lines_are_reordered() {
        let report = tampered(|l| l.swap(3, 4));
        assert_eq!(breaks(&report), [(4, Some(5), BreakKind::Removed), (5, Some(4), BreakKind::Reordered)]);
        let detail = &report.breaks[1].detail;
        assert!(detail.starts_with("line 5 has seq 4 after seq 5") && detail.contains("missing before line 4"));
    }

    #[test]
    fn a_cut_line_is_torn() {
        let report = tampered(|l| l[6].truncate(40));
        assert_eq!(breaks(&report), [(7, None, BreakKind::Torn)]);
        let report = tampered(|l| l[2] = l[2].replace(r#""alg":"sha256""#, r#""alg":"md5""#));
        assert_eq!(breaks(&report), [(3, Some(3), BreakKind::Malformed)]);
    }

    #[test]
    fn a_replaced_record_breaks_the_next_link() {
        let report = tampered(|l| {
            // What an editor who knows the scheme does: change the record and recompute its hash.
            let edited = l[3].replace("partner-3", "partner-8");
            let (open, _) = edited.split_at(edited.len() - 75);
            let body = format!("{open}}}");
            let prev = &l[2][l[2].len() - 66..l[2].len() - 2];
            l[3] = format!("{open},\"hash\":\"{}\"}}", link_hash(Algorithm::Sha256, prev, &body));
        });
        assert_eq!(breaks(&report), [(5, Some(5), BreakKind::BrokenLink)]);
        assert!(report.breaks[0].detail.contains("does not link to the record at line 4 (seq 4)"));
    }

    #[test]
    fn the_list_of_breaks_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "garbage\n".repeat(MAX_BREAKS + 5)).unwrap();
        let report = verify(&path).unwrap();
        assert_eq!((report.breaks.len(), report.more_breaks, report.records), (MAX_BREAKS, 5, 0));
        assert!(report.to_string().contains("… and 5 more breaks"));
    }
}
