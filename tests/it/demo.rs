//! `redline demo`: prints its URLs, serves the dashboard, rehearses a failure (fault injected through the admin API, breaker open, fallback serving, alert firing, then all of it recovering), prints an incident's firing alert within about a minute, and exits 0 after `--duration`.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

/// Where the first line containing `needle` is, if any.
fn position(lines: &Mutex<Vec<String>>, needle: &str) -> Option<usize> {
    lines
        .lock()
        .unwrap()
        .iter()
        .position(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rehearses_a_failure_fires_an_alert_and_exits_cleanly() {
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
        find_line(&stdout, "Dashboard  http://")
    })
    .await;
    let admin = dashboard
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let proxy_line = find_line(&stdout, "Proxy      http://").expect("proxy URL printed");
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

    // The rehearsal, as the admin API shows it while the fault is on: the fault listed
    // (from the API, with an expiry), and a catalog read answered by a fallback.
    let listed = eventually(Duration::from_secs(20), "the rehearsal's fault", || async {
        let (_, _, body) = get(&format!("{admin}/api/faults")).await;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let faults = v["faults"].as_array()?.clone();
        faults.into_iter().find(|f| f["flow"] == "catalog")
    })
    .await;
    assert_eq!(
        (&listed["source"], &listed["abort"]),
        (&serde_json::json!("api"), &serde_json::json!(503)),
        "{listed}"
    );
    assert!(listed["expires_in"].is_string(), "{listed}");
    let fallback = eventually(Duration::from_secs(20), "a fallback answer", || async {
        let (status, headers, _) = get(&format!("{proxy}/api/products")).await;
        let kind = headers
            .get("x-redline-fallback")?
            .to_str()
            .ok()?
            .to_string();
        Some((status, kind))
    })
    .await;
    assert_eq!(fallback, (200, "stale".to_string()), "the last good answer");

    // The rehearsal, as the terminal tells it, in this order.
    let story = [
        "rehearsal: fault",
        "rehearsal: circuit open for catalog",
        "[redline] FIRING FlowCircuitOpen catalog",
        "expired: the app answers again",
        "rehearsal: circuit closed for catalog",
        "[redline] RESOLVED FlowCircuitOpen catalog",
        "rehearsal: complete",
    ];
    eventually(
        Duration::from_secs(70),
        "the rehearsal to complete",
        || async { position(&stdout, "rehearsal: complete") },
    )
    .await;
    let at = |needle: &str| position(&stdout, needle);
    let steps: Vec<_> = story.iter().map(|s| at(s)).collect();
    let (injected, expired) = (steps[0], steps[3]);
    assert!(
        steps.iter().all(Option::is_some) && steps.windows(2).all(|w| w[0] < w[1]),
        "{steps:?} in {:#?}",
        stdout.lock().unwrap()
    );
    for kind in ["stale", "static"] {
        let served = format!("rehearsal: fallback served {kind}");
        assert!(
            at(&served).is_some_and(|i| Some(i) > injected && Some(i) < expired),
            "{served} while the fault was on: {:#?}",
            stdout.lock().unwrap()
        );
    }

    // The incident's own alerts (not the rehearsal's).
    let firing = eventually(
        Duration::from_secs(75),
        "a FIRING notification on stdout",
        || async {
            let lines = stdout.lock().unwrap();
            let incident = |l: &&String| l.contains("FIRING") && !l.contains("FlowCircuitOpen");
            lines.iter().find(incident).cloned()
        },
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
        find_line(&stdout, "[demo] finished").is_some(),
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
