//! Validation of canonical applications (规范校验): every failing field is collected, each with
//! its path and what to do about it.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::ids::{check_resident_id, check_uscc};
use super::{ApplicantKind, Application, IdType};
use crate::regions::{RegionTable, Resolved};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON pointer of the field, e.g. `/applicant/id_number`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub detail: String,
}

impl FieldError {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), detail: detail.into() }
    }
}

/// The outcome of validating an application.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Refusing errors.
    pub errors: Vec<FieldError>,
    /// Unified social credit codes that fail only their check character. Whether this refuses
    /// the application is the target adapter's choice (some early legally issued codes fail).
    pub uscc_check_failures: Vec<FieldError>,
    /// The handling region, resolved to a current code.
    pub handling: Option<Resolved>,
    /// The accepting region, resolved to a current code.
    pub accepting: Option<Resolved>,
}

/// Longest accepted identifier, to keep logs and upstream fields bounded.
const MAX_ID_LEN: usize = 64;

/// Validates an application.
pub fn validate(app: &Application, regions: &RegionTable) -> Validation {
    let mut out = Validation::default();
    let errors = &mut out.errors;

    if let Some(id) = &app.application_id
        && (id.is_empty()
            || id.len() > MAX_ID_LEN
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        errors.push(FieldError::new(
            "/application_id",
            "must be 1–64 characters of letters, digits, '-' or '_'; omit it to let the gateway assign one",
        ));
    }
    if app.matter.code.trim().is_empty() || app.matter.code.len() > MAX_ID_LEN {
        errors.push(FieldError::new("/matter/code", "must be the matter's catalogue code (事项编码), 1–64 characters"));
    }
    if app.matter.name.trim().is_empty() {
        errors.push(FieldError::new("/matter/name", "must not be empty; give the matter's name (事项名称)"));
    }
    out.handling = region(regions, &app.handling_region, "/handling_region", errors);
    out.accepting = region(regions, &app.accepting_region, "/accepting_region", errors);

    let applicant = &app.applicant;
    // Birth dates after today are typing errors (Beijing's date: the platforms' own).
    let today = crate::certificate::beijing_today(chrono::Utc::now());
    if applicant.name.trim().is_empty() {
        errors.push(FieldError::new("/applicant/name", "must not be empty"));
    }
    match (applicant.kind, applicant.id_type) {
        (ApplicantKind::NaturalPerson, IdType::Uscc) => errors.push(FieldError::new(
            "/applicant/id_type",
            "a natural person cannot use a unified social credit code; use resident_id, passport, hk_macao_pass, taiwan_pass or foreign_permanent_resident",
        )),
        (_, IdType::ResidentId) => resident_id(&applicant.id_number, "/applicant/id_number", today, errors),
        (_, IdType::Uscc) => {
            if let Err(err) = check_uscc(&applicant.id_number) {
                uscc_failure(&mut out.uscc_check_failures, errors, "/applicant/id_number", err);
            }
        }
        _ if applicant.id_number.trim().is_empty() => {
            errors.push(FieldError::new("/applicant/id_number", "must not be empty"));
        }
        _ => {}
    }
    if let Some(date) = &applicant.birth_date {
        match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            Err(_) => errors.push(FieldError::new(
                "/applicant/birth_date",
                format!("'{date}' is not a date; write yyyy-MM-dd, e.g. 1949-12-31"),
            )),
            Ok(born) if born > today => errors.push(FieldError::new(
                "/applicant/birth_date",
                format!("'{date}' is in the future; write the applicant's birth date"),
            )),
            Ok(_) => {}
        }
    }
    if let Some(phone) = &applicant.phone {
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        // Platforms accept digits, '+' and '-' only, so nothing else is let through.
        if !(5..=20).contains(&digits) || !phone.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
            errors.push(FieldError::new(
                "/applicant/phone",
                "must be a phone number of 5–20 digits, with optional '+' and '-', e.g. 0851-85550000",
            ));
        }
    }
    if applicant.kind == ApplicantKind::LegalPerson {
        match &applicant.uscc {
            None => errors.push(FieldError::new(
                "/applicant/uscc",
                "a legal person needs its unified social credit code (统一社会信用代码)",
            )),
            Some(code) => {
                if let Err(err) = check_uscc(code) {
                    uscc_failure(&mut out.uscc_check_failures, errors, "/applicant/uscc", err);
                }
            }
        }
        if applicant.legal_representative.is_none() {
            errors.push(FieldError::new(
                "/applicant/legal_representative",
                "a legal person needs its legal representative (法定代表人)",
            ));
        }
    }
    if let Some(rep) = &applicant.legal_representative
        && let (Some(IdType::ResidentId), Some(number)) = (rep.id_type, &rep.id_number)
    {
        resident_id(number, "/applicant/legal_representative/id_number", today, errors);
    }

    for (index, material) in app.materials.iter().enumerate() {
        let at = |field: &str| format!("/materials/{index}/{field}");
        if material.name.trim().is_empty() {
            errors.push(FieldError::new(at("name"), "must not be empty"));
        }
        if !material.media_type.contains('/') {
            errors
                .push(FieldError::new(at("media_type"), "must be a media type such as application/pdf or image/jpeg"));
        }
        let sha_ok = material.sha256.len() == 64
            && material.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !sha_ok {
            errors.push(FieldError::new(at("sha256"), "must be the SHA-256 of the content as 64 lowercase hex digits"));
        }
        match (&material.content_base64, &material.reference) {
            (Some(content), None) => match base64::engine::general_purpose::STANDARD.decode(content) {
                Ok(bytes) => {
                    if bytes.len() as u64 != material.size {
                        errors.push(FieldError::new(
                            at("size"),
                            format!(
                                "is {} but the content has {} bytes; send the size of the decoded content",
                                material.size,
                                bytes.len()
                            ),
                        ));
                    }
                    let digest = hex(&Sha256::digest(&bytes));
                    if sha_ok && digest != material.sha256 {
                        errors.push(FieldError::new(
                            at("sha256"),
                            format!("does not match the content (its SHA-256 is {digest}); the content may be damaged, send it again"),
                        ));
                    }
                }
                Err(_) => errors.push(FieldError::new(
                    at("content_base64"),
                    "is not valid base64 (standard alphabet, with padding)",
                )),
            },
            (None, Some(reference)) if !reference.trim().is_empty() => {}
            _ => errors.push(FieldError::new(
                format!("/materials/{index}"),
                "give exactly one of content_base64 (the content) or reference (where it is held)",
            )),
        }
    }
    for (key, value) in &app.form {
        // RFC 6901: a key with '/' or '~' stays one step of the pointer.
        let field = format!("/form/{}", key.replace('~', "~0").replace('/', "~1"));
        if !form_key(key) {
            errors.push(FieldError::new(
                field.clone(),
                "form keys are names: up to 64 letters, digits, '_', '-' or '.', starting with a letter or '_'; rename the key",
            ));
        }
        if !value.is_string() {
            let text = crate::mapping::table::native_key(value);
            errors.push(FieldError::new(field, format!("form values are strings; write {value} as \"{text}\"")));
        }
    }
    if chrono::DateTime::parse_from_rfc3339(&app.submitted_at).is_err() {
        errors.push(FieldError::new(
            "/submitted_at",
            format!(
                "'{}' is not an ISO 8601 time with an offset; write e.g. 2026-11-22T10:00:00+08:00",
                app.submitted_at
            ),
        ));
    }
    out
}

