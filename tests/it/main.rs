//! Redline's integration tests: one binary, real sockets, the real `redline` executable.

mod access;
mod admin;
mod alerting_engine;
mod architecture;
mod conformance;
mod dashboard;
mod demo;
mod differential;
mod engines;
mod exposition;
mod fast_path;
mod fleet;
mod lifecycle;
mod messages;
mod notify;
mod onboarding;
mod otlp;
mod otlp_retry;
mod proxy;
mod reload;
mod resilience;
mod rules;
mod security;
mod streaming;
mod support;
mod trace_context;
