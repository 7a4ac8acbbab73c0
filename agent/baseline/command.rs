//! The `redline baseline` command line: flags, exit codes, and the files a run writes.
//!
//! Exit codes: 0 done (a run that found a knee, or was stopped by the abort limit, wrote its
//! report and succeeded); 1 `compare` found a regression, or a file could not be written;
//! 2 usage, workload, config, target or report errors (including an unreadable input).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::BaselineError;
use super::compare::{self, Verdict};
use super::report::Report;
use super::run::{RunPlan, run};
use super::workload::Workload;
use super::{html, markdown};
use crate::config::{Config, parse_percent};

/// `redline baseline …`.
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Step an open-model load up until a flow breaks one of its thresholds; write the knee
    /// per flow as JSON, Markdown and HTML.
    Run(RunArgs),
    /// Compare two reports: exit 1 when a flow's knee dropped, or its p95 at the same rate
    /// rose, by more than the tolerance.
    Compare(CompareArgs),
    /// Save the request shapes a running Redline sampled (`baseline.record.enabled`) as a
    /// workload file, without credentials.
    Record(RecordArgs),
}

/// Flags of `redline baseline record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Admin base URL of the running Redline, e.g. http://127.0.0.1:9901.
    #[arg(long)]
    pub admin: String,
    /// Workload file to write.
    #[arg(long, default_value = "workload.json")]
    pub out: PathBuf,
    /// Config to name in the workload (its alert rules become the thresholds).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Admin token, when `admin.protect_reads` is on.
    #[arg(long, env = "REDLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `redline baseline run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workload file (JSON, version 1); without it, the config's `flows[].baseline`.
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// Redline config: its flows' alert rules and timeouts are the thresholds.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Base URL to load, http(s)://HOST[:PORT], e.g. http://127.0.0.1:8080 (loopback only
    /// without --allow-remote).
    #[arg(long)]
    pub target: String,
    /// Total rates to step through, req/s, e.g. 50,100,200 [default: --ramp].
    #[arg(long, value_delimiter = ',', conflicts_with = "ramp")]
    pub rates: Vec<f64>,
    /// Start at 10 req/s and grow by 25% per step up to --max-rate.
    #[arg(long)]
    pub ramp: bool,
    /// After the first break, this many more steps bisect between the last rate that held
    /// and the one that broke (a finer knee for a few more steps).
    #[arg(long, default_value_t = 2)]
    pub refine: usize,
    /// Unmeasured load at the first rate before the first step (connections, caches).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Length of each step.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// Never offer more than this many requests per second.
    #[arg(long, default_value_t = 10_000.0)]
    pub max_rate: f64,
    /// Stop at once when this share of requests fails (5xx, connection errors, timeouts).
    #[arg(long, default_value = "50%", value_parser = parse_percent)]
    pub abort_error_rate: f64,
    /// Connections to the target, each carrying one request at a time; a request whose
    /// connection is busy waits, and the wait counts as latency.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Directory for baseline.json, baseline.md and baseline.html.
    #[arg(long, default_value = "baseline")]
    pub out: PathBuf,
    /// Allow a target outside loopback. Only load servers you own.
    #[arg(long)]
    pub allow_remote: bool,
    /// For an https target: PEM file of the CA(s) to trust instead of the Mozilla roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// Flags of `redline baseline compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference report (baseline.json).
    pub old: PathBuf,
    /// The report to judge.
    pub new: PathBuf,
    /// Allowed relative change before it counts as a regression.
    #[arg(long, default_value = "10%", value_parser = parse_percent)]
    pub tolerance: f64,
}

/// Run a baseline subcommand and map the result to an exit code.
pub fn main(command: BaselineCommand) -> ExitCode {
    let result = match command {
        BaselineCommand::Run(args) => run_command(&args).map(|()| ExitCode::SUCCESS),
        BaselineCommand::Compare(args) => compare_command(&args),
        BaselineCommand::Record(args) => record_command(&args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::from(error.exit_code())
    })
}

fn run_command(args: &RunArgs) -> Result<(), BaselineError> {
    let plan = plan(args)?;
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let workload = match (&args.workload, &config) {
        (Some(path), config) => Workload::from_file(path, config.as_ref())?,
        (None, Some(config)) => Workload::from_config(config)?,
        (None, None) => {
            return Err(BaselineError::Usage(
                "nothing to send: pass --workload FILE, or --config FILE whose flows have `baseline:`"
                    .into(),
            ));
        }
    };
    let report = runtime()?.block_on(run(&plan, workload, |line| eprintln!("{line}")))?;
    write_outputs(&args.out, &report)?;
    print!("{}", markdown::render(&report));
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, BaselineError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| BaselineError::Write {
            path: PathBuf::from("<tokio runtime>"),
            source,
        })
}

fn record_command(args: &RecordArgs) -> Result<(), BaselineError> {
    let flows = runtime()?.block_on(super::record::record(
        &args.admin,
        args.token.as_deref(),
        args.config.as_deref(),
        &args.out,
    ))?;
    eprintln!("wrote {} ({flows} flow(s))", args.out.display());
    Ok(())
}

fn plan(args: &RunArgs) -> Result<RunPlan, BaselineError> {
    let usage = |m: String| Err(BaselineError::Usage(m));
    if args.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return usage("--rates: every rate must be a number above 0".into());
    }
    if args.rates.windows(2).any(|w| w[1] <= w[0]) {
        return usage("--rates must increase, e.g. 50,100,200".into());
    }
    if !(args.max_rate.is_finite() && args.max_rate > 0.0) {
        return usage("--max-rate must be above 0".into());
    }
    if args.step < Duration::from_millis(100) || args.connections == 0 {
        return usage("--step must be at least 100ms and --connections at least 1".into());
    }
    Ok(RunPlan {
        target: args.target.clone(),
        rates: (!args.rates.is_empty()).then(|| args.rates.clone()),
        step: args.step,
        max_rate: args.max_rate,
        abort_error_rate: args.abort_error_rate,
        max_in_flight: args.connections,
        allow_remote: args.allow_remote,
        refine: args.refine,
        warmup: args.warmup,
        ca: args.ca.clone(),
    })
}

fn write_outputs(dir: &Path, report: &Report) -> Result<(), BaselineError> {
    let io = |path: PathBuf| move |source| BaselineError::Write { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let json = serde_json::to_string_pretty(report).expect("a report always serialises");
    let files = [
        ("baseline.json", json + "\n"),
        ("baseline.md", markdown::render(report)),
        ("baseline.html", html::render(report)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(path.clone()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn compare_command(args: &CompareArgs) -> Result<ExitCode, BaselineError> {
    let old = compare::load(&args.old)?;
    let new = compare::load(&args.new)?;
    let comparison = compare::compare(&old, &new, args.tolerance);
    print!("{}", comparison.table());
    Ok(match comparison.verdict() {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Regressed => ExitCode::from(1),
    })
}
