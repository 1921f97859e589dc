//! `native-ingress`: a Hunan window's system speaks only its own format, GBK-encoded XML, and
//! submits a Guangdong matter through `POST /v1/native/hunan/submit` (native ingress, 异地代收代办).
//! The gateway decodes the GBK XML, translates it to canonical with Hunan's mapping, sends it to
//! the Guangdong platform in that platform's JSON envelope, and translates the answer back to
//! Hunan's GBK XML: two mappings and two formats per request.

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, header};

use super::{GatewayNeeds, Scenario};

/// The window's document around its own reference number (外部编号 `wbbh`), as in the README's
/// worked example; encoded to GBK once.
const HEAD: &str = "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<sbxx>\n  <wbbh>";
const TAIL: &str = "</wbbh>
  <sx bm=\"000201002000\" mc=\"营业执照设立登记\"/>
  <qh bl=\"440106\" sj=\"430102\"/>
  <blms>异地代收代办</blms>
  <sqr lx=\"法人\">
    <xm>湖南湘江科技有限公司</xm>
    <zj lx=\"统一社会信用代码\" hm=\"91350100M000100Y43\"/>
    <lxdh>0731-84440000</lxdh>
    <fr tyshxydm=\"91350100M000100Y43\" fddbr=\"王五\"/>
  </sqr>
  <cllb/>
  <sqsj>2026-11-01 11:00:00</sqsj>
</sbxx>
";

pub struct NativeIngress {
    run_id: u32,
    head: Bytes,
    tail: Bytes,
}

impl NativeIngress {
    pub fn new(run_id: u32) -> NativeIngress {
        let gbk = |text: &str| Bytes::from(encoding_rs::GBK.encode(text).0.into_owned());
        NativeIngress { run_id, head: gbk(HEAD), tail: gbk(TAIL) }
    }

    /// Unique per run and request; ASCII, so it sits in the GBK bytes as is.
    pub fn reference(&self, seq: u64) -> String {
        format!("{:08x}-7c00-7000-8000-{:012x}", self.run_id, seq & 0xffff_ffff_ffff)
    }
}

impl Scenario for NativeIngress {
    fn name(&self) -> &'static str {
        "native-ingress"
    }

    fn describe(&self) -> &'static str {
        "POST /v1/native/hunan/submit: a Hunan window's GBK XML (440106 ← 430102) per request, sent on to Guangdong's JSON envelope and answered in GBK XML; success is 201"
    }

    fn needs(&self) -> GatewayNeeds {
        GatewayNeeds::platforms(&["guangdong"])
    }

    fn request(&self, seq: u64) -> http::Request<Bytes> {
        let reference = self.reference(seq);
        let mut body = BytesMut::with_capacity(self.head.len() + reference.len() + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(reference.as_bytes());
        body.extend_from_slice(&self.tail);
        let mut request = http::Request::new(body.freeze());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = http::Uri::from_static("/v1/native/hunan/submit");
        request.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/xml; charset=GBK"));
        request
    }

    fn is_success(&self, status: StatusCode) -> bool {
        status == StatusCode::CREATED
    }

    fn platform(&self) -> Option<&'static str> {
        Some("guangdong")
    }

    fn unique(&self, seq: u64) -> Option<String> {
        Some(self.reference(seq))
    }

    fn gateway_metrics(&self) -> &'static [&'static str] {
        &["tongban_requests_total", "tongban_upstream_errors_total"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_gbk_xml_with_its_own_reference() {
        let scenario = NativeIngress::new(0xabcd_0001);
        let request = scenario.request(9);
        assert_eq!(request.uri(), "/v1/native/hunan/submit");
        assert_eq!(request.headers()[header::CONTENT_TYPE], "text/xml; charset=GBK");
        let (text, _, malformed) = encoding_rs::GBK.decode(request.body());
        assert!(!malformed);
        assert!(text.contains("<wbbh>abcd0001-7c00-7000-8000-000000000009</wbbh>"), "{text}");
        assert!(text.contains("<xm>湖南湘江科技有限公司</xm>"));
        // GBK, not UTF-8: 湖 is BA FE in GBK.
        assert!(request.body().windows(2).any(|w| w == [0xBA, 0xFE]));
        assert_eq!(scenario.unique(9).as_deref(), Some("abcd0001-7c00-7000-8000-000000000009"));
    }
}
