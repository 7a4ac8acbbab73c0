//! Redline: an observability sidecar that proxies HTTP and measures every critical flow.
//!
//! A request enters in [`proxy`], is matched to a flow by [`flows`], is
//! measured in [`proxy::ctx`] into [`metrics`] and [`stats`], and is logged by
//! [`access_log`]. [`admin`] serves what was measured; [`app`] runs it all.

pub mod access_log;
pub mod admin;
pub mod alerting;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod flows;
#[cfg(test)]
mod fuzz_tests;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod rules_export;
pub mod server;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod trace;
pub mod watchdog;
pub mod workers;
