//! Hot reload: file saves, ConfigMap swaps, SIGHUP, the API, rejection with positions, needs-restart, audit, and zero failed requests under load.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::support::*;

/// How long a reload may take to show: the 250 ms debounce plus a loaded CI machine.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// A `redline run` started with exactly these arguments (no forced `--config`/`--listen`),
/// for layouts `Redline::start` cannot make: ConfigMap mounts, non-loopback admin.
pub struct Proc {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Start `redline run ARGS` with JSON logs, no inherited admin token, plus `env`.
    pub fn launch(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redline"));
        cmd.arg("run")
            .args(args)
            .env("REDLINE_LOG_FORMAT", "json")
            .env("REDLINE_LOG", "info")
            .env_remove("REDLINE_UPSTREAM")
            .env_remove("REDLINE_CONFIG")
            .env_remove("REDLINE_ADMIN_TOKEN")
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
            let found = stderr.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                Some((
                    v["proxy"].as_str()?.parse().ok()?,
                    v["admin"].as_str()?.parse().ok()?,
                ))
            });
            if let Some(addrs) = found {
                break addrs;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redline exited with {status}: {:?}", stderr.lock().unwrap());
            }
            assert!(Instant::now() < until, "redline did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Proc {
            child,
            proxy,
            admin,
            stdout,
            stderr,
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Audit lines (`"audit": true`) of one event kind, in order.
pub fn audit_lines(stderr: &Mutex<Vec<String>>, event: &str) -> Vec<Value> {
    stderr
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["audit"] == true && v["event"] == event)
        .collect()
}