/// A form key: a name every wire format can carry as is (an XML element name, a JSON key).
fn form_key(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    first_ok && key.chars().count() <= 64 && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A resident ID number (居民身份证号码): well formed, and not born after today.
fn resident_id(number: &str, field: &str, today: chrono::NaiveDate, errors: &mut Vec<FieldError>) {
    match check_resident_id(number) {
        Err(err) => errors.push(FieldError::new(field, err.to_string())),
        Ok(id) if id.birth_date > today => errors.push(FieldError::new(
            field,
            format!(
                "the birth date {} in the ID card number (digits 7–14) is in the future; check those digits against the ID card",
                id.birth_date
            ),
        )),
        Ok(_) => {}
    }
}

fn uscc_failure(waivable: &mut Vec<FieldError>, errors: &mut Vec<FieldError>, field: &str, err: super::ids::UsccError) {
    let error = FieldError::new(field, err.to_string());
    // Only a failed check character may be waived; a malformed code never is.
    if matches!(err, super::ids::UsccError::CheckCharacter { .. }) {
        waivable.push(error);
    } else {
        errors.push(error);
    }
}

fn region(regions: &RegionTable, code: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<Resolved> {
    match regions.resolve(code) {
        Ok(resolved) => Some(resolved),
        Err(err) => {
            errors.push(FieldError::new(field, err.to_string()));
            None
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}
