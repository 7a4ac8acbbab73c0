//! Redline: an observability sidecar that proxies HTTP and measures every critical flow.
//!
//! A request enters in [`proxy`], is matched to a flow by [`flows`], is
//! measured in [`proxy::ctx`] into [`metrics`] and [`stats`], and is logged by
//! [`access_log`]. [`admin`] serves what was measured; [`app`] runs it all.
//!
//! ## Layers
//!
//! Every top-level module is in one layer, lowest first. A module names (`crate::x`) only
//! modules of its own layer or lower, and modules of one layer never name each other in a
//! circle; `app` is the one place that wires the parts together. `tests/it/architecture.rs`
//! reads this list and fails on a module that breaks it, on a module missing from it, and on a
//! non-test source file over 600 lines. ARCHITECTURE.md says what each module does.
//!
//! ```text
//! error / stats / metrics / trace / redact / watchdog / audit / audit_trail / http_json / shutdown / netfmt / fdlimit / resilience
//! flows / access_log
//! config
//! access
//! state / auth
//! telemetry / dashboard / reload / learn
//! proxy
//! server
//! notify / workers
//! alerting
//! admin
//! app / demo / cli / rules_export / init / baseline
//! ```

pub mod access;
pub mod access_log;
pub mod admin;
pub mod alerting;
pub mod app;
pub mod audit;
pub mod audit_trail;
pub mod auth;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod fdlimit;
pub mod flows;
#[cfg(test)]
mod fuzz_tests;
pub mod http_json;
pub mod init;
pub mod learn;
pub mod metrics;
pub mod netfmt;
pub mod notify;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod resilience;
pub mod rules_export;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod trace;
pub mod watchdog;
pub mod workers;
