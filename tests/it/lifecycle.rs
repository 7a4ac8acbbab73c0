//! Process lifecycle and command line: graceful SIGTERM, `check`, `--version`, `--help`, flag/env/file precedence.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_refuses_new_and_exits_zero() {
    let up = app().await;
    let mut rl = Redline::start(&config_for(up, "limits: { shutdown_grace: 10s }\n"));
    let in_flight = tokio::spawn({
        let url = rl.url("/echo?sleep_ms=2000");
        async move { get(&url).await }
    });
    // The request must be inside Redline before the signal.
    eventually(Duration::from_secs(5), "request in flight", || async {
        let m = rl.metrics().await;
        m.contains(r#"http_server_active_requests{flow="unmatched",http_request_method="GET"} 1"#)
            .then_some(())
    })
    .await;
    let signalled = Instant::now();
    rl.signal("TERM");
    eventually(Duration::from_secs(3), "listener closed", || async {
        tokio::net::TcpStream::connect(rl.proxy)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let until = Instant::now() + Duration::from_secs(8);
    let exit = loop {
        if let Some(status) = rl.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "redline did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
}

fn redline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(args)
        .env_remove("REDLINE_CONFIG")
        .env_remove("REDLINE_UPSTREAM")
        .output()
        .unwrap()
}

#[test]
fn check_prints_what_it_understood_or_exits_2_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "upstream: http://127.0.0.1:3000\nflows:\n  - name: checkout\n    match: POST /api/checkout\n    timeout: 5s\n    alerts:\n      - when: error_rate > 2%\n",
    )
    .unwrap();
    let out = redline(&["check", "--config", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for expected in [
        "checkout",
        "POST /api/checkout",
        "5s",
        "error_rate > 2%",
        "FlowErrorRate",
    ] {
        assert!(stdout.contains(expected), "missing {expected}: {stdout}");
    }

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "upstream: http://127.0.0.1:3000\nflows:\n  - name: checkout\n    match: POST /api/checkout\n    alerts:\n      - when: p97 > 1s\n").unwrap();
    let out = redline(&["check", "--config", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("{}:6:", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("p95"), "says what was expected: {stderr}");

    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "upstream: http://127.0.0.1:3000\nlisten_port: 80\n",
    )
    .unwrap();
    let out = redline(&["check", "--config", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":2:1"),
        "{out:?}"
    );
}

#[test]
fn version_and_help_with_examples() {
    let out = redline(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = redline(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("redline run --upstream http://127.0.0.1:3000"),
        "{help}"
    );
    let out = redline(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("REDLINE_UPSTREAM") && help.contains("--config"),
        "{help}"
    );
    let out = redline(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_with_only_upstream_and_flag_beats_env_beats_file() {
    let up = app().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // File says dead, env says dead, flag says the real app: the flag wins.
    let rl = Redline::start_with(
        &config_for(dead, ""),
        &["--upstream", &format!("http://{up}")],
        &[("REDLINE_UPSTREAM", &format!("http://{dead}"))],
    );
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
    drop(rl);

    // No file at all: only --upstream.
    let mut child = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args([
            "run",
            "--upstream",
            &format!("http://{up}"),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("REDLINE_LOG_FORMAT", "json")
        .env_remove("REDLINE_CONFIG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("\"proxy\""))
    })
    .await
    .unwrap()
    .expect("start-up line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let proxy = v["proxy"].as_str().unwrap();
    assert_eq!(get(&format!("http://{proxy}/echo")).await.0, 200);
    let _ = child.kill();
    let _ = child.wait();

    // Env beats file.
    let rl = Redline::start_with(
        &config_for(dead, ""),
        &[],
        &[("REDLINE_UPSTREAM", &format!("http://{up}"))],
    );
    assert_eq!(get(&rl.url("/echo")).await.0, 200);
}

#[test]
fn no_upstream_anywhere_is_a_usage_error() {
    let out = redline(&["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream"));
}

/// Send one request on `conn` and read its response whole (it has a `content-length`).
async fn exchange(conn: &mut tokio::net::TcpStream, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "closed early: {text}");
        got.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_holding_half_a_request_head_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = app().await;
    // The header read limit (10 s) is what used to hold the exit up.
    let mut rl = Redline::start(&config_for(up, "limits: { shutdown_grace: 10s }\n"));
    // One connection on the fast path, one handed to hyper (HTTP/1.0 keep-alive): each
    // serves a request, then gets half of the next head.
    let mut fast = tokio::net::TcpStream::connect(rl.proxy).await.unwrap();
    let first = exchange(&mut fast, "GET /echo/a HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut hyper = tokio::net::TcpStream::connect(rl.proxy).await.unwrap();
    let first = exchange(
        &mut hyper,
        "GET /echo/b HTTP/1.0\r\nhost: x\r\nconnection: keep-alive\r\n\r\n",
    )
    .await;
    assert!(first.starts_with("HTTP/1.0 200"), "{first}");
    for conn in [&mut fast, &mut hyper] {
        conn.write_all(b"GET /echo/c HTTP/1.1\r\nhost: x\r\nx-half: ")
            .await
            .unwrap();
    }
    let signalled = Instant::now();
    rl.signal("TERM");
    for conn in [&mut fast, &mut hyper] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), conn.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "connection still open 2 s after SIGTERM");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    let until = signalled + Duration::from_secs(2);
    let exit = loop {
        if let Some(status) = rl.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "redline still running 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
}
