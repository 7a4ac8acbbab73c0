//! What a new user reads: the start-up line, upstream-down warnings, "address in use", config typo suggestions, `--access-log`, and plain (colourless) logs in a pipe.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::support::*;

/// Captured output lines of a child process.
type Lines = Arc<Mutex<Vec<String>>>;

/// `redline run ARGS` with text logs (the default format) and stderr captured.
fn spawn_text(args: &[&str]) -> (Child, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("run")
        .args(args)
        .env_remove("REDLINE_LOG_FORMAT")
        .env_remove("REDLINE_CONFIG")
        .env_remove("REDLINE_UPSTREAM")
        .env_remove("REDLINE_ACCESS_LOG")
        .env_remove("NO_COLOR")
        .env("REDLINE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redline");
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    (child, stderr)
}

/// Wait for a child to exit (bounded), for commands expected to fail at once.
fn exit_of(mut child: Child) -> (Option<i32>, String) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("redline did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_line_names_proxy_upstream_and_dashboard_without_colour_codes() {
    let up = app().await;
    let upstream = format!("http://{up}");
    let (mut child, stderr) = spawn_text(&[
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let line = line_with(&stderr, "dashboard http://", Duration::from_secs(20)).await;
    assert!(line.contains("proxy http://127.0.0.1:"), "{line}");
    assert!(line.contains(&format!("-> upstream {upstream}")), "{line}");
    assert!(line.contains("dashboard http://127.0.0.1:"), "{line}");
    assert!(
        line.contains("this machine only; --listen 0.0.0.0:PORT"),
        "the loopback default is explained: {line}"
    );
    // The dashboard URL in the line opens the dashboard.
    let url = line
        .split("dashboard ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("dashboard url");
    let (status, _, body) = get(url).await;
    assert_eq!(status, 200, "{url}");
    assert!(body.contains("<title>Redline"), "{url}");
    let _ = child.kill();
    let _ = child.wait();
    let all = stderr.lock().unwrap().join("\n");
    assert!(
        !all.contains('\u{1b}'),
        "ANSI escape codes in piped stderr: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_warned_about_at_start() {
    let closed = free_port();
    let rl = Redline::start(&format!("upstream: http://127.0.0.1:{closed}\n"));
    let warning = line_with(&rl.stderr, "is not reachable", Duration::from_secs(10)).await;
    let v: serde_json::Value = serde_json::from_str(&warning).expect("json log line");
    assert_eq!(v["level"], "WARN", "{warning}");
    assert_eq!(v["upstream"], format!("http://127.0.0.1:{closed}"));
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("requests get 502") && message.contains("--upstream"),
        "{message}"
    );
}

/// A one-response-per-connection upstream that can be stopped (its port then refuses).
fn plain_upstream(listener: tokio::net::TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
            let _ = conn.write_all(reply).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_going_down_is_warned_about_once_then_its_return_noted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let upstream = plain_upstream(listener);
    let rl = Redline::start(&format!("upstream: http://{addr}\n"));
    assert_eq!(get(&rl.url("/")).await.0, 200);

    upstream.abort();
    let _ = upstream.await;
    // Requests fail; the watch (every 5 s, off the request path) warns once.
    let warning = eventually(Duration::from_secs(15), "down warning", || async {
        assert_eq!(get(&rl.url("/")).await.0, 502);
        let lines = rl.stderr.lock().unwrap().clone();
        lines.into_iter().find(|l| l.contains("got 502"))
    })
    .await;
    assert!(warning.contains("\"WARN\""), "{warning}");
    for _ in 0..5 {
        assert_eq!(get(&rl.url("/")).await.0, 502);
    }

    // Back on the same port: noted within a check or two.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _upstream = plain_upstream(listener);
    line_with(&rl.stderr, "reachable again", Duration::from_secs(15)).await;
    let warnings = rl
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("is not reachable"))
        .count();
    assert_eq!(warnings, 1, "at most one warning a minute");
}

#[test]
fn an_address_in_use_suggests_the_flag_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let upstream = ["--upstream", "http://127.0.0.1:9"];
    for (flag, other) in [("--listen", "--admin"), ("--admin", "--listen")] {
        let child = Command::new(env!("CARGO_BIN_EXE_redline"))
            .arg("run")
            .args(upstream)
            .args([flag, addr.as_str(), other, "127.0.0.1:0"])
            .env_remove("REDLINE_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (code, stderr) = exit_of(child);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("already in use"), "{stderr}");
        assert!(stderr.contains(&format!("{flag} ADDR")), "{stderr}");
    }
}

#[test]
fn check_suggests_the_nearest_key_for_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redline.yaml");
    let yaml = "upstream: http://127.0.0.1:3000\ntimout: 5s\nflows:\n  - name: a\n    match: /a\n    ownr: me\n";
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!(
        "{}:2:1: unknown key `timout`; did you mean `timeout`?",
        path.display()
    );
    assert!(stderr.contains(&at), "{stderr}");

    std::fs::write(&path, yaml.replace("timout", "timeout")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":6:5: ") && stderr.contains("did you mean `owner`?"),
        "nested keys too: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_flag_beats_env_beats_file() {
    let up = app().await;
    // File json, env text: text lines.
    let rl = Redline::start_with(
        &config_for(up, "telemetry: { access_log: json }\n"),
        &[],
        &[("REDLINE_ACCESS_LOG", "text")],
    );
    assert_eq!(get(&rl.url("/echo?env")).await.0, 200);
    let line = line_with(&rl.stdout, "/echo?env", Duration::from_secs(5)).await;
    assert!(
        line.contains("status=200") && serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "text, not JSON: {line}"
    );
    drop(rl);

    // Env text, flag off: nothing on stdout, the requests still counted.
    let rl = Redline::start_with(
        &config_for(up, "telemetry: { access_log: json }\n"),
        &["--access-log", "off"],
        &[("REDLINE_ACCESS_LOG", "text")],
    );
    for _ in 0..3 {
        assert_eq!(get(&rl.url("/echo?flag")).await.0, 200);
    }
    rl.metrics_counting(3.0).await;
    let config = rl.json("/api/config").await;
    assert_eq!(
        config["config"]["telemetry"]["access_log"], "off",
        "{config}"
    );
    assert!(rl.stdout.lock().unwrap().is_empty(), "access log is off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_unreachable_upstream_is_warned_about() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    let closed = free_port();
    std::fs::write(
        &rl.config_path,
        format!("upstream: http://127.0.0.1:{closed}\n"),
    )
    .unwrap();
    rl.signal("HUP");
    let warning = line_with(&rl.stderr, "is not reachable", Duration::from_secs(15)).await;
    assert!(
        warning.contains(&format!("http://127.0.0.1:{closed}")),
        "{warning}"
    );
}
