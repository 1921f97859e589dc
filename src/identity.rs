//! Partner identity (合作方身份): who is calling. Either an API key in `X-Api-Key` maps to a
//! configured partner (a province's agency), or — when the public listener requires client
//! certificates (mutual TLS) — a name in the verified certificate does (`tls_names`), and API keys
//! are ignored. Callers without a known identity are refused (401) unless the configuration
//! admits anonymous callers (the demo does, for its walk-throughs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::access::Rights;
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
    /// What it may call (访问权限).
    pub rights: Rights,
}

/// How partners prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentifyBy {
    /// An API key in `X-Api-Key`.
    #[default]
    ApiKey,
    /// A verified client certificate (mutual TLS); API keys are ignored.
    Certificate,
}

/// The names a connection's verified client certificate carries: SAN DNS names and URIs, then
/// the subject's common name. The listener puts it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Names to match against `tls_names`, in order.
    pub names: Vec<String>,
    /// SHA-256 fingerprint of the certificate (hex), for logs.
    pub fingerprint: String,
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
    by_tls_name: HashMap<String, Arc<Partner>>,
    /// Whether callers without a key are admitted.
    pub anonymous: bool,
    /// Keys or certificates.
    pub by: IdentifyBy,
}

/// What the caller does when no partner is found, by how partners are identified.
const KEY_FIX: &str = "send the API key your partner entry lists in the X-Api-Key header";
const CERTIFICATE_FIX: &str =
    "connect with the client certificate issued to your partner (curl --cert partner.pem --key partner.key)";

impl Identities {
    /// Builds the table from partners with their API keys and certificate names.
    pub fn new(partners: Vec<PartnerEntry>, anonymous: bool, by: IdentifyBy) -> Identities {
        let mut by_key = HashMap::new();
        let mut by_tls_name = HashMap::new();
        for entry in partners {
            for key in entry.api_keys {
                by_key.insert(key, entry.partner.clone());
            }
            for name in entry.tls_names {
                by_tls_name.insert(name, entry.partner.clone());
            }
        }
        Identities { by_key, by_tls_name, anonymous, by }
    }

    /// Identifies the caller of a request from its API key or its connection's certificate.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
        address: IpAddr,
    ) -> Result<Caller, GatewayError> {
        match self.by {
            IdentifyBy::ApiKey => self.by_api_key(headers, address),
            IdentifyBy::Certificate => self.by_certificate(certificate, address),
        }
    }

    fn by_api_key(&self, headers: &HeaderMap, address: IpAddr) -> Result<Caller, GatewayError> {
        let unauthorized = |reason: &str| GatewayError::Unauthorized { reason: reason.into(), fix: KEY_FIX };
        // Two keys would leave the choice of partner to the order of the headers.
        if headers.get_all(API_KEY).iter().nth(1).is_some() {
            return Err(unauthorized("more than one X-Api-Key was sent"));
        }
        match headers.get(API_KEY) {
            Some(value) => {
                let key = value.to_str().unwrap_or_default();
                match self.by_key.get(key) {
                    Some(partner) => Ok(Caller::Partner(partner.clone())),
                    None => Err(unauthorized("the X-Api-Key is not known")),
                }
            }
            None if self.anonymous => Ok(Caller::Anonymous { address }),
            None => Err(unauthorized("no X-Api-Key was sent")),
        }
    }

    fn by_certificate(&self, certificate: Option<&ClientCertificate>, address: IpAddr) -> Result<Caller, GatewayError> {
        let unauthorized = |reason: String| GatewayError::Unauthorized { reason, fix: CERTIFICATE_FIX };
        let Some(certificate) = certificate else {
            if self.anonymous {
                return Ok(Caller::Anonymous { address });
            }
            return Err(unauthorized("no client certificate was presented".into()));
        };
        let mut found: Option<&Arc<Partner>> = None;
        for name in &certificate.names {
            match (self.by_tls_name.get(name), found) {
                (Some(partner), Some(first)) if !Arc::ptr_eq(partner, first) => {
                    // One certificate, two partners: refuse rather than guess whose rights apply.
                    return Err(unauthorized(format!(
                        "the client certificate names two partners ('{}' and '{}')",
                        first.name, partner.name
                    )));
                }
                (Some(partner), None) => found = Some(partner),
                _ => {}
            }
        }
        match found {
            Some(partner) => Ok(Caller::Partner(partner.clone())),
            None => Err(unauthorized(format!(
                "the client certificate ({}) is not mapped to a partner; the operator lists one of its names in that partner's tls_names",
                certificate.names.join(", ")
            ))),
        }
    }

    /// Every configured partner (once each).
    pub fn partners(&self) -> impl Iterator<Item = &Arc<Partner>> {
        let mut seen = std::collections::HashSet::new();
        self.by_key.values().chain(self.by_tls_name.values()).filter(move |partner| seen.insert(Arc::as_ptr(partner)))
    }
}

/// A partner with the credentials that identify it.
#[derive(Debug, Clone)]
pub struct PartnerEntry {
    /// The partner.
    pub partner: Arc<Partner>,
    /// Its API keys.
    pub api_keys: Vec<String>,
    /// Names in its client certificate (SAN DNS or URI, or the subject CN).
    pub tls_names: Vec<String>,
}
