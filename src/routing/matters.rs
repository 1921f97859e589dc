//! The matter list (通办事项清单): which matters may be handled across regions or provinces, in
//! which modes, and between which regions — through region groups (e.g. the southwest alliance,
//! 西南地区跨省通办) or bilateral agreements between two cities (e.g. 酒泉 and 益阳).
//! Local exchanges need no entry. An exchange the list does not allow is refused with the rule
//! that refused it.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::RouteKind;
use crate::canonical::Mode;
use crate::config::diagnostic::Diagnostics;
use crate::config::source::{KeyPath, SpannedDoc};
use crate::regions::RegionTable;

/// The matter list file as written (config/matters.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatterList {
    /// Region groups: alliances of provinces (or cities) that handle matters for each other.
    #[serde(default, rename = "group")]
    pub groups: Vec<RawGroup>,
    /// Matters allowed across regions or provinces.
    #[serde(default, rename = "matter")]
    pub matters: Vec<RawMatter>,
    /// Bilateral agreements between two regions.
    #[serde(default, rename = "agreement")]
    pub agreements: Vec<RawAgreement>,
}

/// A region group (区域合作).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Short name used by matters, e.g. "southwest".
    pub name: String,
    /// Title, e.g. "西南地区跨省通办".
    #[serde(default)]
    pub title: Option<String>,
    /// Member region prefixes (2, 4 or 6 digits).
    pub regions: Vec<String>,
}

/// A matter-list entry (通办事项).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatter {
    /// Matter code (事项编码).
    pub code: String,
    /// Matter name (事项名称).
    pub name: String,
    /// Modes allowed: online, proxy_acceptance, multi_site.
    pub modes: Vec<Mode>,
    /// May be handled across cities inside any province (省内通办).
    #[serde(default)]
    pub cross_region: bool,
    /// Groups inside which it may be handled across provinces (跨省通办).
    #[serde(default)]
    pub cross_province: Vec<String>,
    /// Multi-site joint handling (多地联办): the parties that all decide, in parallel.
    #[serde(default)]
    pub joint: Option<RawJoint>,
}

/// `[matter.joint]`: a parallel approval (并联审批) by several handling platforms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJoint {
    /// Hours from acceptance within which every party must decide (办理时限).
    pub deadline_hours: u32,
    /// What a party that has not decided by the deadline counts as (缺席默认).
    pub absence: Absence,
    /// The parties (联办方), at least two.
    pub parties: Vec<RawParty>,
}

/// One party of a joint matter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParty {
    /// A short name, unique in the entry, e.g. `guizhou-market`.
    pub name: String,
    /// The party's 6-digit region code; its platform is the adapter that routes it.
    pub region: String,
    /// The authority's name, e.g. 贵州省市场监督管理局.
    #[serde(default)]
    pub title: Option<String>,
}

/// The absence rule (缺席默认).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Absence {
    /// An absent party counts as consent (缺席视为同意).
    Consent,
    /// An absent party counts as refusal (缺席视为不同意).
    Refusal,
}

impl Absence {
    /// The name in configuration and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Absence::Consent => "consent",
            Absence::Refusal => "refusal",
        }
    }
}

/// A compiled joint rule (联办规则).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointRule {
    /// From acceptance to the deadline.
    pub deadline: std::time::Duration,
    /// The absence rule.
    pub absence: Absence,
    /// The parties, in list order.
    pub parties: Vec<Party>,
}

/// A compiled party (联办方).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Its name.
    pub name: String,
    /// Its authority's name.
    pub title: Option<String>,
    /// Its region code.
    pub region: String,
    /// The adapter that serves its region.
    pub adapter: String,
}

/// A bilateral agreement (合作协议) between two regions, typically two cities in different provinces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgreement {
    /// Name, e.g. "酒泉—益阳跨省通办合作协议".
    pub name: String,
    /// Exactly two region prefixes.
    pub regions: Vec<String>,
    /// Matter codes covered.
    pub matters: Vec<String>,
    /// Modes allowed.
    pub modes: Vec<Mode>,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    regions: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    modes: Vec<Mode>,
    cross_region: bool,
    groups: Vec<usize>,
    location: String,
    joint: Option<JointRule>,
}

#[derive(Debug, Clone)]
struct Agreement {
    name: String,
    regions: [String; 2],
    matters: Vec<String>,
    modes: Vec<Mode>,
    location: String,
}

/// A compiled matter list.
#[derive(Debug, Clone, Default)]
pub struct MatterList {
    file: String,
    groups: Vec<Group>,
    entries: HashMap<String, Entry>,
    agreements: Vec<Agreement>,
}

/// Why an exchange was refused: the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refusal {
    /// A sentence naming the rule and the fix.
    pub detail: String,
    /// The rule's place, `file:line`, or the file when no entry applies.
    pub rule: String,
}

/// An exchange to check against the list.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// Matter code.
    pub matter: &'a str,
    /// Mode.
    pub mode: Mode,
    /// Current accepting region code.
    pub accepting: &'a str,
    /// Current handling region code.
    pub handling: &'a str,
    /// Classification.
    pub kind: RouteKind,
}

