//! Problems (错误响应): every error the gateway answers is an RFC 9457 `application/problem+json`
//! body made here, from one table ([`GatewayError::spec`]) that gives each cause its status, a
//! stable `type`, which side caused it and whether retrying may help. The same facts feed logs
//! and, later, metrics and retry policy.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::adapter::envelope::Outcome;
use crate::canonical::validate::FieldError;
use crate::mapping::MapError;

/// Media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Which side caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The caller sent something wrong.
    Downstream,
    /// The platform failed or refused.
    Upstream,
    /// The gateway itself.
    Gateway,
}

/// Every error a request can end in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// No such endpoint.
    #[error("no endpoint {method} {path}; see docs/canonical.md for the API")]
    NoEndpoint {
        /// Method.
        method: String,
        /// Path.
        path: String,
    },
    /// The endpoint exists for other methods.
    #[error("{path} does not accept {method}; use {allowed}")]
    MethodNotAllowed {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Allowed methods.
        allowed: &'static str,
    },
    /// Body larger than the limit.
    #[error(
        "the request body is larger than {limit} bytes; send materials by reference or ask the operator to raise server.body_limit_bytes"
    )]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A material is larger than the configured limit.
    #[error("{detail}")]
    MaterialTooLarge {
        /// The material's field path or multipart part.
        field: String,
        /// What is too large and the fix.
        detail: String,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {}; send it at once after the headers", humanize(*after))]
    BodyTimeout {
        /// The limit.
        after: Duration,
    },
    /// The path names an application id that cannot be one.
    #[error(
        "'{id}' is not an application id: use the application_id from the submit answer (letters, digits, '-' and '_')"
    )]
    BadApplicationId {
        /// The id as sent.
        id: String,
    },
    /// The body could not be parsed at all.
    #[error("{detail}")]
    Unparseable {
        /// What is wrong.
        detail: String,
        /// Where, when known (a JSON pointer or "line L, column C").
        field: Option<String>,
    },
    /// A query parameter is missing or malformed.
    #[error("query parameter '{name}' {detail}")]
    BadQuery {
        /// Parameter name.
        name: &'static str,
        /// What is wrong and the fix.
        detail: String,
    },
    /// The document parsed but is invalid; every failing field is listed.
    #[error("the application is invalid: {}", summary(errors))]
    Invalid {
        /// Failing fields.
        errors: Vec<FieldError>,
    },
    /// A native document could not be translated to canonical (native ingress).
    #[error("the {adapter} document cannot be translated: {error}")]
    NativeUntranslatable {
        /// The caller's adapter.
        adapter: String,
        /// The mapping error.
        error: MapError,
    },
    /// A canonical request cannot be expressed in the target platform's format.
    #[error("the application cannot be expressed for platform {adapter}: {error}")]
    TargetUntranslatable {
        /// The target adapter.
        adapter: String,
        /// The mapping error.
        error: MapError,
    },
    /// A field the target platform needs to look a case up is missing.
    #[error("platform {adapter} needs '{field}' for this operation; {hint}")]
    MissingLookupField {
        /// The target adapter.
        adapter: String,
        /// The canonical field.
        field: String,
        /// How to supply it.
        hint: String,
    },
    /// No adapter of that name (native ingress).
    #[error("no adapter named '{name}'; see GET /v1/adapters on the admin listener or the adapters/ directory")]
    UnknownAdapter {
        /// The name.
        name: String,
    },
    /// The adapter does not offer the operation, or not for ingress.
    #[error(
        "adapter '{adapter}' offers no '{operation}' operation here (native ingress needs one whose mapping has a [request]); check its adapter file"
    )]
    UnsupportedOperation {
        /// The adapter.
        adapter: String,
        /// The operation.
        operation: String,
    },
    /// No platform serves the handling region.
    #[error("no platform serves region {region}; check the code, or add an adapter whose regions cover it")]
    NoRoute {
        /// The region code.
        region: String,
    },
    /// The matter list refuses the exchange.
    #[error("{detail}")]
    OutsideMatterList {
        /// The refusal sentence.
        detail: String,
        /// The rule that refused (`file:line`).
        rule: String,
    },
    /// The platform answered with a business error.
    #[error("platform {adapter} refused: {} ({code})", message.as_deref().unwrap_or("no message"))]
    UpstreamBusiness {
        /// The platform.
        adapter: String,
        /// Canonical outcome.
        outcome: Outcome,
        /// The platform's code.
        code: String,
        /// The platform's message.
        message: Option<String>,
    },
    /// The platform could not be reached, or dropped the connection.
    #[error("platform {adapter} could not be reached: {detail}")]
    UpstreamUnreachable {
        /// The platform.
        adapter: String,
        /// What failed.
        detail: String,
    },
    /// The platform did not answer in time.
    #[error("platform {adapter} did not answer within {}", humanize(*after))]
    UpstreamTimeout {
        /// The platform.
        adapter: String,
        /// The timeout.
        after: Duration,
    },
    /// The platform answered something the gateway cannot use.
    #[error("platform {adapter} answered with something unusable: {detail}")]
    UpstreamBadAnswer {
        /// The platform.
        adapter: String,
        /// What was wrong.
        detail: String,
        /// HTTP status of the answer.
        status: u16,
    },
    /// No known partner identity.
    #[error("{reason}; {fix}")]
    Unauthorized {
        /// What was missing or wrong.
        reason: String,
        /// What the caller does about it.
        fix: &'static str,
    },
    /// An `Idempotency-Key` that cannot name an acceptance.
    #[error("{detail}")]
    BadIdempotencyKey {
        /// What is wrong and the fix.
        detail: &'static str,
    },
    /// The partner is identified but lacks a right (访问权限).
    #[error("{}", crate::problem::forbidden_detail(partner, right, value))]
    Forbidden {
        /// The partner.
        partner: String,
        /// The kind of right: operation, region, matter or from.
        right: &'static str,
        /// What was asked for.
        value: String,
        /// The request field that named the value, when one did (a `from` region).
        field: Option<&'static str>,
    },
    /// Over a rate limit.
    #[error("over the {policy} rate limit ({limit}); retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// The limit's id.
        limit: String,
        /// The limit's policy name (partner, target, partner-operation, anonymous).
        policy: String,
        /// When a retry may succeed.
        retry_after: Duration,
        /// `RateLimit-Policy` and `RateLimit` header values.
        headers: Option<(String, String)>,
    },
    /// The platform's concurrency cap stayed full.
    #[error("platform {adapter} is at its concurrency limit; retry after {} s", retry_after.as_secs())]
    BulkheadFull {
        /// The platform.
        adapter: String,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The application id was accepted before under another idempotency key.
    #[error("{detail}")]
    AcceptanceConflict {
        /// What conflicts.
        detail: String,
    },
    /// The `Idempotency-Key` names the caller's acceptance of another application.
    #[error("{detail}")]
    IdempotencyKeyReused {
        /// Which application the key belongs to, and the fix.
        detail: String,
    },
    /// No acceptance has that receipt number.
    #[error("no acceptance has receipt '{receipt}'; use the receipt from the 202 answer")]
    UnknownReceipt {
        /// The receipt asked for.
        receipt: String,
    },
    /// A request body (other than an application) has invalid fields; every one is listed.
    #[error("the request is invalid: {}", summary(errors))]
    InvalidRequest {
        /// Failing fields.
        errors: Vec<FieldError>,
    },
    /// The issuing platform's adapter has no certificate library operation.
    #[error(
        "platform {adapter} offers no certificate lookup; its adapter needs [operations.certificate] and [[certificate_keys]] (docs/onboarding.md)"
    )]
    NoCertificateLibrary {
        /// The platform.
        adapter: String,
    },
    /// The certificate failed verification (验签失败) and is never shown as genuine or printed.
    #[error("certificate {certificate_id} from platform {adapter} is refused: {reason}; {fix}")]
    CertificateUnverified {
        /// The issuing platform.
        adapter: String,
        /// 证照编号.
        certificate_id: String,
        /// `unsigned`, `unknown-key`, `algorithm-mismatch`, `key-not-trusted` or `bad-signature`.
        code: &'static str,
        /// What failed.
        reason: String,
        /// What the operator can do.
        fix: &'static str,
    },
    /// The certificate is cancelled, revoked, expired or not yet valid.
    #[error("certificate {certificate_id} cannot be printed: {detail}")]
    CertificateNotPrintable {
        /// 证照编号.
        certificate_id: String,
        /// `cancelled`, `revoked`, `expired` or `not_yet_valid`.
        reason: &'static str,
        /// The certificate member that forbids it.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A certificate printed before needs a reprint reason (补打原因).
    #[error(
        "certificate {certificate_id} was printed before ({printed} print(s) recorded); a reprint needs 'reprint_reason', e.g. \"原件遗失\""
    )]
    ReprintReasonRequired {
        /// 证照编号.
        certificate_id: String,
        /// Prints so far.
        printed: u32,
    },
    /// The document cannot be made as configured (font coverage, template).
    #[error("{detail}")]
    CertificateUnprintable {
        /// `glyphs-missing`, `no-template` or `pdf`.
        code: &'static str,
        /// The certificate field concerned, when known.
        field: Option<String>,
        /// What is wrong and the fix.
        detail: String,
    },
    /// No print job has that id.
    #[error("no print job '{job_id}'; use the job_id from the 201 answer or the site's queue")]
    UnknownPrintJob {
        /// The id asked for.
        job_id: String,
    },
    /// The print job's state forbids the change.
    #[error("{detail}")]
    PrintJobConflict {
        /// What conflicts and what to do.
        detail: String,
    },
    /// `[printing]` is not configured.
    #[error("certificate printing is not configured on this gateway; the operator adds [printing] to the config file")]
    PrintingDisabled,
    /// A bug or an exhausted resource in the gateway.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(errors: &[FieldError]) -> String {
    let first: Vec<String> = errors.iter().take(3).map(|e| format!("{} {}", e.field, e.detail)).collect();
    let more = errors.len().saturating_sub(3);
    if more > 0 { format!("{}; and {more} more", first.join("; ")) } else { first.join("; ") }
}

