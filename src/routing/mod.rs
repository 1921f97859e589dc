//! Routing (路由): the handling region (办理地) picks the platform by longest prefix, so a city
//! platform (酒泉 6209) sits inside its province's (甘肃 62); the accepting region (收件地) and the
//! handling region classify the exchange as local, cross-region or cross-province.

pub mod matters;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::adapter::Adapter;
use crate::regions::{city_prefix, province_prefix};

/// Kind of exchange (通办类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// Same city (地市): handled where it was accepted.
    Local,
    /// Different cities of one province (跨域通办 / 省内通办).
    CrossRegion,
    /// Different provinces (跨省通办).
    CrossProvince,
}

impl RouteKind {
    /// The name as written in answers and config.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Local => "local",
            RouteKind::CrossRegion => "cross_region",
            RouteKind::CrossProvince => "cross_province",
        }
    }
}

/// Classifies an exchange from current (resolved) region codes.
pub fn classify(accepting: &str, handling: &str) -> RouteKind {
    if province_prefix(accepting) != province_prefix(handling) {
        RouteKind::CrossProvince
    } else if city_prefix(accepting) != city_prefix(handling) {
        RouteKind::CrossRegion
    } else {
        RouteKind::Local
    }
}

/// Region prefix → adapter, matched longest first.
#[derive(Debug, Clone, Default)]
pub struct Router {
    by_prefix: HashMap<String, Arc<Adapter>>,
}

/// Two adapters claiming the same prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixConflict {
    /// The prefix.
    pub prefix: String,
    /// The adapter that claimed it first.
    pub first: String,
}

impl Router {
    /// Adds an adapter's prefixes; a prefix already claimed is a conflict.
    pub fn add(&mut self, adapter: &Arc<Adapter>) -> Vec<PrefixConflict> {
        let mut conflicts = Vec::new();
        for prefix in &adapter.regions {
            match self.by_prefix.get(prefix) {
                Some(first) => conflicts.push(PrefixConflict { prefix: prefix.clone(), first: first.name.clone() }),
                None => {
                    self.by_prefix.insert(prefix.clone(), adapter.clone());
                }
            }
        }
        conflicts
    }

    /// The adapter for a 6-digit region code: county, then city, then province prefix.
    pub fn route(&self, region: &str) -> Option<&Arc<Adapter>> {
        [6, 4, 2].into_iter().filter_map(|len| region.get(..len)).find_map(|prefix| self.by_prefix.get(prefix))
    }

    /// Every prefix and its adapter name, sorted (for `tongban check` output and docs).
    pub fn table(&self) -> Vec<(&str, &str)> {
        let mut rows: Vec<(&str, &str)> = self.by_prefix.iter().map(|(p, a)| (p.as_str(), a.name.as_str())).collect();
        rows.sort_unstable();
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_province_and_city_digits() {
        assert_eq!(classify("440106", "520102"), RouteKind::CrossProvince);
        assert_eq!(classify("620200", "620902"), RouteKind::CrossRegion);
        assert_eq!(classify("340103", "340102"), RouteKind::Local);
    }
}
