//! A small HTTP/1.1 load generator for `benches/load/run.sh`: closed-loop throughput or open-loop fixed rate.
//!
//! Each worker owns one keep-alive connection for the whole run, so
//! `--connections 1000` really holds 1,000 sockets open (a pooled client would
//! reuse a handful of idle ones). Open-loop latency is measured from each
//! request's *scheduled* start, so a stalled server cannot hide its queueing
//! (no coordinated omission).
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/ --connections 50 --duration 10
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/ --rate 1000 --duration 10
//! ```
//! `--header-lines FILE` adds one `name: value` header per request, taken from the file's
//! lines in turn (worker `i` starts at line `i`), e.g. a bearer token per line.
//! Prints one JSON object: requests, errors, rps, p50_us, p99_us, p999_us, max_us.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

struct Args {
    url: http::Uri,
    connections: usize,
    duration: Duration,
    rate: Option<u64>,
    headers: Arc<[(http::HeaderName, http::HeaderValue)]>,
}

/// The `name: value` lines of `path`.
fn header_lines(path: &str) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .split_once(':')
                .ok_or(format!("{path}: no ':' in {l:?}"))?;
            let name = name
                .trim()
                .parse()
                .map_err(|_| format!("{path}: bad name"))?;
            let value = value
                .trim()
                .parse()
                .map_err(|_| format!("{path}: bad value"))?;
            Ok((name, value))
        })
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let (mut url, mut connections, mut duration, mut rate) = (None, 50, 10.0, None);
    let mut headers = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--url" => url = Some(value.parse::<http::Uri>().map_err(|_| bad(()))?),
            "--connections" => connections = value.parse().map_err(|_| bad(()))?,
            "--duration" => duration = value.parse().map_err(|_| bad(()))?,
            "--rate" => rate = Some(value.parse().map_err(|_| bad(()))?),
            "--header-lines" => headers = header_lines(&value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    Ok(Args {
        url,
        connections,
        duration: Duration::from_secs_f64(duration),
        rate,
        headers: headers.into(),
    })
}

/// What one worker needs: where to connect, its schedule, and where to report.
struct Worker {
    url: http::Uri,
    interval: Option<Duration>,
    local: Histogram<u64>,
    first: Instant,
    deadline: Instant,
    hist: Arc<Mutex<Histogram<u64>>>,
    errors: Arc<AtomicU64>,
    headers: Arc<[(http::HeaderName, http::HeaderValue)]>,
    /// Index of the next header line this worker sends.
    next_header: usize,
}

async fn connect(url: &http::Uri) -> Option<SendRequest<Empty<Bytes>>> {
    let host = url.host()?;
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn one_request(sender: &mut SendRequest<Empty<Bytes>>, w: &mut Worker) -> bool {
    if sender.ready().await.is_err() {
        return false;
    }
    let mut req = http::Request::get(w.url.clone()).header(
        http::header::HOST,
        w.url.authority().map_or("", |a| a.as_str()),
    );
    if let Some((name, value)) = w.headers.get(w.next_header % w.headers.len().max(1)) {
        req = req.header(name, value);
        w.next_header += 1;
    }
    let req = req.body(Empty::new());
    let Ok(req) = req else { return false };
    match sender.send_request(req).await {
        Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

async fn run_worker(mut w: Worker) {
    let mut sender = connect(&w.url).await;
    let mut next = w.first;
    loop {
        if w.interval.is_some() {
            if next >= w.deadline {
                break;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        } else if Instant::now() >= w.deadline {
            break;
        }
        let scheduled = if w.interval.is_some() {
            next
        } else {
            Instant::now()
        };
        let ok = match sender.as_mut() {
            Some(s) => one_request(s, &mut w).await,
            None => false,
        };
        if !ok {
            w.errors.fetch_add(1, Ordering::Relaxed);
            // A broken connection is replaced, as a real client would.
            sender = connect(&w.url).await;
        }
        let _ = w
            .local
            .record(scheduled.elapsed().as_micros().max(1) as u64);
        if let Some(iv) = w.interval {
            next += iv;
        }
    }
    if let Ok(mut h) = w.hist.lock() {
        let _ = h.add(&w.local);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    // 1 µs .. 60 s at 3 significant digits; every worker records into a copy, merged at the end.
    let Ok(template) = Histogram::new_with_bounds(1, 60_000_000, 3) else {
        return ExitCode::from(1);
    };
    let hist = Arc::new(Mutex::new(template.clone()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(1) as f64));
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        // Stagger open-loop workers so their schedules interleave evenly.
        let offset = interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(i as f64 / args.connections as f64)
        });
        tasks.push(tokio::spawn(run_worker(Worker {
            url: args.url.clone(),
            interval,
            local: template.clone(),
            first: started + offset,
            deadline: started + args.duration,
            hist: hist.clone(),
            errors: errors.clone(),
            headers: args.headers.clone(),
            next_header: i,
        })));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let Ok(h) = hist.lock() else {
        return ExitCode::from(1);
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        h.len(),
        errors.load(Ordering::Relaxed),
        h.len() as f64 / elapsed,
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    ExitCode::SUCCESS
}