/// The `[partner.allow]` list that grants a kind of right.
pub(crate) fn allow_list(right: &str) -> &'static str {
    match right {
        "region" => "allow.regions",
        "matter" => "allow.matters",
        "from" => "allow.from",
        // Not a right anyone is granted: the window that accepted an acceptance never decides it.
        "own" => "none",
        _ => "allow.operations",
    }
}

/// The refusal's detail: what is missing, and where the operator grants it.
pub(crate) fn forbidden_detail(partner: &str, right: &str, value: &str) -> String {
    if right == "own" {
        return format!(
            "partner '{partner}' accepted {value} itself; decisions on an acceptance come from its handling side (a partner with the decide right), never from the window that accepted it"
        );
    }
    if right == "from" {
        return format!(
            "partner '{partner}' may not act from region '{value}': windows and print sites there are that region's own partners'; give a region of this partner's own, or the operator grants it in this partner's [partner.allow] from (without it, the partner's province) in tongban.toml"
        );
    }
    format!(
        "partner '{partner}' has no right to {right} '{value}'; the operator grants it in this partner's [partner.allow] {} in tongban.toml",
        allow_list(right).trim_start_matches("allow.")
    )
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The facts of one row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemSpec {
    /// HTTP status.
    pub status: u16,
    /// Stable slug; the `type` is `urn:tongban:problem:<slug>`.
    pub slug: &'static str,
    /// Short title.
    pub title: &'static str,
    /// Who caused it.
    pub side: Side,
    /// Whether the same request may succeed later.
    pub retryable: bool,
}

const fn spec(status: u16, slug: &'static str, title: &'static str, side: Side, retryable: bool) -> ProblemSpec {
    ProblemSpec { status, slug, title, side, retryable }
}

impl GatewayError {
    /// A `from` refusal names the request field that gave the region (other errors pass).
    pub fn from_field(self, at: &'static str) -> GatewayError {
        match self {
            GatewayError::Forbidden { partner, right: "from", value, .. } => {
                GatewayError::Forbidden { partner, right: "from", value, field: Some(at) }
            }
            other => other,
        }
    }

    /// When the caller may retry, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::RateLimited { retry_after, .. } | GatewayError::BulkheadFull { retry_after, .. } => {
                Some(*retry_after)
            }
            GatewayError::UpstreamBusiness { outcome: Outcome::Unavailable, .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The one table: error → status, type, side, retryability.
    pub fn spec(&self) -> ProblemSpec {
        use Side::*;
        match self {
            GatewayError::NoEndpoint { .. } => spec(404, "no-endpoint", "No such endpoint", Downstream, false),
            GatewayError::MethodNotAllowed { .. } => {
                spec(405, "method-not-allowed", "Method not allowed", Downstream, false)
            }
            GatewayError::BodyTooLarge { .. } => {
                spec(413, "body-too-large", "Request body too large", Downstream, false)
            }
            GatewayError::MaterialTooLarge { .. } => {
                spec(413, "material-too-large", "Material too large", Downstream, false)
            }
            GatewayError::BodyTimeout { .. } => spec(408, "body-timeout", "Request body too slow", Downstream, true),
            GatewayError::BadApplicationId { .. } => {
                spec(400, "bad-application-id", "Not an application id", Downstream, false)
            }
            GatewayError::Unparseable { .. } => {
                spec(400, "unparseable", "Request body cannot be parsed", Downstream, false)
            }
            GatewayError::BadQuery { .. } => {
                spec(400, "bad-query", "Missing or invalid query parameter", Downstream, false)
            }
            GatewayError::Invalid { .. } => spec(422, "invalid", "Invalid application", Downstream, false),
            GatewayError::NativeUntranslatable { .. } => {
                spec(422, "native-untranslatable", "Native document cannot be translated", Downstream, false)
            }
            GatewayError::TargetUntranslatable { .. } => spec(
                422,
                "target-untranslatable",
                "Application cannot be expressed for the handling platform",
                Downstream,
                false,
            ),
            GatewayError::MissingLookupField { .. } => {
                spec(422, "missing-lookup-field", "The handling platform needs another field", Downstream, false)
            }
            GatewayError::UnknownAdapter { .. } => spec(404, "unknown-adapter", "Unknown adapter", Downstream, false),
            GatewayError::UnsupportedOperation { .. } => {
                spec(404, "unsupported-operation", "Operation not offered", Downstream, false)
            }
            GatewayError::NoRoute { .. } => spec(404, "no-route", "No platform serves the region", Downstream, false),
            GatewayError::OutsideMatterList { .. } => {
                spec(403, "outside-matter-list", "Not allowed by the matter list", Downstream, false)
            }
            GatewayError::UpstreamBusiness { outcome, .. } => match outcome {
                Outcome::Invalid => spec(
                    422,
                    "upstream-invalid",
                    "The handling platform found the application invalid",
                    Upstream,
                    false,
                ),
                Outcome::Rejected => {
                    spec(422, "upstream-rejected", "The handling platform refused the application", Upstream, false)
                }
                Outcome::NotFound => {
                    spec(404, "upstream-not-found", "The handling platform does not know it", Upstream, false)
                }
                Outcome::Duplicate => {
                    spec(409, "upstream-duplicate", "The handling platform already has it", Upstream, false)
                }
                Outcome::Unavailable => {
                    spec(503, "upstream-unavailable", "The handling platform is busy", Upstream, true)
                }
            },
            GatewayError::UpstreamUnreachable { .. } => {
                spec(502, "upstream-unreachable", "Handling platform unreachable", Upstream, true)
            }
            GatewayError::UpstreamTimeout { .. } => {
                spec(504, "upstream-timeout", "Handling platform timed out", Upstream, true)
            }
            GatewayError::UpstreamBadAnswer { .. } => {
                spec(502, "upstream-bad-answer", "Handling platform answered unusably", Upstream, true)
            }
            GatewayError::Unauthorized { .. } => spec(401, "unauthorized", "Unknown caller", Downstream, false),
            GatewayError::Forbidden { .. } => spec(403, "forbidden", "Not allowed for this partner", Downstream, false),
            GatewayError::BadIdempotencyKey { .. } => {
                spec(400, "bad-idempotency-key", "Unusable Idempotency-Key", Downstream, false)
            }
            GatewayError::RateLimited { .. } => spec(429, "rate-limited", "Too many requests", Downstream, true),
            GatewayError::BulkheadFull { .. } => {
                spec(503, "platform-busy", "Handling platform at capacity", Upstream, true)
            }
            GatewayError::UnknownReceipt { .. } => spec(404, "unknown-receipt", "Unknown receipt", Downstream, false),
            GatewayError::AcceptanceConflict { .. } => {
                spec(409, "acceptance-conflict", "Accepted before under another key", Downstream, false)
            }
            GatewayError::IdempotencyKeyReused { .. } => {
                spec(409, "idempotency-key-reused", "Idempotency-Key used for another application", Downstream, false)
            }
            GatewayError::InvalidRequest { .. } => spec(422, "invalid-request", "Invalid request", Downstream, false),
            GatewayError::NoCertificateLibrary { .. } => {
                spec(404, "no-certificate-library", "The issuing platform has no certificate lookup", Downstream, false)
            }
            GatewayError::CertificateUnverified { .. } => {
                spec(502, "certificate-unverified", "Certificate failed verification", Upstream, false)
            }
            GatewayError::CertificateNotPrintable { .. } => {
                spec(409, "certificate-not-printable", "Certificate cannot be printed", Downstream, false)
            }
            GatewayError::ReprintReasonRequired { .. } => {
                spec(409, "reprint-reason-required", "Certificate printed before", Downstream, false)
            }
            GatewayError::CertificateUnprintable { .. } => {
                spec(500, "certificate-unprintable", "Certificate cannot be rendered", Gateway, false)
            }
            GatewayError::UnknownPrintJob { .. } => {
                spec(404, "unknown-print-job", "Unknown print job", Downstream, false)
            }
            GatewayError::PrintJobConflict { .. } => {
                spec(409, "print-job-conflict", "Print job state conflict", Downstream, false)
            }
            GatewayError::PrintingDisabled => {
                spec(404, "printing-disabled", "Certificate printing not configured", Downstream, false)
            }
            GatewayError::Internal(_) => spec(500, "internal", "Internal gateway error", Gateway, true),
        }
    }

    /// The RFC 9457 body, with the request id and the error's own fields.
    pub fn to_problem(&self, request_id: &str) -> Value {
        let spec = self.spec();
        let mut body = serde_json::json!({
            "type": format!("urn:tongban:problem:{}", spec.slug),
            "title": spec.title,
            "status": spec.status,
            "detail": self.to_string(),
            "request_id": request_id,
            "side": spec.side,
            "retryable": spec.retryable,
        });
        let extra = match self {
            GatewayError::Invalid { errors } => {
                serde_json::json!({ "errors": errors, "field": errors.first().map(|e| &e.field) })
            }
            GatewayError::Unparseable { field: Some(field), .. } => serde_json::json!({ "field": field }),
            GatewayError::MaterialTooLarge { field, .. } => serde_json::json!({ "field": field }),
            GatewayError::InvalidRequest { errors } => {
                serde_json::json!({ "errors": errors, "field": errors.first().map(|e| &e.field) })
            }
            GatewayError::NoCertificateLibrary { adapter } => serde_json::json!({ "adapter": adapter }),
            GatewayError::CertificateUnverified { adapter, certificate_id, code, .. } => {
                serde_json::json!({ "adapter": adapter, "certificate_id": certificate_id, "verification": code })
            }
            GatewayError::CertificateNotPrintable { certificate_id, reason, field, .. } => {
                serde_json::json!({ "certificate_id": certificate_id, "reason": reason, "field": field })
            }
            GatewayError::ReprintReasonRequired { certificate_id, printed } => serde_json::json!({
                "certificate_id": certificate_id, "printed": printed, "field": "/reprint_reason"
            }),
            GatewayError::CertificateUnprintable { code, field, .. } => {
                serde_json::json!({ "reason": code, "field": field })
            }
            GatewayError::BadQuery { name, .. } => serde_json::json!({ "field": format!("?{name}") }),
            GatewayError::BadIdempotencyKey { .. } | GatewayError::IdempotencyKeyReused { .. } => {
                serde_json::json!({ "field": "header:Idempotency-Key" })
            }
            GatewayError::Forbidden { partner, right, value, field } => {
                let mut extension = serde_json::json!({
                    "partner": partner,
                    "missing_right": { "kind": right, "value": value, "list": allow_list(right) }
                });
                if let Some(field) = field {
                    extension["field"] = serde_json::Value::from(*field);
                }
                extension
            }
            GatewayError::NativeUntranslatable { adapter, error } => {
                serde_json::json!({ "field": error.path(), "adapter": adapter })
            }
            GatewayError::TargetUntranslatable { adapter, error } => {
                serde_json::json!({ "field": error.path(), "adapter": adapter })
            }
            GatewayError::MissingLookupField { adapter, field, .. } => {
                serde_json::json!({ "field": format!("/{field}"), "adapter": adapter })
            }
            GatewayError::OutsideMatterList { rule, .. } => serde_json::json!({ "rule": rule }),
            GatewayError::RateLimited { limit, policy, .. } => serde_json::json!({ "limit": limit, "policy": policy }),
            GatewayError::BulkheadFull { adapter, .. } => serde_json::json!({ "adapter": adapter }),
            GatewayError::UpstreamBusiness { adapter, outcome, code, message } => serde_json::json!({
                "adapter": adapter,
                "upstream": { "outcome": outcome.as_str(), "code": code, "message": message },
            }),
            GatewayError::UpstreamUnreachable { adapter, .. } | GatewayError::UpstreamTimeout { adapter, .. } => {
                serde_json::json!({ "adapter": adapter })
            }
            GatewayError::UpstreamBadAnswer { adapter, status, .. } => {
                serde_json::json!({ "adapter": adapter, "upstream": { "status": status } })
            }
            _ => Value::Null,
        };
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_has_a_stable_type_and_status() {
        let error = GatewayError::UpstreamTimeout { adapter: "guizhou".into(), after: Duration::from_secs(15) };
        let problem = error.to_problem("r-1");
        assert_eq!(problem["type"], "urn:tongban:problem:upstream-timeout");
        assert_eq!(problem["status"], 504);
        assert_eq!(problem["detail"], "platform guizhou did not answer within 15s");
        assert_eq!(problem["retryable"], true);
        assert_eq!(problem["side"], "upstream");
    }

    #[test]
    fn invalid_lists_every_field() {
        let errors = vec![
            FieldError { field: "/applicant/id_number".into(), detail: "bad".into() },
            FieldError { field: "/submitted_at".into(), detail: "bad".into() },
        ];
        let problem = GatewayError::Invalid { errors }.to_problem("r");
        assert_eq!(problem["status"], 422);
        assert_eq!(problem["field"], "/applicant/id_number");
        assert_eq!(problem["errors"].as_array().map(Vec::len), Some(2));
    }
}