fn covers(prefix: &str, code: &str) -> bool {
    code.starts_with(prefix)
}

fn modes_text(modes: &[Mode]) -> String {
    modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

/// Checks a `[matter.joint]` table: at least two distinct parties, each a current region code
/// that an adapter serves, a deadline, and the entry allowing multi_site.
fn compile_joint(
    joint: &RawJoint,
    modes: &[Mode],
    at: &KeyPath,
    doc: &SpannedDoc<'_>,
    regions: &RegionTable,
    router: &super::Router,
    diagnostics: &mut Diagnostics,
) -> JointRule {
    if !modes.contains(&Mode::MultiSite) {
        doc.report(diagnostics, at, "a joint rule needs the mode multi_site in this entry's modes; add it");
    }
    if joint.deadline_hours == 0 || joint.deadline_hours > 24 * 366 {
        doc.report(diagnostics, &at.key("deadline_hours"), "give the deadline in hours, 1 to 8784 (a year)");
    }
    if joint.parties.len() < 2 {
        doc.report(
            diagnostics,
            &at.key("parties"),
            "a joint matter has at least two parties; list each as { name, region }",
        );
    }
    let mut parties = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, raw) in joint.parties.iter().enumerate() {
        let at = at.key("parties").index(index);
        if !names.insert(raw.name.as_str()) {
            doc.report(
                diagnostics,
                &at.key("name"),
                format!("party '{}' is listed twice; give each party its own name", raw.name),
            );
        }
        let region = match regions.resolve(&raw.region) {
            Ok(resolved) if resolved.code == raw.region => resolved.code.clone(),
            Ok(resolved) => {
                doc.report(
                    diagnostics,
                    &at.key("region"),
                    format!("'{}' is retired; write its successor {}", raw.region, resolved.code),
                );
                continue;
            }
            Err(err) => {
                doc.report(diagnostics, &at.key("region"), err.to_string());
                continue;
            }
        };
        let Some(adapter) = router.route(&region) else {
            doc.report(
                diagnostics,
                &at.key("region"),
                format!("no adapter serves region {region}; add one whose regions cover it, or correct the code"),
            );
            continue;
        };
        parties.push(Party { name: raw.name.clone(), title: raw.title.clone(), region, adapter: adapter.name.clone() });
    }
    JointRule {
        deadline: std::time::Duration::from_secs(u64::from(joint.deadline_hours) * 3600),
        absence: joint.absence,
        parties,
    }
}

