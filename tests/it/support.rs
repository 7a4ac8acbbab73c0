//! Test harness: the real `redline` binary, a real upstream app, and a small HTTP client.
#![allow(dead_code)] // Shared by every test module; not each uses every helper.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Poll `f` until it returns `Some`, or panic after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `redline` process with its captured output.
pub struct Redline {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub config_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Redline {
    /// Start `redline run` with this YAML (ports forced to 127.0.0.1:0).
    pub fn start(yaml: &str) -> Redline {
        Self::start_with(yaml, &[], &[])
    }

    /// Start with extra arguments and environment variables.
    pub fn start_with(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Redline {
        Self::spawn(Some(yaml), args, env, None)
    }

    /// Start with no config file at all: `args` must name the upstream.
    pub fn start_without_config(args: &[&str], env: &[(&str, &str)]) -> Redline {
        Self::spawn(None, args, env, None)
    }

    /// Start with the open-file limit (soft and hard) set to `nofile` by the shell's
    /// `ulimit -n`, as a container or systemd unit would.
    pub fn start_with_nofile(yaml: &str, nofile: u32) -> Redline {
        Self::spawn(Some(yaml), &[], &[], Some(nofile))
    }

    fn spawn(
        yaml: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u32>,
    ) -> Redline {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("redline.yaml");
        let bin = env!("CARGO_BIN_EXE_redline");
        let mut cmd = match nofile {
            None => Command::new(bin),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                sh
            }
        };
        cmd.arg("run");
        if let Some(yaml) = yaml {
            std::fs::write(&config_path, yaml).expect("write config");
            cmd.arg("--config").arg(&config_path);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(args)
            .env("REDLINE_LOG_FORMAT", "json")
            .env("REDLINE_LOG", "info")
            .env_remove("REDLINE_UPSTREAM")
            .env_remove("REDLINE_CONFIG")
            .env_remove("REDLINE_ALERT_WEBHOOK")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn redline");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let until = Instant::now() + Duration::from_secs(20);
        let (proxy, admin) = loop {
            if let Some(addrs) = stderr.lock().unwrap().iter().find_map(|l| listening(l)) {
                break addrs;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redline exited early with {status}: {:?}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < until,
                "redline did not start: {:?}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Redline {
            child,
            proxy,
            admin,
            stdout,
            stderr,
            config_path,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub async fn metrics(&self) -> String {
        get(&self.admin_url("/metrics")).await.2
    }

    /// Scrape `/metrics` once `requests` proxied requests are counted: a request is
    /// recorded as its response ends, which the client may see a moment earlier.
    pub async fn metrics_counting(&self, requests: f64) -> String {
        eventually(Duration::from_secs(10), "requests counted", || async {
            let m = self.metrics().await;
            let counted: f64 = m
                .lines()
                .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (counted >= requests).then_some(m)
        })
        .await
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = get(&self.admin_url(path)).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("admin json")
    }

    /// Wait for the access log line of request `id`.
    pub async fn access_line(&self, request_id: &str) -> serde_json::Value {
        eventually(Duration::from_secs(5), "access log line", || async {
            self.stdout
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["request_id"] == request_id)
        })
        .await
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Resident set size in KiB from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Redline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first captured line containing `needle`, if any yet.
pub fn find_line(lines: &Mutex<Vec<String>>, needle: &str) -> Option<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
}

/// The first captured line containing `needle`, within `deadline`.
pub async fn line_with(lines: &Mutex<Vec<String>>, needle: &str, deadline: Duration) -> String {
    eventually(deadline, needle, || async { find_line(lines, needle) }).await
}

/// Collect a child's output lines on a thread, for polling from tests.
pub fn lines_of<R: std::io::Read + Send + 'static>(r: R) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let proxy = v.get("proxy")?.as_str()?.parse().ok()?;
    let admin = v.get("admin")?.as_str()?.parse().ok()?;
    Some((proxy, admin))
}

/// Response body type of the test upstream.
pub type UpBody = BoxBody<Bytes, Infallible>;

pub fn full(s: impl Into<Bytes>) -> UpBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

/// Serve `handler` on an ephemeral loopback port (HTTP/1.1 and h2c, with upgrades).
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<UpBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The standard test app: echo, slow, status, big download, SSE.
pub async fn app() -> SocketAddr {
    serve(|req: Request<Incoming>| async move { app_route(req).await }).await
}

async fn app_route(req: Request<Incoming>) -> Response<UpBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| -> Option<u64> {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
    };
    if let Some(ms) = param("sleep_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        let mut r = Response::new(full(format!("status {code}")));
        *r.status_mut() = StatusCode::from_u16(code).unwrap();
        return r;
    }
    match path.as_str() {
        "/big" => big(param("mb").unwrap_or(1)),
        "/sse" => sse(),
        _ => echo(req).await,
    }
}

async fn echo(req: Request<Incoming>) -> Response<UpBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or("?")),
            )
        })
        .collect();
    let v = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
    });
    let mut r = Response::new(full(v.to_string()));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("connection", "x-upstream-hop".parse().unwrap());
    r.headers_mut()
        .insert("x-upstream-hop", "secret".parse().unwrap());
    r
}

fn big(mb: u64) -> Response<UpBody> {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let n = mb * 16;
    let stream = futures_util::stream::iter(
        (0..n).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
    );
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        "content-length",
        (n * 64 * 1024).to_string().parse().unwrap(),
    );
    r
}

fn sse() -> Response<UpBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"data: first\n\n"))))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"data: second\n\n"))))
            .await;
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

