//! The command line: subcommands, flags and their `REDLINE_*` environment equivalents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, Upstream};

const EXAMPLES: &str = "\
Examples:
  # See it work first: a flaky demo app, traffic, a live dashboard and alerts:
  redline demo
  # In front of a dev server on port 3000, no config file needed:
  redline run --upstream http://127.0.0.1:3000
  # With critical flows and alerts from a file:
  redline run --config redline.yaml
  # Validate a config file and print what Redline understood:
  redline check --config redline.yaml

Metrics: http://127.0.0.1:9901/metrics   Flows: http://127.0.0.1:9901/api/flows";

/// Observability sidecar: proxies HTTP to your app and measures latency,
/// errors and timeouts per critical flow.
#[derive(Debug, Parser)]
#[command(name = "redline", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin listener.
    #[command(after_help = EXAMPLES)]
    Run(RunArgs),
    /// Validate a config file; print the flows, patterns, timeouts and alerts it defines.
    ///
    /// Exits 0 when valid, 2 with file:line:column and what was expected otherwise.
    Check {
        /// Config file to check.
        #[arg(long, short, env = "REDLINE_CONFIG")]
        config: PathBuf,
    },
    /// Print the flows' alerts as Prometheus alerting rules (YAML) for fleet-wide evaluation.
    ///
    /// Same alert names, labels and thresholds as Redline's own evaluation, so
    /// Alertmanager deduplicates the two. Check the output with `promtool check rules`.
    Rules {
        /// Config file to export.
        #[arg(long, short, env = "REDLINE_CONFIG")]
        config: PathBuf,
    },
    /// Self-contained demo: a flaky app, Redline in front of it, traffic, and alerts printed here.
    ///
    /// Listens on 127.0.0.1:8080 (proxy) and 127.0.0.1:9901 (dashboard), or on free
    /// ports if those are taken, and prints the URLs.
    Demo {
        /// Stop after this long (e.g. `60s`, `5m`); default: run until Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Per-flow performance baseline: find each flow's knee under load, compare two runs.
    Baseline {
        /// `run`, `compare` or `record`.
        #[command(subcommand)]
        command: crate::baseline::BaselineCommand,
    },
}

/// Flags of `redline run`. Precedence: flag > environment > file > default.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// YAML config file (optional: `--upstream` alone is enough).
    #[arg(long, short, env = "REDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Proxy listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "REDLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Upstream app base URL, e.g. http://127.0.0.1:3000.
    #[arg(long, env = "REDLINE_UPSTREAM")]
    pub upstream: Option<String>,
    /// Admin listen address (metrics, API) [default: 127.0.0.1:9901].
    #[arg(long, env = "REDLINE_ADMIN")]
    pub admin: Option<SocketAddr>,
}

/// Why `run`'s configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag or environment value is invalid.
    #[error("invalid {what}: {message}")]
    Flag {
        /// Which flag.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Nothing says where to forward.
    #[error(
        "no upstream: pass --upstream URL, set REDLINE_UPSTREAM, or set `upstream:` in the config file"
    )]
    NoUpstream,
}

impl RunArgs {
    /// The effective configuration: the file (if any), then flags/env on top.
    pub fn settings(&self) -> Result<Config, SettingsError> {
        let config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(config)
    }

    /// Re-read `path` and apply the same flags; used on reload.
    pub fn reload(&self, path: &Path) -> Result<Config, SettingsError> {
        self.apply(Config::load(path)?)
    }

    fn apply(&self, mut config: Config) -> Result<Config, SettingsError> {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(admin) = self.admin {
            config.admin.listen = admin;
        }
        if let Some(url) = &self.upstream {
            let upstream = Upstream::parse(url).map_err(|message| SettingsError::Flag {
                what: "--upstream",
                message,
            })?;
            config.upstream = Some(upstream);
        }
        if config.upstream.is_none() {
            return Err(SettingsError::NoUpstream);
        }
        Ok(config)
    }
}
