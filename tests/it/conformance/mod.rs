//! HTTP/1.1 request smuggling and framing conformance (spec16): a table of hostile
//! requests, and a table of hostile upstream responses, against the real binary.
//!
//! Every case checks three things: what the client gets (for a refusal: status, JSON
//! `error`, `connection: close`, then the close), the exact bytes the raw-socket
//! upstream receives (or that it receives nothing), and that the next request — a
//! marker `GET /next-<case>` on the same connection when it is still open — gets its
//! own answer, so a desync (a smuggled request, shifted responses) shows. Response-side
//! cases also check whether the upstream connection was reused.
//!
//! One Redline per table and engine (one worker thread, so upstream connections are
//! reused predictably; no trace propagation, so upstream bytes are deterministic); each
//! table runs on the fast engine and again with `REDLINE_HTTP1_ENGINE=hyper`. Cases run
//! one after another and every failure is collected, then reported as one table.
//! `CONFORMANCE_CASE=<name>` runs one case.

mod h2;
mod harness;
mod request_framing;
mod request_target;
mod response;
mod runner;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use crate::support::{Redline, config_for};
use harness::Upstream;

fn start(upstream: SocketAddr, engine: &str) -> Redline {
    Redline::start_with(
        &config_for(upstream, ""),
        &[],
        &[
            ("TOKIO_WORKER_THREADS", "1"),
            ("OTEL_PROPAGATORS", "none"),
            ("REDLINE_HTTP1_ENGINE", engine),
        ],
    )
}

/// Print the failing cases as a table and fail if there are any.
fn report(table: &str, total: usize, started: Instant, failed: &[(&str, Vec<String>)]) {
    let took = started.elapsed();
    eprintln!(
        "{table}: {total} cases, {} failed, {took:.1?}",
        failed.len()
    );
    if failed.is_empty() {
        return;
    }
    let width = failed.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, problems) in failed {
        for (i, p) in problems.iter().enumerate() {
            let shown = if i == 0 { name } else { "" };
            out.push_str(&format!("  {shown:width$} | {p}\n"));
        }
    }
    panic!("{table}: {} of {total} cases failed:\n{out}", failed.len());
}

fn assert_unique<'a>(names: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for n in names {
        assert!(seen.insert(n), "two cases are named {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_side_framing_conformance() {
    request_side("fast").await;
}

/// The same hostile requests, every admitted one carried by hyper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_side_framing_conformance_hyper_engine() {
    request_side("hyper").await;
}

async fn request_side(engine: &str) {
    let up = Upstream::start(HashMap::new()).await;
    let rl = start(up.addr, engine);
    let mut cases = request_framing::cases();
    cases.extend(request_target::cases());
    assert_unique(cases.iter().map(|c| c.name));
    let only = std::env::var("CONFORMANCE_CASE").ok();
    let started = Instant::now();
    let mut failed = Vec::new();
    for case in &cases {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        let problems = runner::run(rl.proxy, &rl.stdout, &up, case, engine == "hyper").await;
        if !problems.is_empty() {
            failed.push((case.name, problems));
        }
    }
    report(
        &format!("request side ({engine} engine)"),
        cases.len(),
        started,
        &failed,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_side_framing_conformance() {
    response_side("fast").await;
}

/// The same hostile responses met by the hyper engine (`REDLINE_HTTP1_ENGINE=hyper`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_side_framing_conformance_hyper_engine() {
    response_side("hyper").await;
}

async fn response_side(engine: &str) {
    let cases = response::cases();
    assert_unique(cases.iter().map(|c| c.name));
    let up = Upstream::start(response::script(&cases)).await;
    let rl = start(up.addr, engine);
    let only = std::env::var("CONFORMANCE_CASE").ok();
    let started = Instant::now();
    let mut failed = Vec::new();
    for case in &cases {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        let problems = response::run(rl.proxy, &rl.stdout, &up, case, engine == "hyper").await;
        if !problems.is_empty() {
            failed.push((case.name, problems));
        }
    }
    report(
        &format!("response side ({engine} engine)"),
        cases.len(),
        started,
        &failed,
    );
}
