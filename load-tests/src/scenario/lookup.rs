//! Lookups answered by the gateway itself most of the time:
//! - `cached-status`: the state of one application (办件查询) at Guizhou, asked over and over; the
//!   gateway's response cache answers all but one lookup per freshness period (5 s by default);
//! - `rate-limited`: matter catalogue lookups (事项目录) by a partner held to
//!   500 requests a second; the rest are refused with `429` by the rate limiter.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde_json::Value;

use super::{GatewayNeeds, Scenario};

const NATURAL_PERSON: &str = include_str!("../../../tests/fixtures/canonical/natural_person.json");

/// The `rate-limited` partner's API key.
const LIMITED_KEY: &str = "load-limited-key";

/// The `[[partner]]` the `rate-limited` scenario calls as: 500 requests a second, burst 500.
const LIMITED_PARTNER: &str = "[[partner]]\n\
    name = \"load-limited\"\n\
    title = \"tongban-load: a partner held to 500 requests a second\"\n\
    api_keys = [\"load-limited-key\"]\n\
    rate = { per_second = 500, burst = 500 }\n";

pub struct CachedStatus {
    application_id: String,
    path: String,
}

impl CachedStatus {
    pub fn new(run_id: u32) -> anyhow::Result<CachedStatus> {
        // One application per run, so a rerun against the same platform reads its own case.
        let application_id = format!("{run_id:08x}-7c00-7000-8000-ca5e00000001");
        let path = format!("/v1/applications/{application_id}?region=520102");
        // Checked here, so a bad template fails before anything starts.
        let _: http::Uri = path.parse()?;
        Ok(CachedStatus { application_id, path })
    }
}

impl Scenario for CachedStatus {
    fn name(&self) -> &'static str {
        "cached-status"
    }

    fn describe(&self) -> &'static str {
        "GET /v1/applications/{id}?region=520102: the state of one Guizhou application, submitted before the run, asked again and again (the cache answers); success is 200"
    }

    fn needs(&self) -> GatewayNeeds {
        GatewayNeeds::platforms(&["guizhou"])
    }

    fn request(&self, _seq: u64) -> http::Request<Bytes> {
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = http::Uri::try_from(self.path.as_str()).unwrap_or_default();
        request
    }

    fn setup(&self) -> Vec<http::Request<Bytes>> {
        let mut application: Value = serde_json::from_str(NATURAL_PERSON).unwrap_or_default();
        application["application_id"] = self.application_id.clone().into();
        let mut request = http::Request::new(Bytes::from(application.to_string()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = http::Uri::from_static("/v1/applications");
        request.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        vec![request]
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status == StatusCode::OK
    }

    fn platform(&self) -> Option<&'static str> {
        Some("guizhou")
    }

    fn gateway_metrics(&self) -> &'static [&'static str] {
        &["tongban_cache_"]
    }
}

pub struct RateLimited;

impl Scenario for RateLimited {
    fn name(&self) -> &'static str {
        "rate-limited"
    }

    fn describe(&self) -> &'static str {
        "GET /v1/matters?region=520102 as partner load-limited (500 requests/s): the limiter admits 500 a second (answered from the cache) and refuses the rest with 429; both count as success"
    }

    fn needs(&self) -> GatewayNeeds {
        GatewayNeeds { mocks: &["guizhou"], partners: LIMITED_PARTNER }
    }

    fn request(&self, _seq: u64) -> http::Request<Bytes> {
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = http::Uri::from_static("/v1/matters?region=520102");
        request.headers_mut().insert("x-api-key", header::HeaderValue::from_static(LIMITED_KEY));
        request
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS
    }

    fn gateway_metrics(&self) -> &'static [&'static str] {
        &["tongban_rate_limited_total", "tongban_cache_"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_lookup_reads_the_application_its_setup_submits() {
        let scenario = CachedStatus::new(0x0102_0304).unwrap();
        let setup = scenario.setup();
        assert_eq!(setup.len(), 1);
        let submitted: Value = serde_json::from_slice(setup[0].body()).unwrap();
        let id = submitted["application_id"].as_str().unwrap();
        assert_eq!(id, "01020304-7c00-7000-8000-ca5e00000001");
        assert_eq!(scenario.request(5).uri().path(), format!("/v1/applications/{id}"));
        assert_eq!(scenario.request(5).uri().query(), Some("region=520102"));
        assert_eq!(scenario.request(5).uri(), scenario.request(6).uri(), "the same lookup every time");
    }

    #[test]
    fn the_limited_partner_is_configured_at_its_rate() {
        let needs = RateLimited.needs();
        let doc: toml::Table = needs.partners.parse().unwrap();
        let partner = &doc["partner"][0];
        assert_eq!(partner["api_keys"][0].as_str(), Some(LIMITED_KEY));
        assert_eq!(partner["rate"]["per_second"].as_integer(), Some(500));
        assert_eq!(RateLimited.request(1).headers()["x-api-key"], LIMITED_KEY);
        assert!(RateLimited.is_success(StatusCode::TOO_MANY_REQUESTS));
        assert!(RateLimited.platform().is_none(), "refusals never reach a platform: nothing to compare");
    }
}
