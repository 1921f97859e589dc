//! Observability (可观测性): structured logs with personal data masked.

pub mod logging;
pub mod mask;
