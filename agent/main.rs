//! The `redline` binary: parse the command line, set up logging, run.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use redline::app::{self, Hooks};
use redline::cli::{AuditCommand, Cli, Command, RunArgs};
use redline::config::Config;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            explain,
            claims,
        } => match explain {
            Some(request) => explain_one(&config, &request, claims.as_deref()),
            None => check(&config),
        },
        Command::Rules { config } => rules(&config),
        Command::Run(args) => run(args),
        Command::Demo { duration } => demo(duration),
        Command::Baseline { command } => redline::baseline::command::main(command),
        Command::Init { from, out } => init(&from, out.as_deref()),
        Command::Audit {
            action: AuditCommand::Verify { files },
        } => audit_verify(&files),
    }
}

/// `redline audit verify`: 0 intact, 1 broken (first break named), 2 unreadable.
fn audit_verify(files: &[std::path::PathBuf]) -> ExitCode {
    match redline::audit_trail::verify_files(files) {
        Ok(report) => {
            print!("{}", report.render());
            if report.broken.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// `redline init`: the YAML goes to `--out` or stdout, the summary to stderr.
fn init(from: &str, out: Option<&std::path::Path>) -> ExitCode {
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(redline::init::run(from, out)) {
        Ok(s) => {
            let share = s.covered as f64 * 100.0 / s.requests.max(1) as f64;
            let to = out.map_or("stdout".into(), |p| p.display().to_string());
            eprintln!(
                "{} flows cover {share:.1}% of {} requests seen; written to {to}. Review `owner: TODO`.",
                s.flows, s.requests
            );
            ExitCode::SUCCESS
        }
        Err(redline::init::InitError::BadUrl(url)) => {
            eprintln!("error: {}", redline::init::InitError::BadUrl(url));
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn rules(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => match redline::rules_export::render(&config) {
            Ok(rules) => {
                print!("{rules}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                ExitCode::from(2)
            }
        },
        Err(error) => {
            eprintln!("error: {}", scrubbed(&error));
            ExitCode::from(2)
        }
    }
}

/// A configuration error as printed. It may quote the URL it refuses, credentials and
/// all, and stderr is the service's log (or a CI log): scrub it as reload errors are, with
/// the default secret names, since the file's own list is unknown when it does not parse.
fn scrubbed(error: &dyn std::fmt::Display) -> String {
    use redline::config::{DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_QUERY_PARAMS};
    let redactor = redline::redact::Redactor::new(
        &DEFAULT_REDACT_QUERY_PARAMS.map(String::from),
        &DEFAULT_REDACT_HEADERS.map(String::from),
    );
    redactor.text(&error.to_string()).into_owned()
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            print!("{}", config.describe());
            if config.policy_tests.is_empty() {
                return ExitCode::SUCCESS;
            }
            let (report, failed) = redline::access::run_policy_tests(&config);
            let total = config.policy_tests.len();
            println!(
                "\npolicy tests:\n{report}{} of {total} passed",
                total - failed
            );
            if failed > 0 {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", scrubbed(&error));
            ExitCode::from(2)
        }
    }
}

/// `redline check --explain`: the decision for one request; exit 2 when it cannot be judged.
fn explain_one(path: &std::path::Path, request: &str, claims: Option<&str>) -> ExitCode {
    let judged = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let claims = claims
                .map(serde_json::from_str::<serde_json::Value>)
                .transpose()
                .map_err(|e| format!("--claims is not JSON: {e}"))?;
            redline::access::explain(&config, request, claims.as_ref())
        });
    match judged {
        Ok(explained) => {
            println!("{}", explained.render(request));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core) and
/// keeps freed memory in each: two arenas cut peak RSS with 1,000 open connections by
/// ~1.8 MiB (benches/RESULTS.md). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts allocator parameters; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The multi-threaded runtime (worker count from `TOKIO_WORKER_THREADS`, else one per core).
fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(1)
        })
}

/// `redline demo`: quiet logs by default, so the console shows URLs and alert notifications.
fn demo(duration: Option<std::time::Duration>) -> ExitCode {
    init_logging("warn");
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(redline::demo::run(duration)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    init_logging("info");
    let config = match args.settings() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {}", scrubbed(&error));
            return ExitCode::from(2);
        }
    };
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let reload_args = args.clone();
    let hooks = Hooks {
        config_path: args.config.clone(),
        reload: Some(Arc::new(move |path: &std::path::Path| {
            reload_args.reload(path).map_err(|e| e.to_string())
        })),
        ..Hooks::default()
    };
    match runtime.block_on(app::run(config, hooks)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

/// Colour only for a person at a terminal: escape codes in a file, a pipe or a log collector
/// are noise. `NO_COLOR` (no-color.org) turns it off there too.
fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Diagnostics go to stderr through `tracing` (`REDLINE_LOG`, `REDLINE_LOG_FORMAT`);
/// stdout carries only the access log.
fn init_logging(default_filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("REDLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_stderr())
        .with_writer(std::io::stderr);
    let json = std::env::var("REDLINE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // The audit trail also goes out as OTLP log records when logs are exported.
    let audit = redline::telemetry::logs::AuditLayer;
    if json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(audit)
            .init();
    } else {
        builder.finish().with(audit).init();
    }
}
