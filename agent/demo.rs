//! `redline demo`: a flaky app, Redline in front of it, traffic and a console receiver, in one process.
//!
//! The app has an incident on a fixed schedule (checkout fails, search hangs), so that
//! a viewer sees an alert fire within about a minute and resolve about two minutes
//! later, then the cycle repeats. Before each incident the demo rehearses a failure
//! ([`rehearsal`]): a fault injected into the catalog flow through the admin API opens its
//! breaker, the fallback serves, the alert fires, and all of it recovers once the fault
//! expires. Everything listens on loopback only.

mod rehearsal;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::app::{self, Hooks, RunError};
use crate::config::{Config, ConfigError};
use crate::server::{self, ConnLimits};
use crate::shutdown::{self, Watch};

/// Proxy address the demo prefers; an ephemeral port if it is taken.
pub const DEFAULT_PROXY: &str = "127.0.0.1:8080";
/// Admin (dashboard) address the demo prefers; an ephemeral port if it is taken.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// The app's incidents repeat with this period.
const CYCLE: Duration = Duration::from_secs(240);
/// Within each cycle, the incident lasts from `INCIDENT.0` to `INCIDENT.1`.
const INCIDENT: (Duration, Duration) = (Duration::from_secs(15), Duration::from_secs(105));
/// One request is sent this often (about 12 requests per second in all).
const REQUEST_EVERY: Duration = Duration::from_millis(80);
/// Requests in flight at once; beyond this the generator skips a beat instead of piling up.
const MAX_IN_FLIGHT: usize = 64;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo app could not listen on loopback.
    #[error("cannot start the demo app on 127.0.0.1: {0}")]
    App(#[source] std::io::Error),
    /// The built-in demo configuration was rejected (a bug in this build).
    #[error("the demo configuration is invalid: {0}")]
    Config(#[from] ConfigError),
    /// Redline itself failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Redline ended before it reported its listeners.
    #[error("Redline stopped before it was listening")]
    NotListening,
    /// The Redline task panicked or was cancelled.
    #[error("Redline task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Run the demo until `duration` elapses (or forever), or until SIGINT/SIGTERM.
pub async fn run(duration: Option<Duration>) -> Result<(), DemoError> {
    let started = Instant::now();
    // Dropped, not drained, at the end: the app's connections are not waited for.
    let (app_stop, app_stop_rx) = shutdown::channel();
    let app_addr = start_app(started, app_stop_rx).await?;
    let (config, console) = demo_config(
        app_addr,
        free_or_ephemeral(DEFAULT_PROXY),
        free_or_ephemeral(DEFAULT_ADMIN),
    )?;
    let (bound_tx, bound_rx) = oneshot::channel();
    let (shutdown, shutdown_rx) = shutdown::channel();
    let hooks = Hooks {
        bound: Some(bound_tx),
        shutdown: Some(shutdown_rx),
        ..Hooks::default()
    };
    let mut redline = tokio::spawn(app::run(config, hooks));
    let Ok((proxy, admin)) = bound_rx.await else {
        drop(app_stop);
        redline.await??;
        return Err(DemoError::NotListening);
    };
    print_banner(proxy, admin, app_addr, console, duration);
    let (traffic_stop, traffic_stop_rx) = shutdown::channel();
    let fallbacks = Arc::new(rehearsal::Fallbacks::default());
    let watch = traffic_stop_rx.clone();
    tokio::spawn(rehearsal::run(
        admin,
        started,
        CYCLE,
        fallbacks.clone(),
        watch,
    ));
    tokio::spawn(generate_traffic(proxy, started, fallbacks, traffic_stop_rx));
    let ended_by_signal = tokio::select! {
        _ = sleep_or_forever(duration) => None,
        result = &mut redline => Some(result),
    };
    // Traffic stops first, so Redline drains only what is in flight; the app goes last.
    traffic_stop.drain().await;
    let result = match ended_by_signal {
        Some(result) => result,
        None => {
            shutdown.drain().await;
            redline.await
        }
    };
    drop(app_stop);
    result??;
    println!("[demo] finished after {}s.", started.elapsed().as_secs());
    Ok(())
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// `preferred` if it can be bound now, else a free ephemeral loopback port.
///
/// A concrete port (rather than 0) keeps the printed URLs and `/api/config` truthful.
fn free_or_ephemeral(preferred: &str) -> SocketAddr {
    let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
    let wanted: SocketAddr = preferred.parse().unwrap_or(fallback);
    if std::net::TcpListener::bind(wanted).is_ok() {
        return wanted;
    }
    std::net::TcpListener::bind(fallback)
        .and_then(|l| l.local_addr())
        .unwrap_or(fallback)
}

/// The demo config, and whether it has the console receiver (older builds lack that type).
fn demo_config(
    app: SocketAddr,
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<(Config, bool), DemoError> {
    let with_console = demo_yaml(app, listen, admin, CONSOLE_RECEIVER);
    if let Ok(config) = Config::parse(&with_console, "demo config") {
        return Ok((config, true));
    }
    let config = Config::parse(&demo_yaml(app, listen, admin, ""), "demo config")?;
    Ok((config, false))
}

const CONSOLE_RECEIVER: &str = "  receivers:\n    - { name: console, type: console }\n";

/// Alerts judge 30 s windows and need 10 s of breach, so they fire within about a minute.
fn demo_yaml(app: SocketAddr, listen: SocketAddr, admin: SocketAddr, receivers: &str) -> String {
    format!(
        r#"service: demo-shop
listen: "{listen}"
upstream: http://{app}
admin:
  listen: "{admin}"
flows:
  - name: catalog
    match: ["GET /api/products", "GET /api/products/{{id}}"]
    owner: storefront-team
    timeout: 2s
    circuit_breaker: {{ consecutive_failures: 5, open_for: 2s, max_open_for: 4s }}
    fallback:
      stale_if_error: {{ max_age: 5m }}
      static: {{ status: 503, retry_after: 5s }}
    alerts:
      - {{ when: "p95 > 250ms", over: 30s, for: 10s, keep_firing_for: 20s }}
  - name: checkout
    match: "POST /api/checkout"
    owner: payments-team
    timeout: 3s
    alerts:
      - {{ when: "error_rate > 5%", over: 30s, for: 10s, min_requests: 5, keep_firing_for: 20s, severity: page }}
      - {{ when: "p95 > 800ms", over: 30s, for: 10s, keep_firing_for: 20s }}
  - name: search
    match: "GET /api/search"
    owner: discovery-team
    timeout: 1s
    alerts:
      - {{ when: "timeout_rate > 2%", over: 30s, for: 10s, min_requests: 5, keep_firing_for: 20s }}
alerting:
  eval_interval: 2s
{receivers}telemetry:
  access_log: "off"
limits:
  shutdown_grace: 2s
"#
    )
}

fn print_banner(
    proxy: SocketAddr,
    admin: SocketAddr,
    app: SocketAddr,
    console: bool,
    duration: Option<Duration>,
) {
    println!("Redline demo: a flaky shop app, Redline in front of it, and traffic flowing.\n");
    println!("  Dashboard  http://{admin}/");
    println!("  Proxy      http://{proxy}/   (try: curl http://{proxy}/api/products)");
    println!("  Metrics    http://{admin}/metrics");
    println!("  App        http://{app}/   (the prototype itself, without Redline)\n");
    println!(
        "Flows: catalog (fast reads), checkout (slow, fails during incidents), search (sometimes times out)."
    );
    println!(
        "The app has an incident {}s to {}s after start, then every {} minutes: alerts fire within",
        INCIDENT.0.as_secs(),
        INCIDENT.1.as_secs(),
        CYCLE.as_secs() / 60
    );
    println!("about a minute and resolve about a minute after the incident ends.");
    println!(
        "Before each incident, a rehearsal: {}s in, a fault is injected into {} through POST /api/faults for {}s;",
        rehearsal::AT.as_secs(),
        rehearsal::FLOW,
        rehearsal::FAULT_FOR.as_secs()
    );
    println!(
        "its breaker opens, the fallback serves, FlowCircuitOpen fires, and all of it recovers once the fault expires."
    );
    if console {
        println!("Alert notifications are printed below.");
    } else {
        println!(
            "This build has no console receiver: notifications are not printed; watch the dashboard."
        );
    }
    match duration {
        Some(d) => println!("Stopping after {}.\n", humantime::format_duration(d)),
        None => println!("Press Ctrl-C to stop.\n"),
    }
}

fn in_incident(started: Instant) -> bool {
    incident_at(started.elapsed())
}

fn incident_at(elapsed: Duration) -> bool {
    let phase = Duration::from_millis((elapsed.as_millis() % CYCLE.as_millis()) as u64);
    phase >= INCIDENT.0 && phase < INCIDENT.1
}

type AppBody = Full<Bytes>;

async fn start_app(started: Instant, stop: Watch) -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(DemoError::App)?;
    let addr = listener.local_addr().map_err(DemoError::App)?;
    let limits = ConnLimits {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 64 * 1024,
    };
    let handler = move |req: Request<Incoming>, _peer: SocketAddr| async move {
        Ok::<_, Infallible>(app_route(req, in_incident(started)).await)
    };
    tokio::spawn(server::serve(
        server::Connections::Listener(listener),
        limits,
        handler,
        stop,
        Duration::from_secs(1),
        None,
    ));
    Ok(addr)
}

/// The prototype: fast catalog reads, a slow checkout that fails in incidents, a search that sometimes hangs.
async fn app_route(req: Request<Incoming>, incident: bool) -> Response<AppBody> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/api/products") => {
            pause(2, 15).await;
            json(
                StatusCode::OK,
                r#"{"products":[{"id":1,"name":"mug"},{"id":2,"name":"tee"}]}"#,
            )
        }
        (Method::GET, p) if p.starts_with("/api/products/") => {
            pause(2, 15).await;
            json(
                StatusCode::OK,
                r#"{"id":1,"name":"mug","price_cents":1200}"#,
            )
        }
        (Method::POST, "/api/checkout") => checkout(req, incident).await,
        (Method::GET, "/api/search") => search(incident).await,
        (Method::GET, "/favicon.ico") => json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#),
        _ => {
            pause(1, 5).await;
            let mut resp = Response::new(Full::new(Bytes::from_static(b"<h1>demo shop</h1>\n")));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html"),
            );
            resp
        }
    }
}

