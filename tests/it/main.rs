//! Redline's integration tests: one binary, real sockets, the real `redline` executable.

mod admin;
mod lifecycle;
mod proxy;
mod streaming;
mod support;
