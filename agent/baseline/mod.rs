//! `redline baseline`: a per-flow performance baseline.
//!
//! `run` drives an open-model load (constant arrival rate per step, latency from each
//! request's intended start) against a target until a flow breaks one of its own alert
//! thresholds, and reports the knee per flow as JSON, Markdown and a self-contained HTML
//! page; `compare` turns two reports into a regression gate for CI.
//!
//! - [`workload`]: what to send (a JSON file or the config's `flows[].baseline`) and the
//!   thresholds to judge it by.
//! - [`generator`]: the pacing and measurement of one step; [`connection`] its HTTP client,
//!   [`timer`] its microsecond sleep.
//! - [`run`]: target check, stepping, progress.
//! - [`report`]: the versioned result, knee and suggested rules; [`markdown`] and [`html`]
//!   render it; [`compare`] diffs two.
//! - [`record`]: a workload file from the request shapes a running Redline sampled.
//! - [`command`]: the command line.

pub mod command;
pub mod compare;
pub mod connection;
pub mod generator;
pub mod html;
pub mod markdown;
pub mod record;
pub mod report;
pub mod run;
pub mod timer;
pub mod workload;

use std::path::PathBuf;

pub use command::BaselineCommand;

/// Why a baseline command failed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A file could not be written, or the runtime could not start.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file is malformed.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The workload makes no sense.
    #[error("{0}")]
    Workload(String),
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The target is malformed or refused.
    #[error("{0}")]
    Target(String),
    /// A report is not one this build reads.
    #[error("{0}")]
    Report(String),
    /// A flag value is invalid.
    #[error("{0}")]
    Usage(String),
}

impl BaselineError {
    /// 1 for a failure while running (a file could not be written), 2 for anything the user
    /// must fix in the command, workload, config or report; `compare` uses 1 for regressions,
    /// so a missing input file must not look like one.
    pub fn exit_code(&self) -> u8 {
        match self {
            BaselineError::Write { .. } => 1,
            _ => 2,
        }
    }
}
