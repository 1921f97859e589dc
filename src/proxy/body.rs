//! Reading request bodies: framing checks and the size limit.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::problem::GatewayError;

/// Refuses requests that carry both Content-Length and Transfer-Encoding (request smuggling).
pub fn check_framing(headers: &HeaderMap) -> Result<(), GatewayError> {
    if headers.contains_key(http::header::CONTENT_LENGTH) && headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err(GatewayError::ConflictingFraming);
    }
    Ok(())
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(body: Incoming, limit: usize) -> Result<Bytes, GatewayError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(GatewayError::BodyTooLarge { limit }),
        Err(err) => {
            Err(GatewayError::Unparseable { detail: format!("the request body could not be read: {err}"), field: None })
        }
    }
}
