//! Access control (访问控制): what each partner may call — which operations, which target
//! regions, which matters, and from which regions it acts (its own windows and print sites).
//! Configured per partner in `[partner.allow]`; a partner without one may call everything while
//! partners are identified by API key, and nothing once mutual TLS identifies them (deny by
//! default). A refusal names the missing right and the fix.
//!
//! The region a partner acts from (受理地 / 打证地) is a claim in the request: the accepting
//! region of an application or acceptance, the printing site's region of a print job. Left
//! unchecked, a Hunan window could present an acceptance as Guangdong's, and the audit log would
//! record what it claimed. `allow.from` (or, without it, the partner's `province`) bounds it.

use std::collections::HashSet;

use crate::problem::GatewayError;

/// A kind of call a partner may be allowed to make (权限).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// 全程网办: submit an application to another region's platform.
    Submit,
    /// 办件查询: look up an application's state.
    Status,
    /// 事项目录: read a region's catalogue of matters.
    Matters,
    /// 异地代收代办: accept applications for another region and follow them.
    Accept,
    /// 办件回告: as the handling side, read the acceptances handled in a region and report
    /// decisions on them (never on an acceptance the same partner accepted).
    Decide,
    /// 电子证照: read a certificate from its issuing platform.
    Certificate,
    /// 异地打证: create, read and confirm print jobs.
    Print,
}

impl Right {
    /// Every right, in the order the docs list them.
    pub const ALL: [Right; 7] =
        [Right::Submit, Right::Status, Right::Matters, Right::Accept, Right::Decide, Right::Certificate, Right::Print];

    /// The name used in `[partner.allow] operations`.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Submit => "submit",
            Right::Status => "status",
            Right::Matters => "matters",
            Right::Accept => "accept",
            Right::Decide => "decide",
            Right::Certificate => "certificate",
            Right::Print => "print",
        }
    }

    /// Parses a name from the config.
    pub fn parse(name: &str) -> Option<Right> {
        Right::ALL.into_iter().find(|right| right.as_str() == name)
    }
}

/// One list of a partner's rights: everything, or only what is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed<T> {
    /// `["*"]`.
    Any,
    /// Only these.
    Only(T),
}

/// What one partner may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    /// Operations.
    pub operations: Allowed<HashSet<Right>>,
    /// Target regions as code prefixes ("52" = 贵州省 and below, "4401" = 广州市 and below).
    pub regions: Allowed<Vec<String>>,
    /// Matter codes (事项编码).
    pub matters: Allowed<HashSet<String>>,
    /// Regions the partner acts from, as code prefixes: where its windows accept (受理地) and its
    /// sites print (打证地).
    pub from: Allowed<Vec<String>>,
}

/// What a call needs, as far as it is known when it is checked.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The operation.
    pub right: Right,
    /// The target region's 6-digit code, when the call has one.
    pub region: Option<&'a str>,
    /// The matter code, when the call has one.
    pub matter: Option<&'a str>,
    /// The region the caller says it acts from (accepting region, printing site), when it says one.
    pub from: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A call that needs only the operation right (no region or matter involved).
    pub fn operation(right: Right) -> Call<'static> {
        Call { right, region: None, matter: None, from: None }
    }

    /// A call for a target region and, when known, a matter.
    pub fn to(right: Right, region: &'a str, matter: Option<&'a str>) -> Call<'a> {
        Call { right, region: Some(region), matter, from: None }
    }

    /// The same call, made from region `from` (the caller's window or print site).
    pub fn from(self, from: Option<&'a str>) -> Call<'a> {
        Call { from, ..self }
    }
}

impl Rights {
    /// Everything: partners identified by API key without an `allow` table.
    pub fn all() -> Rights {
        Rights { operations: Allowed::Any, regions: Allowed::Any, matters: Allowed::Any, from: Allowed::Any }
    }

    /// Nothing: the default under mutual TLS.
    pub fn none() -> Rights {
        Rights {
            operations: Allowed::Only(HashSet::new()),
            regions: Allowed::Only(Vec::new()),
            matters: Allowed::Only(HashSet::new()),
            from: Allowed::Only(Vec::new()),
        }
    }