/// `POST` to a URL with an optional bearer token; returns status, headers and body.
pub async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, http::HeaderMap, String) {
    let mut req = Request::post(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await
}

async fn reloads(admin: &str, result: &str) -> f64 {
    let scrape = get(&format!("http://{admin}/metrics")).await.2;
    sample(
        &scrape,
        &format!("redline_config_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(-1.0)
}

/// Wait until the success/failure counters read exactly these values.
async fn await_reloads(admin: SocketAddr, success: f64, failure: f64) {
    let admin = admin.to_string();
    let until = Instant::now() + RELOAD_DEADLINE;
    loop {
        let got = (
            reloads(&admin, "success").await,
            reloads(&admin, "failure").await,
        );
        if got == (success, failure) {
            return;
        }
        assert!(
            Instant::now() < until,
            "wanted {success} successful and {failure} failed reloads, have {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replace the file the way editors do (write aside, rename over), so no reader ever
/// sees it half-written.
fn save(path: &std::path::Path, yaml: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A file event is debounced for 250 ms; twice that with margin shows whether a second
/// reload follows. Waiting out a quiet period is the only way to observe "no more".
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

async fn flow_names(admin: SocketAddr) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&get(&format!("http://{admin}/api/flows")).await.2).unwrap();
    v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn flows_yaml(names: &[&str]) -> String {
    let mut y = String::from("flows:\n");
    for n in names {
        y.push_str(&format!("  - name: {n}\n    match: GET /{n}/{{id}}\n"));
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_save_rewrite_sighup_and_api_each_reload_once_and_keep_statistics() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, &flows_yaml(&["a"])));
    for _ in 0..5 {
        assert_eq!(get(&rl.url("/a/1")).await.0, 200);
    }

    // Editor save: write a temporary file, rename it over the config.
    save(&rl.config_path, &config_for(up, &flows_yaml(&["a", "b"])));
    await_reloads(rl.admin, 1.0, 0.0).await;
    assert_eq!(flow_names(rl.admin).await, ["a", "b", "unmatched"]);

    // Plain rewrite in place (truncate + write).
    std::fs::write(&rl.config_path, config_for(up, &flows_yaml(&["a", "c"]))).unwrap();
    await_reloads(rl.admin, 2.0, 0.0).await;
    assert_eq!(flow_names(rl.admin).await, ["a", "c", "unmatched"]);

    // SIGHUP and the API reload even when the file did not change.
    rl.signal("HUP");
    await_reloads(rl.admin, 3.0, 0.0).await;
    let (status, _, body) = post(&rl.admin_url("/api/reload"), None, "").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"], "success");
    settle().await;
    await_reloads(rl.admin, 4.0, 0.0).await;

    let triggers: Vec<Value> = audit_lines(&rl.stderr, "reload")
        .iter()
        .map(|l| l["trigger"].clone())
        .collect();
    assert_eq!(
        triggers,
        ["file", "file", "signal", "api"],
        "one reload each"
    );
    let first = &audit_lines(&rl.stderr, "reload")[0];
    assert_eq!(first["result"], "success");
    assert_eq!(first["flows_added"], "b");
    assert_eq!(first["flows_removed"], "");
    assert_eq!(first["target"], "redline::audit");

    // Flow `a` kept its statistics through four reloads.
    let flows = rl.json("/api/flows").await;
    assert_eq!(flows["flows"][0]["name"], "a");
    assert_eq!(flows["flows"][0]["windows"]["1m"]["requests"], 5, "{flows}");
    let cfg = rl.json("/api/config").await;
    assert_eq!(cfg["last_reload"]["trigger"], "api");
    assert!(cfg["last_reload_error"].is_null());
}

/// Lays out a ConfigMap volume exactly as kubelet does: the file is a symlink to
/// `..data/config.yaml`, `..data` a symlink to a timestamped directory.
struct ConfigMapDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl ConfigMapDir {
    fn new(yaml: &str) -> ConfigMapDir {
        let dir = tempfile::tempdir().unwrap();
        let mut cm = ConfigMapDir { dir, version: 0 };
        cm.write_version(yaml);
        std::os::unix::fs::symlink(cm.version_dir(), cm.path("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.yaml", cm.path("config.yaml")).unwrap();
        cm
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn version_dir(&self) -> String {
        format!(
            "..2026_01_01_00_00_0{}.{}",
            self.version,
            1000 + self.version
        )
    }

    fn write_version(&mut self, yaml: &str) {
        self.version += 1;
        let dir = self.path(&self.version_dir());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    }

    /// kubelet's update: new timestamped dir, `..data_tmp` link to it, atomic rename
    /// over `..data`, then the old dir is removed.
    fn update(&mut self, yaml: &str) {
        let old = self.path(&self.version_dir());
        self.write_version(yaml);
        std::os::unix::fs::symlink(self.version_dir(), self.path("..data_tmp")).unwrap();
        std::fs::rename(self.path("..data_tmp"), self.path("..data")).unwrap();
        std::fs::remove_dir_all(old).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_reloads_once_and_listener_changes_need_restart() {
    let up = app().await;
    let base = "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n";
    let mut cm = ConfigMapDir::new(&config_for(up, &format!("{base}{}", flows_yaml(&["a"]))));
    let config = cm.path("config.yaml");
    let rl = Proc::launch(&["--config", config.to_str().unwrap()], &[]);
    assert_eq!(flow_names(rl.admin).await, ["a", "unmatched"]);

    let moved = "listen: 127.0.0.1:1\nadmin: { listen: 127.0.0.1:2 }\n";
    cm.update(&config_for(
        up,
        &format!("{moved}{}", flows_yaml(&["a", "k8s"])),
    ));
    await_reloads(rl.admin, 1.0, 0.0).await;
    assert_eq!(flow_names(rl.admin).await, ["a", "k8s", "unmatched"]);
    settle().await;
    await_reloads(rl.admin, 1.0, 0.0).await;

    let lines = audit_lines(&rl.stderr, "reload");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["trigger"], "file");
    assert_eq!(lines[0]["needs_restart"], "listen,admin.listen");
    let cfg: Value = serde_json::from_str(&get(&rl.admin_url("/api/config")).await.2).unwrap();
    assert_eq!(
        cfg["needs_restart"],
        serde_json::json!(["listen", "admin.listen"])
    );
    // The listeners did not move: the proxy still answers where it started.
    let (status, _, _) = get(&format!("http://{}/k8s/1", rl.proxy)).await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(5),
        "access log line of the new flow",
        || async {
            let out = rl.stdout.lock().unwrap();
            out.iter()
                .any(|l| l.contains("\"flow\":\"k8s\""))
                .then_some(())
        },
    )
    .await;
    let warned = rl.stderr.lock().unwrap().iter().any(|l| {
        l.contains("\"WARN\"") && l.contains("restart") && l.contains("listen,admin.listen")
    });
    assert!(warned, "a restart-only change is logged as a warning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_are_rejected_with_position_and_the_running_config_stays() {
    let up = app().await;
    let good = config_for(up, &flows_yaml(&["a"]));
    let rl = Redline::start(&good);
    let path = rl.config_path.display().to_string();
    let looped = format!("upstream: http://127.0.0.1:{}\n", rl.proxy.port());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "syntax",
            "upstream: [unclosed\n".to_string(),
            format!("{path}:"),
        ),
        (
            "unknown key",
            format!("{good}listen_port: 80\n"),
            format!("{path}:5:1"),
        ),
        (
            "bad pattern",
            config_for(up, "flows:\n  - name: a\n    match: GET api/x\n"),
            format!("{path}:4:12"),
        ),
        (
            "bad when",
            config_for(
                up,
                "flows:\n  - name: a\n    match: GET /x\n    alerts:\n      - when: p97 > 1s\n",
            ),
            format!("{path}:6:"),
        ),
        (
            "no upstream",
            "flows: []\n".to_string(),
            "upstream".to_string(),
        ),
        ("loop", looped, "loop".to_string()),
    ];
    let mut failures = 0.0;
    for (what, yaml, expected) in &cases {
        save(&rl.config_path, yaml);
        failures += 1.0;
        await_reloads(rl.admin, 0.0, failures).await;
        let cfg = rl.json("/api/config").await;
        let error = cfg["last_reload_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(expected.as_str()), "{what}: {error}");
        assert_eq!(cfg["last_reload"]["result"], "failure", "{what}");
        // The API says the same, with a 4xx, and counts another failure.
        let (status, _, body) = post(&rl.admin_url("/api/reload"), None, "").await;
        assert_eq!(status, 422, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], error.as_str(), "{what}");
        failures += 1.0;
        await_reloads(rl.admin, 0.0, failures).await;
        // Still running the first config.
        assert_eq!(get(&rl.url("/a/1")).await.0, 200, "{what}");
        assert_eq!(flow_names(rl.admin).await, ["a", "unmatched"], "{what}");
    }
    let rejected = audit_lines(&rl.stderr, "reload");
    assert!(rejected.iter().all(|l| l["result"] == "failure"));
    assert!(rejected[0]["error"].as_str().unwrap().contains(&path));

    // A valid file afterwards applies and clears the error; a restart-only change is reported.
    save(
        &rl.config_path,
        &format!("{good}limits: {{ max_header_bytes: 32KiB }}\n"),
    );
    await_reloads(rl.admin, 1.0, failures).await;
    let cfg = rl.json("/api/config").await;
    assert!(cfg["last_reload_error"].is_null(), "{cfg}");
    assert_eq!(
        cfg["needs_restart"],
        serde_json::json!(["limits.max_header_bytes"])
    );
}

/// Config variants applied in turn under load: valid ones change flows and timeouts,
/// invalid ones break syntax, keys, patterns, conditions and the upstream.
fn load_configs(up: SocketAddr) -> Vec<(String, bool)> {
    let flows = |extra: &str| {
        config_for(
            up,
            &format!("flows:\n  - name: orders\n    match: GET /api/orders/{{id}}\n{extra}"),
        )
    };
    vec![
        (flows("    timeout: 5s\n"), true),
        (format!("{}flows: [\n", flows("")), false),
        (flows("  - name: search\n    match: GET /search\n"), true),
        (format!("{}nonsense: 1\n", flows("")), false),
        (flows("    alerts:\n      - when: error_rate > 2%\n"), true),
        (flows("  - name: bad\n    match: GET nope\n"), false),
        (flows("    owner: team-b\n"), true),
        (flows("    alerts:\n      - when: p97 > 1s\n"), false),
        (flows(""), true),
        ("flows: []\n".to_string(), false),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_fail_no_request() {
    // A minimal upstream keeps the test process's CPU for the load loop (2-core CI).
    let up = serve(|_req| async { http::Response::new(full("ok")) }).await;
    let configs = load_configs(up);
    let rl = Redline::start(&configs[8].0);
    let url = rl.url("/api/orders/7");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = client();
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            let (ok, failed) = (ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
                    let good = match client.request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            let body = resp.into_body().collect().await;
                            status.is_success() && body.is_ok()
                        }
                        Err(_) => false,
                    };
                    let counter = if good { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut statuses = Vec::new();
    for i in 0..20 {
        let (yaml, valid) = &configs[i % configs.len()];
        std::fs::write(&rl.config_path, yaml).unwrap();
        let (status, _, body) = post(&rl.admin_url("/api/reload"), None, "").await;
        assert_eq!(status, if *valid { 200 } else { 422 }, "reload {i}: {body}");
        statuses.push(status);
        // Spread the reloads over a few seconds of traffic.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rate = (ok + failed) as f64 / elapsed;
    eprintln!("load during reloads: {ok} ok, {failed} failed in {elapsed:.2}s = {rate:.0} req/s");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(rate >= 1000.0, "only {rate:.0} req/s");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 10);
    let api_reloads = audit_lines(&rl.stderr, "reload")
        .into_iter()
        .filter(|l| l["trigger"] == "api")
        .count();
    assert_eq!(api_reloads, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_removed_by_reloads_are_retired_once_their_windows_are_empty() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, &flows_yaml(&["f0"])));
    assert_eq!(get(&rl.url("/f0/1")).await.0, 200);
    // 25 reloads, each replacing the flow with one of a new name.
    for i in 1..=25 {
        let name = format!("f{i}");
        std::fs::write(&rl.config_path, config_for(up, &flows_yaml(&[&name]))).unwrap();
        let (status, _, body) = post(&rl.admin_url("/api/reload"), None, "").await;
        assert_eq!(status, 200, "reload {i}: {body}");
    }
    assert_eq!(flow_names(rl.admin).await, ["f25", "unmatched"]);
    let has = |scrape: &str, flow: &str| scrape.contains(&format!("flow=\"{flow}\""));
    // The flows that saw no request hold nothing: the next tick (1 s) retires them.
    let scrape = eventually(Duration::from_secs(10), "removed flows retired", || async {
        let scrape = rl.metrics().await;
        (1..25)
            .all(|i| !has(&scrape, &format!("f{i}")))
            .then_some(scrape)
    })
    .await;
    assert!(has(&scrape, "f25"), "the current flow stays: {scrape}");
    // `f0` counted a request: it stays until that leaves its 15-minute window.
    assert!(has(&scrape, "f0"), "{scrape}");
    let line = r#"http_server_request_duration_seconds_count{flow="f0",http_request_method="GET",http_route="/f0/{id}",http_response_status_code="200",error_type=""}"#;
    assert_eq!(sample(&scrape, line), Some(1.0), "{scrape}");
    assert_eq!(flow_names(rl.admin).await, ["f25", "unmatched"]);
}
