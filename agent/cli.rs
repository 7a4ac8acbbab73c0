//! The command line: subcommands, flags and their `REDLINE_*` environment equivalents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{
    AccessLogFormat, Config, ConfigError, FLAG_WEBHOOK_NAME, FLAG_WEBHOOK_SECRET_ENV,
    ReceiverConfig, Upstream,
};

const EXAMPLES: &str = "\
Examples:
  # See it work first: a flaky demo app, traffic, a live dashboard and alerts:
  redline demo
  # In front of a dev server on port 3000, no config file needed:
  redline run --upstream http://127.0.0.1:3000
  # With critical flows and alerts from a file:
  redline run --config redline.yaml
  # Learn flows and thresholds from the traffic so far, into a config file:
  redline init --from http://127.0.0.1:9901 --out redline.yaml
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
    /// Runs the file's `policy_tests:` too (exit 2 on a mismatch); `--explain` prints the
    /// access decision for one request instead.
    Check {
        /// Config file to check.
        #[arg(long, short, env = "REDLINE_CONFIG")]
        config: PathBuf,
        /// Print the access decision and the rule for one request, e.g. "DELETE /api/users/5".
        #[arg(long, value_name = "METHOD /PATH")]
        explain: Option<String>,
        /// The caller's claims as JSON for --explain, e.g. '{"sub":"a","roles":["viewer"]}'
        /// (default: no credential).
        #[arg(long, requires = "explain")]
        claims: Option<String>,
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
    /// Write a config learned from the traffic a running Redline has seen: one flow per busy
    /// route group, `owner: TODO`, a timeout and alert thresholds, each with a comment
    /// saying what it was learned from.
    ///
    /// Written to the running Redline's config file, it is hot-reloaded.
    Init {
        /// Admin URL of the running Redline, e.g. http://127.0.0.1:9901.
        #[arg(long)]
        from: String,
        /// Write here (atomically) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Work with the audit trail (`data_dir/audit/audit-*.jsonl`).
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditCommand,
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

/// `redline audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit files, in order (e.g. `data_dir/audit/audit-*.jsonl`).
    ///
    /// Reports the first altered, removed or reordered record (file:line) and exits 1;
    /// exits 0 when the chain is intact (gaps Redline itself recorded are listed).
    Verify {
        /// Audit files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Flags of `redline run`. Precedence: flag > environment > file > default.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// YAML config file (optional: `--upstream` alone is enough).
    #[arg(long, short, env = "REDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Proxy listen address [default: 127.0.0.1:8080, loopback only; 0.0.0.0:8080 for all interfaces].
    #[arg(long, env = "REDLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Upstream app base URL, e.g. http://127.0.0.1:3000.
    #[arg(long, env = "REDLINE_UPSTREAM")]
    pub upstream: Option<String>,
    /// Admin listen address (metrics, API) [default: 127.0.0.1:9901].
    #[arg(long, env = "REDLINE_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Access log on stdout: json, text or off [default: json, or `telemetry.access_log`].
    #[arg(long, env = "REDLINE_ACCESS_LOG", value_name = "json|text|off")]
    pub access_log: Option<AccessLogFormat>,
    /// Also send alert notifications to this webhook (Alertmanager webhook JSON), signed
    /// with the secret in REDLINE_WEBHOOK_SECRET when that is set.
    #[arg(long, env = "REDLINE_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
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
        if let Some(format) = self.access_log {
            config.telemetry.access_log = format;
        }
        if let Some(url) = &self.upstream {
            let upstream = Upstream::parse(url).map_err(|message| SettingsError::Flag {
                what: "--upstream",
                message,
            })?;
            config.upstream = Some(upstream);
        }
        if let Some(url) = &self.alert_webhook {
            add_flag_webhook(&mut config, url)?;
        }
        if config.upstream.is_none() {
            return Err(SettingsError::NoUpstream);
        }
        Ok(config)
    }
}

/// The `--alert-webhook` receiver, added to the file's receivers (on every reload too).
fn add_flag_webhook(config: &mut Config, url: &str) -> Result<(), SettingsError> {
    let flag = |message: String| SettingsError::Flag {
        what: "--alert-webhook",
        message,
    };
    let receivers = &mut config.alerting.receivers;
    if receivers.iter().any(|r| r.name == FLAG_WEBHOOK_NAME) {
        return Err(flag(format!(
            "the config file already has a receiver named {FLAG_WEBHOOK_NAME:?}; rename it"
        )));
    }
    let secret_set = std::env::var(FLAG_WEBHOOK_SECRET_ENV).is_ok_and(|v| !v.trim().is_empty());
    let secret_env = secret_set.then(|| FLAG_WEBHOOK_SECRET_ENV.to_string());
    let receiver = ReceiverConfig::webhook(FLAG_WEBHOOK_NAME, url, secret_env).map_err(flag)?;
    receivers.push(receiver);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["redline", "run"].iter().chain(argv))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        match cli.command {
            Command::Run(args) => args,
            other => panic!("not run: {other:?}"),
        }
    }

    fn file(yaml: &str) -> Config {
        Config::parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn access_log_flag_beats_the_file_which_beats_the_default() {
        let up = ["--upstream", "http://127.0.0.1:3000"];
        let text_file = file("telemetry: { access_log: text }\n");
        let flagged = run_args(&[&up[..], &["--access-log", "off"]].concat());
        let from_flag = flagged
            .apply(text_file.clone())
            .map(|c| c.telemetry.access_log);
        assert_eq!(from_flag.ok(), Some(AccessLogFormat::Off));
        let from_file = run_args(&up)
            .apply(text_file)
            .map(|c| c.telemetry.access_log);
        assert_eq!(from_file.ok(), Some(AccessLogFormat::Text));
        let default = run_args(&up).apply(Config::default());
        assert_eq!(
            default.map(|c| c.telemetry.access_log).ok(),
            Some(AccessLogFormat::Json)
        );
        assert!(Cli::try_parse_from(["redline", "run", "--access-log", "xml"]).is_err());
    }

    #[test]
    fn proxy_listens_on_loopback_unless_told() {
        let up = ["--upstream", "http://127.0.0.1:3000"];
        let default = run_args(&up).apply(Config::default());
        assert_eq!(
            default.map(|c| c.listen.to_string()).ok().as_deref(),
            Some("127.0.0.1:8080")
        );
        let any = run_args(&[&up[..], &["--listen", "0.0.0.0:8080"]].concat());
        let chosen = any.apply(file("listen: 127.0.0.1:9000\n"));
        assert_eq!(
            chosen.map(|c| c.listen.to_string()).ok().as_deref(),
            Some("0.0.0.0:8080")
        );
    }
}
