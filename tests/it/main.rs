//! Redline's integration tests: one binary, real sockets, the real `redline` executable.

mod admin;
mod alerting_engine;
mod architecture;
mod baseline;
mod conformance;
mod dashboard;
mod demo;
mod differential;
mod engines;
mod fast_path;
mod fleet;
mod lifecycle;
mod notify;
mod otlp;
mod proxy;
mod reload;
mod rules;
mod security;
mod streaming;
mod support;
