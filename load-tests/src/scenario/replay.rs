//! The `direct` and `nginx` legs of a side-by-side run send what the platform itself receives: the
//! native request the gateway sent for the pre-flight check, read back from the simulated
//! platform (`GET /_mock/received`) and replayed with each request's own unique value (its
//! application id) where request 0's was. So the three legs carry the same work to the platform.

use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use super::{GatewayNeeds, Scenario};

pub struct Replay {
    scenario: Arc<dyn Scenario>,
    method: Method,
    /// The path and query, cut where request 0's unique value was.
    path: Vec<String>,
    content_type: Option<HeaderValue>,
    /// The body, cut the same way.
    body: Vec<Bytes>,
}

impl Replay {
    /// From the last entry of a platform's `GET /_mock/received` list: the request that answered
    /// the scenario's request 0.
    pub fn from_received(received: &Value, scenario: Arc<dyn Scenario>) -> anyhow::Result<Replay> {
        let Some(last) = received.as_array().and_then(|list| list.last()) else {
            bail!("the platform received no request for the pre-flight check, so there is nothing to replay");
        };
        let text = |key: &str| last.get(key).and_then(Value::as_str);
        let method: Method = text("method").context("no method in /_mock/received")?.parse()?;
        let path = text("path").context("no path in /_mock/received")?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(text("body_base64").unwrap_or_default())
            .context("body_base64 in /_mock/received")?;
        let content_type = last
            .pointer("/headers/content-type")
            .and_then(Value::as_str)
            .map(HeaderValue::from_str)
            .transpose()
            .context("content-type in /_mock/received")?;
        let unique = scenario.unique(0);
        let (path, body) = match &unique {
            Some(value) => {
                (path.split(value.as_str()).map(str::to_owned).collect(), split(&Bytes::from(body), value.as_bytes()))
            }
            None => (vec![path.to_owned()], vec![Bytes::from(body)]),
        };
        if unique.is_some() && path.len() + body.len() == 2 {
            bail!("request 0's unique value is in neither the path nor the body the platform received");
        }
        Ok(Replay { scenario, method, path, content_type, body })
    }
}

/// `haystack` cut at every occurrence of `needle` (a non-empty ASCII value).
fn split(haystack: &Bytes, needle: &[u8]) -> Vec<Bytes> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while !needle.is_empty() && at + needle.len() <= haystack.len() {
        if haystack[at..].starts_with(needle) {
            parts.push(haystack.slice(start..at));
            at += needle.len();
            start = at;
        } else {
            at += 1;
        }
    }
    parts.push(haystack.slice(start..));
    parts
}

impl Scenario for Replay {
    fn name(&self) -> &'static str {
        self.scenario.name()
    }

    fn describe(&self) -> &'static str {
        "the native request the platform received for the scenario's request, sent to it directly"
    }

    fn needs(&self) -> GatewayNeeds {
        self.scenario.needs()
    }

    fn request(&self, seq: u64) -> http::Request<Bytes> {
        let unique = self.scenario.unique(seq).unwrap_or_default();
        let path = self.path.join(&unique);
        let mut body = BytesMut::with_capacity(self.body.iter().map(Bytes::len).sum::<usize>() + 2 * unique.len());
        for (i, part) in self.body.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(unique.as_bytes());
            }
            body.extend_from_slice(part);
        }
        let mut request = http::Request::new(body.freeze());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
        if let Some(content_type) = &self.content_type {
            request.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
        }
        request
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status.is_success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Numbered;

    impl Scenario for Numbered {
        fn name(&self) -> &'static str {
            "numbered"
        }
        fn describe(&self) -> &'static str {
            "test"
        }
        fn needs(&self) -> GatewayNeeds {
            GatewayNeeds::platforms(&["guizhou"])
        }
        fn request(&self, _seq: u64) -> http::Request<Bytes> {
            http::Request::new(Bytes::new())
        }
        fn is_success(&self, status: StatusCode) -> bool {
            status == StatusCode::CREATED
        }
        fn unique(&self, seq: u64) -> Option<String> {
            Some(format!("ID-{seq:04}"))
        }
    }

    #[test]
    fn the_received_request_is_replayed_with_each_requests_own_id() {
        let body = "{\"wbbh\":\"ID-0000\",\"bz\":\"ID-0000 again\"}";
        let received = json!([
            {"method": "GET", "path": "/older", "headers": {}, "body_base64": ""},
            {
                "method": "POST",
                "path": "/api/sb/tj?wbbh=ID-0000",
                "headers": {"content-type": "application/json; charset=utf-8"},
                "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
            }
        ]);
        let replay = Replay::from_received(&received, Arc::new(Numbered)).unwrap();
        let request = replay.request(42);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/api/sb/tj?wbbh=ID-0042");
        assert_eq!(request.headers()[header::CONTENT_TYPE], "application/json; charset=utf-8");
        assert_eq!(request.body(), "{\"wbbh\":\"ID-0042\",\"bz\":\"ID-0042 again\"}");
        assert!(replay.is_success(StatusCode::OK), "any 2xx from the platform itself");
    }

    #[test]
    fn nothing_received_or_no_id_is_an_error() {
        assert!(Replay::from_received(&json!([]), Arc::new(Numbered)).is_err());
        let other = json!([{"method": "POST", "path": "/x", "headers": {}, "body_base64": ""}]);
        assert!(Replay::from_received(&other, Arc::new(Numbered)).is_err());
    }

    #[test]
    fn split_keeps_every_byte() {
        let parts = split(&Bytes::from_static(b"aXXbXXXXc"), b"XX");
        assert_eq!(parts, [&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(split(&Bytes::from_static(b"abc"), b"XX"), [&b"abc"[..]]);
    }
}
