//! A small HTTP/1.1 load generator for `benches/load/run.sh`: closed-loop throughput or open-loop fixed rate.
//!
//! Open-loop latency is measured from each request's *scheduled* start, so a
//! stalled server cannot hide its queueing (no coordinated omission).
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/ --connections 50 --duration 10
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/ --rate 1000 --duration 10
//! ```
//! Prints one JSON object: requests, errors, rps, p50_us, p99_us, p999_us, max_us.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Args {
    url: String,
    connections: usize,
    duration: Duration,
    rate: Option<u64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: String::new(),
        connections: 50,
        duration: Duration::from_secs(10),
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => args.url = value,
            "--connections" => args.connections = value.parse().expect("--connections N"),
            "--duration" => {
                args.duration = Duration::from_secs_f64(value.parse().expect("--duration SECONDS"))
            }
            "--rate" => args.rate = Some(value.parse().expect("--rate RPS")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!args.url.is_empty(), "--url is required");
    args
}

type Hist = Arc<std::sync::Mutex<Histogram<u64>>>;

#[tokio::main]
async fn main() {
    let args = parse_args();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections)
        .build_http();
    let uri: http::Uri = args.url.parse().expect("valid --url");
    let hist: Hist = Arc::new(std::sync::Mutex::new(
        Histogram::new_with_bounds(1, 60_000_000, 3).expect("hist"),
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::new();
    let per_conn_interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r as f64));
    for i in 0..args.connections {
        let (client, uri, hist, errors) =
            (client.clone(), uri.clone(), hist.clone(), errors.clone());
        // Stagger open-loop workers so their schedules interleave evenly.
        let offset = per_conn_interval.map(|iv| iv.mul_f64(i as f64 / args.connections as f64));
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
            let mut next = started + offset.unwrap_or_default();
            loop {
                if per_conn_interval.is_some() {
                    if next >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
                } else if Instant::now() >= deadline {
                    break;
                }
                let scheduled = if per_conn_interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                let ok = match client.get(uri.clone()).await {
                    Ok(resp) => {
                        let good = resp.status().is_success();
                        good && resp.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                let _ = local.record(scheduled.elapsed().as_micros().max(1) as u64);
                if let Some(iv) = per_conn_interval {
                    next += iv;
                }
            }
            hist.lock().expect("hist lock").add(&local).expect("merge");
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = hist.lock().expect("hist lock");
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
}
