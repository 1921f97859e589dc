//! Stage: decode and validate the canonical request (解析与校验).

use serde_json::Value;

use crate::canonical::Application;
use crate::canonical::validate::{FieldError, Validation, validate};
use crate::problem::GatewayError;
use crate::regions::RegionTable;

/// Parses canonical JSON bytes nested at most `max_depth` levels.
pub fn json(body: &[u8], max_depth: usize) -> Result<Value, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::Unparseable {
            detail: "the request body is empty; send the application as JSON".into(),
            field: None,
        });
    }
    depth(body, max_depth)?;
    serde_json::from_slice(body).map_err(|err| GatewayError::Unparseable {
        detail: format!("the body is not valid JSON: {err}; send UTF-8 JSON (Content-Type: application/json)"),
        field: Some(format!("line {}, column {}", err.line(), err.column())),
    })
}

/// Refuses bodies nested deeper than `[server] max_json_depth`.
pub fn depth(body: &[u8], max_depth: usize) -> Result<(), GatewayError> {
    crate::wire::check_json_depth(body, max_depth).map_err(|err| {
        let field = match &err {
            crate::wire::WireError::JsonTooDeep { line, column, .. } => Some(format!("line {line}, column {column}")),
            _ => None,
        };
        GatewayError::Unparseable {
            detail: format!("{err}, or ask the operator to raise server.max_json_depth"),
            field,
        }
    })
}

/// Reads the typed application from the document, naming the field of any type error.
pub fn application(doc: &Value) -> Result<Application, GatewayError> {
    if !doc.is_object() {
        return Err(GatewayError::Unparseable {
            detail: "the application must be a JSON object".into(),
            field: Some("/".into()),
        });
    }
    serde_path_to_error::deserialize::<_, Application>(doc).map_err(|err| {
        let field = pointer(&err.path().to_string());
        let detail = err.inner().to_string().replace('`', "'");
        GatewayError::Invalid { errors: vec![FieldError { field, detail }] }
    })
}

/// Validates an application and assigns its id when absent (written back into `doc`).
pub fn validated(doc: &mut Value, regions: &RegionTable) -> Result<(Application, Validation), GatewayError> {
    let mut app = application(doc)?;
    let validation = validate(&app, regions);
    if !validation.errors.is_empty() {
        return Err(GatewayError::Invalid { errors: validation.errors });
    }
    if app.application_id.is_none() {
        let id = uuid::Uuid::now_v7().to_string();
        if let Value::Object(map) = doc {
            map.insert("application_id".into(), Value::String(id.clone()));
        }
        app.application_id = Some(id);
    }
    Ok((app, validation))
}

/// serde's `applicant.gender` / `materials[0].size` → `/applicant/gender` / `/materials/0/size`.
pub(crate) fn pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return "/".into();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..open]);
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(close) = stripped.find(']') else { break };
                out.push('/');
                out.push_str(&stripped[..close]);
                rest = &stripped[close + 1..];
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_json_pointers() {
        assert_eq!(pointer("applicant.gender"), "/applicant/gender");
        assert_eq!(pointer("materials[0].size"), "/materials/0/size");
        assert_eq!(pointer("."), "/");
    }
}
