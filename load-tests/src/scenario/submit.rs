//! `passthrough` and `translate`: 全程网办 submissions through `POST /v1/applications`, each a new
//! application. `passthrough` goes to Guizhou, whose API is JSON in UTF-8 close to the canonical
//! shape; `translate` goes to Hunan, whose API is GBK-encoded XML reached through a mapping of 36
//! fields (`mappings/gbk-xml/submit.toml`), so the gap between the two is the cost of translation.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde_json::Value;

use super::{GatewayNeeds, Scenario};

const NATURAL_PERSON: &str = include_str!("../../../tests/fixtures/canonical/natural_person.json");
const LEGAL_PERSON: &str = include_str!("../../../tests/fixtures/canonical/legal_person.json");

/// Stands in for the application id in the serialised body template.
const PLACEHOLDER: &str = "@@APPLICATION_ID@@";

/// Which platform a submission goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Guizhou: JSON, UTF-8.
    Passthrough,
    /// Hunan: XML, GBK, a 36-field mapping.
    Translate,
}

pub struct Submit {
    target: Target,
    run_id: u32,
    /// The body before and after the application id, serialised once.
    head: String,
    tail: String,
}

impl Submit {
    pub fn new(target: Target, run_id: u32) -> anyhow::Result<Submit> {
        let mut application: Value = match target {
            Target::Passthrough => serde_json::from_str(NATURAL_PERSON)?,
            Target::Translate => {
                // The Hunan golden case: a Guangdong enterprise's application handled in 长沙市芙蓉区.
                let mut application: Value = serde_json::from_str(LEGAL_PERSON)?;
                application["handling_region"] = "430102".into();
                application["accepting_region"] = "440106".into();
                application["mode"] = "proxy_acceptance".into();
                application
            }
        };
        application["application_id"] = PLACEHOLDER.into();
        let body = application.to_string();
        let Some((head, tail)) = body.split_once(PLACEHOLDER) else {
            anyhow::bail!("the application template lost its id placeholder");
        };
        Ok(Submit { target, run_id, head: head.to_owned(), tail: tail.to_owned() })
    }

    /// UUID-shaped and unique per run and request: the run id in the first group, `seq` in the last.
    pub fn application_id(&self, seq: u64) -> String {
        format!("{:08x}-7c00-7000-8000-{:012x}", self.run_id, seq & 0xffff_ffff_ffff)
    }
}

impl Scenario for Submit {
    fn name(&self) -> &'static str {
        match self.target {
            Target::Passthrough => "passthrough",
            Target::Translate => "translate",
        }
    }

    fn describe(&self) -> &'static str {
        match self.target {
            Target::Passthrough => {
                "POST /v1/applications: a new application (440106 → 520102, Guizhou, JSON) per request; success is 201"
            }
            Target::Translate => {
                "POST /v1/applications: a new application (440106 → 430102, Hunan, GBK XML through a 36-field mapping) per request; success is 201"
            }
        }
    }

    fn needs(&self) -> GatewayNeeds {
        match self.target {
            Target::Passthrough => GatewayNeeds::platforms(&["guizhou"]),
            Target::Translate => GatewayNeeds::platforms(&["hunan"]),
        }
    }

    fn request(&self, seq: u64) -> http::Request<Bytes> {
        let body = format!("{}{}{}", self.head, self.application_id(seq), self.tail);
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = http::Uri::from_static("/v1/applications");
        request.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        request
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status == StatusCode::CREATED
    }

    fn platform(&self) -> Option<&'static str> {
        Some(self.needs().mocks[0])
    }

    fn unique(&self, seq: u64) -> Option<String> {
        Some(self.application_id(seq))
    }

    fn gateway_metrics(&self) -> &'static [&'static str] {
        &["tongban_requests_total", "tongban_upstream_errors_total"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_a_new_application_for_its_platform() {
        let passthrough = Submit::new(Target::Passthrough, 0x0000_0001).unwrap();
        let translate = Submit::new(Target::Translate, 0x0000_0001).unwrap();
        let first: Value = serde_json::from_slice(passthrough.request(0).body()).unwrap();
        let second: Value = serde_json::from_slice(passthrough.request(7).body()).unwrap();
        assert_eq!(first["handling_region"], "520102");
        assert_eq!(first["application_id"], "00000001-7c00-7000-8000-000000000000");
        assert_eq!(second["application_id"], "00000001-7c00-7000-8000-000000000007");
        let hunan: Value = serde_json::from_slice(translate.request(0).body()).unwrap();
        assert_eq!(hunan["handling_region"], "430102");
        assert_eq!(hunan["applicant"]["kind"], "legal_person");
        assert_eq!(passthrough.request(0).uri(), "/v1/applications");
        assert_eq!(passthrough.needs().mocks, ["guizhou"]);
        assert_eq!(translate.needs().mocks, ["hunan"]);
        assert!(translate.is_success(StatusCode::CREATED) && !translate.is_success(StatusCode::ACCEPTED));
    }
}