async fn checkout(req: Request<Incoming>, incident: bool) -> Response<AppBody> {
    let _ = Limited::new(req.into_body(), 64 * 1024).collect().await;
    pause(120, 400).await;
    let failure_rate = if incident { 0.2 } else { 0.01 };
    if fastrand::f64() < failure_rate {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"payment provider unavailable"}"#,
        );
    }
    json(
        StatusCode::CREATED,
        r#"{"order":"ord_123","status":"paid"}"#,
    )
}

async fn search(incident: bool) -> Response<AppBody> {
    let hang_rate = if incident { 0.08 } else { 0.005 };
    if fastrand::f64() < hang_rate {
        // Longer than the flow's 1 s timeout: Redline answers 504 and counts a timeout.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    } else {
        pause(20, 80).await;
    }
    json(StatusCode::OK, r#"{"results":[{"id":1,"name":"mug"}]}"#)
}

async fn pause(min_ms: u64, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(min_ms..=max_ms))).await;
}

fn json(status: StatusCode, body: &'static str) -> Response<AppBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Sends a mix of requests through the proxy, and says when the app's incident starts and ends.
async fn generate_traffic(
    proxy: SocketAddr,
    started: Instant,
    fallbacks: Arc<rehearsal::Fallbacks>,
    stop: Watch,
) {
    let client: Client<HttpConnector, AppBody> = Client::builder(TokioExecutor::new()).build_http();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut every = tokio::time::interval(REQUEST_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_incident = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.signaled() => return,
        }
        let incident = in_incident(started);
        if incident != was_incident {
            announce(started, incident);
            was_incident = incident;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let request = next_request(proxy);
        let client = client.clone();
        let fallbacks = fallbacks.clone();
        tokio::spawn(async move {
            // Failures are the point of the demo; Redline measures them, the generator ignores them.
            if let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_secs(10), client.request(request)).await
            {
                fallbacks.note(resp.headers());
                let _ = resp.into_body().collect().await;
            }
            drop(permit);
        });
    }
}

