//! Reading request bodies: the size limit and the read timeout.
//!
//! Framing: a request with both Content-Length and Transfer-Encoding is read by its
//! Transfer-Encoding and its connection closed afterwards (hyper does this, per RFC 9112 §6.3);
//! neither header is ever forwarded, because every upstream request is built fresh.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::problem::GatewayError;

/// A body must arrive within this time once its headers have (slow bodies hold workers).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the whole body, refusing more than `limit` bytes or a body that trickles in.
pub async fn read(body: Incoming, limit: usize) -> Result<Bytes, GatewayError> {
    let collected = match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(collected) => collected,
        Err(_) => return Err(GatewayError::BodyTimeout { after: BODY_READ_TIMEOUT }),
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(GatewayError::BodyTooLarge { limit }),
        Err(err) => {
            Err(GatewayError::Unparseable { detail: format!("the request body could not be read: {err}"), field: None })
        }
    }
}
