//! tongban (通办): a gateway that lets provincial government-service platforms (政务服务平台)
//! work together although their APIs differ — 跨域通办, 跨省通办.
//!
//! The request path, read top to bottom, is in [`proxy::pipeline`]; configuration is loaded in
//! two steps (raw serde types → compiled types) by [`config`]; platform APIs are described as
//! data by [`adapter`] and [`mapping`].
#![forbid(unsafe_code)]

pub mod acceptance;
pub mod access;
pub mod adapter;
pub mod audit;
pub mod cache;
pub mod canonical;
pub mod certificate;
pub mod cli;
pub mod config;
pub mod identity;
pub mod limit;
pub mod mapping;
pub mod metrics;
pub mod mock;
pub mod observe;
pub mod problem;
pub mod proxy;
pub mod regions;
pub mod routing;
pub mod store;
pub mod tls;
pub mod wire;