fn announce(started: Instant, incident: bool) {
    let at = started.elapsed().as_secs();
    if incident {
        println!(
            "[demo] {at}s: incident starts: checkout fails 20% of the time, search hangs 8% of the time."
        );
    } else {
        println!("[demo] {at}s: incident over: the app is healthy again.");
    }
}

/// Half catalog reads, a fifth each checkout and search, the rest unmatched pages.
fn next_request(proxy: SocketAddr) -> Request<AppBody> {
    let roll = fastrand::u32(0..100);
    let (method, path, body) = match roll {
        0..=29 => (Method::GET, "/api/products".to_string(), Bytes::new()),
        30..=49 => (
            Method::GET,
            format!("/api/products/{}", fastrand::u32(1..500)),
            Bytes::new(),
        ),
        50..=69 => (
            Method::POST,
            "/api/checkout".to_string(),
            Bytes::from_static(br#"{"cart":"c_42","amount_cents":2400}"#),
        ),
        70..=89 => (
            Method::GET,
            format!("/api/search?q=item{}", fastrand::u32(0..50)),
            Bytes::new(),
        ),
        90..=94 => (
            Method::GET,
            format!("/users/{}/profile", fastrand::u32(1..10_000)),
            Bytes::new(),
        ),
        _ => (Method::GET, "/about".to_string(), Bytes::new()),
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = format!("http://{proxy}{path}")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    if req.method() == Method::POST {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1)))
    }

    #[test]
    fn demo_config_is_valid_with_and_without_console() {
        let (app, listen, admin) = (
            addr("127.0.0.1:3000"),
            addr("127.0.0.1:8080"),
            addr("127.0.0.1:9901"),
        );
        let bare = Config::parse(&demo_yaml(app, listen, admin, ""), "demo");
        let bare = bare.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bare.flows.len(), 3);
        assert_eq!(bare.listen, listen);
        assert_eq!(bare.admin.listen, admin);
        assert!(
            bare.flows
                .iter()
                .all(|f| !f.alerts.is_empty() && f.owner.is_some())
        );
        let (config, _console) = demo_config(app, listen, admin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.flows, bare.flows);
    }

    #[test]
    fn incident_schedule() {
        let at = |secs: u64| incident_at(Duration::from_secs(secs));
        assert!(!at(5));
        assert!(at(20));
        assert!(!at(110));
        assert!(at(CYCLE.as_secs() + 20));
    }

    #[test]
    fn occupied_port_falls_back_to_an_ephemeral_one() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let taken_addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let got = free_or_ephemeral(&taken_addr.to_string());
        assert_ne!(got.port(), taken_addr.port());
        assert_ne!(got.port(), 0);
    }
}
