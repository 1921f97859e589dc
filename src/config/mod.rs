//! Configuration (配置): raw serde types, compiled types and the validation passes between them.
//! See [`load::load`], used alike by `serve` and `tongban check` (and by reload, when it comes).

pub mod diagnostic;
pub mod load;
pub mod raw;
pub mod source;

pub use load::{AdminToken, Federation, PrintingSettings, load};