impl MatterList {
    /// Compiles the list; errors go to `diagnostics`.
    pub fn compile(
        raw: &RawMatterList,
        doc: &SpannedDoc<'_>,
        regions: &RegionTable,
        router: &super::Router,
        diagnostics: &mut Diagnostics,
    ) -> MatterList {
        let file = doc.source().display.clone();
        let location = |at: &KeyPath| format!("{file}:{}", doc.position(at).0);
        let check_prefix = |diagnostics: &mut Diagnostics, at: &KeyPath, prefix: &str| {
            let shaped = matches!(prefix.len(), 2 | 4 | 6) && prefix.bytes().all(|b| b.is_ascii_digit());
            if !shaped || !regions.iter().any(|r| r.code.starts_with(prefix)) {
                doc.report(diagnostics, at, format!("'{prefix}' is not a known region prefix; use 2, 4 or 6 digits of a GB/T 2260 code, e.g. 52 or 6209"));
            }
        };
        let mut groups = Vec::new();
        let mut group_index: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, group) in raw.groups.iter().enumerate() {
            let at = KeyPath::root().key("group").index(index);
            if group_index.insert(group.name.as_str(), groups.len()).is_some() {
                doc.report(
                    diagnostics,
                    &at.key("name"),
                    format!("group '{}' is defined twice; merge the two", group.name),
                );
            }
            for (i, prefix) in group.regions.iter().enumerate() {
                check_prefix(diagnostics, &at.key("regions").index(i), prefix);
            }
            groups.push(Group { name: group.name.clone(), regions: group.regions.clone() });
        }
        let mut entries = HashMap::new();
        for (index, matter) in raw.matters.iter().enumerate() {
            let at = KeyPath::root().key("matter").index(index);
            if matter.modes.is_empty() {
                doc.report(
                    diagnostics,
                    &at.key("modes"),
                    "list at least one mode: online, proxy_acceptance or multi_site",
                );
            }
            let mut indexes = Vec::new();
            for (i, name) in matter.cross_province.iter().enumerate() {
                match group_index.get(name.as_str()) {
                    Some(g) => indexes.push(*g),
                    None => {
                        let known: Vec<&str> = group_index.keys().copied().collect();
                        doc.report(
                            diagnostics,
                            &at.key("cross_province").index(i),
                            format!(
                                "no group named '{name}'; define it with [[group]] or use one of: {}",
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            let joint = matter
                .joint
                .as_ref()
                .map(|joint| compile_joint(joint, &matter.modes, &at.key("joint"), doc, regions, router, diagnostics));
            let entry = Entry {
                name: matter.name.clone(),
                modes: matter.modes.clone(),
                cross_region: matter.cross_region,
                groups: indexes,
                location: location(&at),
                joint,
            };
            if entries.insert(matter.code.clone(), entry).is_some() {
                doc.report(
                    diagnostics,
                    &at.key("code"),
                    format!("matter {} is listed twice; merge the entries", matter.code),
                );
            }
        }
        let mut agreements = Vec::new();
        for (index, agreement) in raw.agreements.iter().enumerate() {
            let at = KeyPath::root().key("agreement").index(index);
            for (i, prefix) in agreement.regions.iter().enumerate() {
                check_prefix(diagnostics, &at.key("regions").index(i), prefix);
            }
            let [a, b] = agreement.regions.as_slice() else {
                doc.report(
                    diagnostics,
                    &at.key("regions"),
                    "an agreement is between exactly two regions, e.g. [\"6209\", \"4309\"]",
                );
                continue;
            };
            agreements.push(Agreement {
                name: agreement.name.clone(),
                regions: [a.clone(), b.clone()],
                matters: agreement.matters.clone(),
                modes: agreement.modes.clone(),
                location: location(&at),
            });
        }
        MatterList { file, groups, entries, agreements }
    }

    /// The joint rule of a multi-site matter (多地联办), if its entry has one.
    pub fn joint(&self, code: &str) -> Option<&JointRule> {
        self.entries.get(code).and_then(|e| e.joint.as_ref())
    }

    /// The listed name of a matter, if it is on the list.
    pub fn name_of(&self, code: &str) -> Option<&str> {
        self.entries.get(code).map(|e| e.name.as_str())
    }

    /// Allows or refuses an exchange.
    pub fn permit(&self, exchange: &Exchange<'_>) -> Result<(), Refusal> {
        if exchange.kind == RouteKind::Local {
            return Ok(());
        }
        let agreement = self.agreements.iter().find(|a| {
            let pair = (covers(&a.regions[0], exchange.accepting) && covers(&a.regions[1], exchange.handling))
                || (covers(&a.regions[1], exchange.accepting) && covers(&a.regions[0], exchange.handling));
            pair && a.matters.iter().any(|m| m == exchange.matter)
        });
        if let Some(agreement) = agreement
            && agreement.modes.contains(&exchange.mode)
        {
            return Ok(());
        }
        let Some(entry) = self.entries.get(exchange.matter) else {
            if let Some(agreement) = agreement {
                return Err(Refusal {
                    detail: format!(
                        "agreement '{}' covers matter {} only in modes [{}], not {}; use an allowed mode or extend the agreement",
                        agreement.name,
                        exchange.matter,
                        modes_text(&agreement.modes),
                        exchange.mode.as_str()
                    ),
                    rule: agreement.location.clone(),
                });
            }
            return Err(Refusal {
                detail: format!(
                    "matter {} is not on the matter list (通办事项清单) and no agreement covers {} ↔ {}, so it is handled only locally; submit it in the handling region, or add it to {}",
                    exchange.matter, exchange.accepting, exchange.handling, self.file
                ),
                rule: self.file.clone(),
            });
        };
        if !entry.modes.contains(&exchange.mode) {
            return Err(Refusal {
                detail: format!(
                    "matter {} ({}) may be handled across regions only in modes [{}], not {}",
                    exchange.matter,
                    entry.name,
                    modes_text(&entry.modes),
                    exchange.mode.as_str()
                ),
                rule: entry.location.clone(),
            });
        }
        match exchange.kind {
            RouteKind::CrossRegion if entry.cross_region => Ok(()),
            RouteKind::CrossRegion => Err(Refusal {
                detail: format!(
                    "matter {} ({}) is not open for cross-region handling inside a province (cross_region = false)",
                    exchange.matter, entry.name
                ),
                rule: entry.location.clone(),
            }),
            RouteKind::CrossProvince => {
                let shared = entry.groups.iter().map(|g| &self.groups[*g]).find(|group| {
                    group.regions.iter().any(|p| covers(p, exchange.accepting))
                        && group.regions.iter().any(|p| covers(p, exchange.handling))
                });
                match shared {
                    Some(_) => Ok(()),
                    None if entry.groups.is_empty() => Err(Refusal {
                        detail: format!(
                            "matter {} ({}) is not open for cross-province handling (no cross_province groups) and no agreement covers {} ↔ {}",
                            exchange.matter, entry.name, exchange.accepting, exchange.handling
                        ),
                        rule: entry.location.clone(),
                    }),
                    None => {
                        let names: Vec<&str> = entry.groups.iter().map(|g| self.groups[*g].name.as_str()).collect();
                        Err(Refusal {
                            detail: format!(
                                "matter {} ({}) is handled across provinces only inside the groups [{}], and no group has both {} and {}",
                                exchange.matter,
                                entry.name,
                                names.join(", "),
                                exchange.accepting,
                                exchange.handling
                            ),
                            rule: entry.location.clone(),
                        })
                    }
                }
            }
            RouteKind::Local => Ok(()),
        }
    }
}
