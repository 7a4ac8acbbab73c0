//! `redline demo`: prints its URLs, serves the dashboard, prints a firing alert within about a minute, and exits 0 after `--duration`.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

fn find(lines: &Mutex<Vec<String>>, needle: &str) -> Option<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fires_an_alert_within_a_minute_and_exits_cleanly() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["demo", "--duration", "75s"])
        .env_remove("REDLINE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redline demo");
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let guard = scopeguard(&mut child);

    let dashboard = eventually(Duration::from_secs(20), "dashboard URL", || async {
        find(&stdout, "Dashboard  http://")
    })
    .await;
    let admin = dashboard
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let proxy_line = find(&stdout, "Proxy      http://").expect("proxy URL printed");
    let proxy = proxy_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string();

    let (status, _, page) = get(&format!("{admin}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Redline"));
    assert_eq!(get(&format!("{proxy}/api/products")).await.0, 200);
    let flows = eventually(
        Duration::from_secs(20),
        "demo traffic in every flow",
        || async {
            let (_, _, body) = get(&format!("{admin}/api/flows")).await;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let flows = v["flows"].as_array()?.clone();
            flows
                .iter()
                .all(|f| f["windows"]["1m"]["requests"].as_u64() > Some(0))
                .then_some(flows)
        },
    )
    .await;
    let names: Vec<&str> = flows.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["catalog", "checkout", "search", "unmatched"]);

    let firing = eventually(
        Duration::from_secs(75),
        "a FIRING notification on stdout",
        || async { find(&stdout, "FIRING") },
    )
    .await;
    assert!(
        ["catalog", "checkout", "search"]
            .iter()
            .any(|f| firing.contains(f)),
        "{firing}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(70),
        "fired after {:?}",
        started.elapsed()
    );

    let until = Instant::now() + Duration::from_secs(100);
    let status = loop {
        if let Some(status) = guard.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < until, "demo did not exit after --duration");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status.success(),
        "exit {status}: {:?}",
        stderr.lock().unwrap()
    );
    assert!(started.elapsed() >= Duration::from_secs(75));
    assert!(
        find(&stdout, "[demo] finished").is_some(),
        "{:?}",
        stdout.lock().unwrap()
    );
}

/// Kills the demo if an assertion fails first.
struct Guard<'a> {
    child: &'a mut std::process::Child,
}

fn scopeguard(child: &mut std::process::Child) -> Guard<'_> {
    Guard { child }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