/// A pooled HTTP/1.1 test client.
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET a URL; returns status, headers and body text.
pub async fn get(url: &str) -> (u16, http::HeaderMap, String) {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

/// Send a request and read the whole response.
pub async fn send(req: Request<Full<Bytes>>) -> (u16, http::HeaderMap, String) {
    let resp = client().request(req).await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Value of the sample line starting with `series` (exact label match) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// Minimal config for an upstream.
pub fn config_for(upstream: SocketAddr, extra: &str) -> String {
    format!("upstream: http://{upstream}\n{extra}")
}

/// A loopback port that was free a moment ago, for servers that take an address flag.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The first of `candidates` on PATH, or a panic that says how to install `package`.
pub fn binary_on_path(candidates: &[&str], package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{candidates:?} not found on PATH: apt-get install -y {package} \
                 (tests/run.sh does it)"
            )
        })
}

/// Wait until `url` answers 200 (a server's readiness endpoint).
pub async fn wait_ready(url: &str, what: &str, child: &mut Child) {
    let uri: http::Uri = url.parse().expect("ready url");
    eventually(Duration::from_secs(30), what, || {
        let exited = child.try_wait().ok().flatten();
        let uri = uri.clone();
        async move {
            assert!(exited.is_none(), "{what}: process exited with {exited:?}");
            let ok = client()
                .get(uri)
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            ok.then_some(())
        }
    })
    .await;
}

/// A real `prometheus-alertmanager` on loopback (no clustering), killed on drop.
pub struct Alertmanager {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Start one with a route to a receiver that sends nowhere, and wait until it is ready.
    pub async fn start() -> Alertmanager {
        let binary = binary_on_path(
            &["prometheus-alertmanager", "alertmanager"],
            "prometheus-alertmanager",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .expect("write alertmanager.yml");
        let port = free_port();
        let mut child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{url}/-/ready"), "alertmanager ready", &mut child).await;
        Alertmanager {
            child,
            url,
            _dir: dir,
        }
    }

    /// `GET /api/v2/alerts`: every alert Alertmanager holds.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let (status, _, body) = get(&format!("{}/api/v2/alerts", self.url)).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("alertmanager alerts json")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus server on loopback with its own TSDB in a temporary directory.
pub struct Prometheus {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start one with `config` (prometheus.yml text) and wait until it is ready.
    /// `files` are written next to the config first, so `rule_files` can name them.
    pub async fn start(config: &str, files: &[(&str, &[u8])]) -> Prometheus {
        Self::start_with_args(config, files, &[]).await
    }

    /// [`Prometheus::start`] with extra command-line flags (e.g. `--enable-feature=…`).
    pub async fn start_with_args(
        config: &str,
        files: &[(&str, &[u8])],
        args: &[&str],
    ) -> Prometheus {
        let binary = binary_on_path(&["prometheus"], "prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("write prometheus file");
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let mut child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = lines_of(child.stderr.take().expect("prometheus stderr"));
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{url}/-/ready"), "prometheus ready", &mut child).await;
        Prometheus {
            child,
            url,
            stderr,
            _dir: dir,
        }
    }

    /// `GET /api/v1/<path>` and its `data` (asserting `status: success`).
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = get(&format!("{}/api/v1/{path}", self.url)).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus json");
        assert_eq!(v["status"], "success", "{path}: {body}");
        v["data"].clone()
    }

    /// An instant query's result vector.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let q = percent_encode(promql);
        let data = self.api(&format!("query?query={q}")).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode a query-string value (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An app of known capacity: one worker serves requests one at a time, each taking
/// `service` (so capacity ≈ 1 / `service`), and the `stall_at`-th request (1-based), if
/// any, takes `stall` instead, holding up every request behind it like a GC pause.
///
/// The worker is a plain thread with `std::thread::sleep`: tokio's timer rounds sleeps up
/// to the next millisecond, which would make a 2 ms service time closer to 3 ms.
pub async fn serial_app(service: Duration, stall_at: Option<u64>, stall: Duration) -> SocketAddr {
    type Job = (Instant, tokio::sync::oneshot::Sender<()>);
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || {
        let mut served = 0u64;
        // A request starts when it arrived or when the previous one was due to end, whichever
        // is later, not when a late wakeup on this shared machine let the worker look: the
        // capacity stays 1 / `service` under CPU contention instead of drifting down.
        let mut busy_until = Instant::now();
        for (arrived, done) in queue {
            served += 1;
            let pause = if Some(served) == stall_at {
                stall
            } else {
                service
            };
            busy_until = busy_until.max(arrived) + pause;
            let left = busy_until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left);
            }
            let _ = done.send(());
        }
    });
    let jobs = Arc::new(Mutex::new(jobs));
    serve(move |req: Request<Incoming>| {
        let jobs = jobs.clone();
        async move {
            let _ = req.into_body().collect().await;
            let (done, served) = tokio::sync::oneshot::channel();
            let queued = jobs.lock().unwrap().send((Instant::now(), done)).is_ok();
            if queued && served.await.is_ok() {
                Response::new(full("ok"))
            } else {
                let mut r = Response::new(full("worker gone"));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            }
        }
    })
    .await
}

/// Run `redline baseline ARGS…` to completion: exit code, stdout, stderr. The process is
/// waited for on a blocking thread, so apps served by the test's runtime keep answering.
pub async fn baseline(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_redline"))
            .arg("baseline")
            .args(&args)
            .output()
            .expect("run redline baseline")
    })
    .await
    .expect("baseline thread");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
