//! Partner identity (合作方身份): who is calling. Today an API key in `X-Api-Key` maps to a
//! configured partner (a province's agency); mutual TLS identities replace the key later behind
//! the same seam, [`Identities::identify`]. Callers without a known key are refused (401) unless
//! the configuration admits anonymous callers (the demo does, for its walk-throughs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::adapter::Operation;
use crate::limit::LimitSpec;
use crate::problem::GatewayError;

/// The header carrying the API key.
pub const API_KEY: &str = "x-api-key";

/// The name anonymous callers are counted under.
pub const ANONYMOUS: &str = "anonymous";

/// A configured partner (合作方): a province's agency calling the gateway.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Short name, used in metrics (`source`) and logs.
    pub name: String,
    /// Display title, e.g. "广东省政务服务数据管理局".
    pub title: String,
    /// Province prefix (2 digits), when given.
    pub province: Option<String>,
    /// Agency, when given.
    pub agency: Option<String>,
    /// The partner's own rate limit, if any (else the default partner limit applies).
    pub rate: Option<LimitSpec>,
    /// Limits per operation for this partner.
    pub operations: HashMap<Operation, LimitSpec>,
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A known partner.
    Partner(Arc<Partner>),
    /// No key, admitted because anonymous access is on; limited per client address.
    Anonymous {
        /// The client's address.
        address: IpAddr,
    },
}

impl Caller {
    /// The name used in metrics and logs.
    pub fn name(&self) -> &str {
        match self {
            Caller::Partner(partner) => &partner.name,
            Caller::Anonymous { .. } => ANONYMOUS,
        }
    }
}

/// The compiled identity table.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    by_key: HashMap<String, Arc<Partner>>,
    /// Whether callers without a key are admitted.
    pub anonymous: bool,
}

impl Identities {
    /// Builds the table from partners and their keys.
    pub fn new(partners: Vec<(Arc<Partner>, Vec<String>)>, anonymous: bool) -> Identities {
        let mut by_key = HashMap::new();
        for (partner, keys) in partners {
            for key in keys {
                by_key.insert(key, partner.clone());
            }
        }
        Identities { by_key, anonymous }
    }

    /// Identifies the caller of a request.
    pub fn identify(&self, headers: &HeaderMap, address: IpAddr) -> Result<Caller, GatewayError> {
        match headers.get(API_KEY) {
            Some(value) => {
                let key = value.to_str().unwrap_or_default();
                match self.by_key.get(key) {
                    Some(partner) => Ok(Caller::Partner(partner.clone())),
                    None => Err(GatewayError::Unauthorized { reason: "the X-Api-Key is not known".into() }),
                }
            }
            None if self.anonymous => Ok(Caller::Anonymous { address }),
            None => Err(GatewayError::Unauthorized { reason: "no X-Api-Key was sent".into() }),
        }
    }

    /// Every configured partner.
    pub fn partners(&self) -> impl Iterator<Item = &Arc<Partner>> {
        self.by_key.values()
    }
}