    /// Checks one call; the refusal names the first missing right.
    pub fn check(&self, partner: &str, call: Call<'_>) -> Result<(), GatewayError> {
        let refuse = |right: &'static str, value: &str| GatewayError::Forbidden {
            partner: partner.to_owned(),
            right,
            value: value.to_owned(),
            field: None,
        };
        if let Allowed::Only(operations) = &self.operations
            && !operations.contains(&call.right)
        {
            return Err(refuse("operation", call.right.as_str()));
        }
        if let (Allowed::Only(prefixes), Some(region)) = (&self.regions, call.region)
            && !within(prefixes, region)
        {
            return Err(refuse("region", region));
        }
        if let (Allowed::Only(matters), Some(matter)) = (&self.matters, call.matter)
            && !matters.contains(matter)
        {
            return Err(refuse("matter", matter));
        }
        if let (Allowed::Only(prefixes), Some(from)) = (&self.from, call.from)
            && !within(prefixes, from)
        {
            return Err(refuse("from", from));
        }
        Ok(())
    }
}

fn within(prefixes: &[String], region: &str) -> bool {
    prefixes.iter().any(|prefix| region.starts_with(prefix.as_str()))
}

/// A region code in `allow.regions` as the prefix it stands for: "520000" and "52" both mean
/// the province, "440100" and "4401" the city.
pub fn region_prefix(code: &str) -> &str {
    let mut prefix = code;
    while prefix.len() > 2 && prefix.ends_with("00") {
        prefix = &prefix[..prefix.len() - 2];
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(operations: &[Right], regions: &[&str], matters: &[&str]) -> Rights {
        Rights {
            operations: Allowed::Only(operations.iter().copied().collect()),
            regions: Allowed::Only(regions.iter().map(|r| r.to_string()).collect()),
            matters: Allowed::Only(matters.iter().map(|m| m.to_string()).collect()),
            from: Allowed::Any,
        }
    }

    fn refused(rights: &Rights, call: Call<'_>) -> Option<(&'static str, String)> {
        match rights.check("gd", call) {
            Ok(()) => None,
            Err(GatewayError::Forbidden { right, value, .. }) => Some((right, value)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_missing_right_is_named() {
        let rights = only(&[Right::Submit], &["52", "4401"], &["11100000000000000001"]);
        let call = |right, region, matter| Call::to(right, region, Some(matter));
        assert_eq!(refused(&rights, call(Right::Submit, "520102", "11100000000000000001")), None);
        assert_eq!(refused(&rights, call(Right::Submit, "440106", "11100000000000000001")), None);
        assert_eq!(
            refused(&rights, call(Right::Print, "520102", "11100000000000000001")),
            Some(("operation", "print".into()))
        );
        assert_eq!(
            refused(&rights, call(Right::Submit, "440300", "11100000000000000001")),
            Some(("region", "440300".into()))
        );
        assert_eq!(refused(&rights, call(Right::Submit, "520102", "x")), Some(("matter", "x".into())));
    }

    #[test]
    fn calls_without_a_region_or_matter_need_only_the_operation() {
        let rights = only(&[Right::Print], &[], &[]);
        assert_eq!(refused(&rights, Call::operation(Right::Print)), None);
        assert!(refused(&Rights::none(), Call::operation(Right::Print)).is_some());
        assert_eq!(refused(&Rights::all(), Call::to(Right::Accept, "1", Some("m")).from(Some("2"))), None);
    }

    #[test]
    fn the_region_a_partner_acts_from_is_bounded() {
        let rights = Rights { from: Allowed::Only(vec!["44".into()]), ..only(&[Right::Accept], &["52"], &["m"]) };
        let accept = Call::to(Right::Accept, "520102", Some("m"));
        assert_eq!(refused(&rights, accept.from(Some("440106"))), None);
        assert_eq!(refused(&rights, accept.from(Some("430102"))), Some(("from", "430102".into())));
        // A call that claims no region of its own (全程网办 without a window) needs no `from`.
        assert_eq!(refused(&rights, accept), None);
        // The target is checked first: the refusal names what the operator would grant first.
        let elsewhere = Call::to(Right::Accept, "530102", Some("m")).from(Some("430102"));
        assert_eq!(refused(&rights, elsewhere), Some(("region", "530102".into())));
    }

    #[test]
    fn region_codes_shorten_to_their_prefix() {
        assert_eq!(region_prefix("520000"), "52");
        assert_eq!(region_prefix("440100"), "4401");
        assert_eq!(region_prefix("440106"), "440106");
        assert_eq!(region_prefix("4401"), "4401");
        assert_eq!(region_prefix("00"), "00");
    }
}
