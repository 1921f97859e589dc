//! `acceptance`: a Guangdong window (天河区 440106) accepts a Guizhou matter (南明区 520102) for
//! proxy acceptance (异地代收代办). The gateway commits each one durably before it answers
//! `202 Accepted`, so this measures the rate of durably acknowledged acceptances.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::{GatewayNeeds, Scenario};

/// The canonical natural-person application the integration tests use.
const FIXTURE: &str = include_str!("../../../tests/fixtures/canonical/natural_person.json");

/// Stands in for the application id in the serialised body template.
const PLACEHOLDER: &str = "@@APPLICATION_ID@@";

pub struct Acceptance {
    run_id: u32,
    /// The body before and after the application id, serialised once.
    head: String,
    tail: String,
}

impl Acceptance {
    pub fn new(run_id: u32) -> anyhow::Result<Acceptance> {
        let mut application: Value = serde_json::from_str(FIXTURE)?;
        application["mode"] = "proxy_acceptance".into();
        application["application_id"] = PLACEHOLDER.into();
        let body = json!({
            "accepting_site": { "window_id": "GD-TH-0007", "region": "440106" },
            "application": application,
        })
        .to_string();
        let Some((head, tail)) = body.split_once(PLACEHOLDER) else {
            anyhow::bail!("the acceptance body template lost its application id placeholder");
        };
        Ok(Acceptance { run_id, head: head.to_owned(), tail: tail.to_owned() })
    }

    /// UUID-shaped and unique per run and request: the run id in the first group, `seq` in the last.
    pub fn application_id(&self, seq: u64) -> String {
        format!("{:08x}-7c00-7000-8000-{:012x}", self.run_id, seq & 0xffff_ffff_ffff)
    }
}

impl Scenario for Acceptance {
    fn name(&self) -> &'static str {
        "acceptance"
    }

    fn describe(&self) -> &'static str {
        "POST /v1/acceptances: a new proxy acceptance (440106 → 520102) per request, with its own Idempotency-Key; success is 202"
    }

    fn needs(&self) -> GatewayNeeds {
        // The accepting side and the handling platform the delivery worker forwards to.
        GatewayNeeds::platforms(&["guizhou", "guangdong"])
    }

    fn request(&self, seq: u64) -> http::Request<Bytes> {
        let id = self.application_id(seq);
        let body = format!("{}{id}{}", self.head, self.tail);
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = http::Uri::from_static("/v1/acceptances");
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        if let Ok(key) = header::HeaderValue::from_str(&format!("load-{id}")) {
            headers.insert("idempotency-key", key);
        }
        request
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status == StatusCode::ACCEPTED
    }

    fn gateway_metrics(&self) -> &'static [&'static str] {
        &["tongban_acceptances_total", "tongban_acceptance_deliveries_total", "tongban_acceptance_queue_depth"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_a_new_proxy_acceptance() {
        let scenario = Acceptance::new(0xabcd_0123).unwrap();
        let first = scenario.request(0);
        let second = scenario.request(41);
        assert_eq!(first.method(), Method::POST);
        assert_eq!(first.uri(), "/v1/acceptances");
        let body: Value = serde_json::from_slice(first.body()).unwrap();
        assert_eq!(body["accepting_site"], json!({ "window_id": "GD-TH-0007", "region": "440106" }));
        assert_eq!(body["application"]["mode"], "proxy_acceptance");
        assert_eq!(body["application"]["handling_region"], "520102");
        assert_eq!(body["application"]["application_id"], "abcd0123-7c00-7000-8000-000000000000");
        let other: Value = serde_json::from_slice(second.body()).unwrap();
        assert_eq!(other["application"]["application_id"], "abcd0123-7c00-7000-8000-000000000029");
        assert_eq!(first.headers()["idempotency-key"], "load-abcd0123-7c00-7000-8000-000000000000");
        assert_ne!(first.headers()["idempotency-key"], second.headers()["idempotency-key"]);
        assert!(scenario.is_success(StatusCode::ACCEPTED));
        assert!(!scenario.is_success(StatusCode::OK));
    }
}
