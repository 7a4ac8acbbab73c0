//! Tests of applying, rejecting and watching reloads.

use super::apply::scrubber;
use super::*;
use crate::access_log::AccessLog;
use crate::auth;
use crate::stats::SystemClock;

const BASE: &str =
    "upstream: http://127.0.0.1:3000\nflows:\n  - name: checkout\n    match: POST /api/checkout\n";

fn shared_from(dir: &Path, yaml: &str) -> (Arc<Shared>, PathBuf) {
    let path = dir.join("redline.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = Config::load(&path).unwrap();
    let shared = Shared::new(config, Arc::new(SystemClock), AccessLog::off()).unwrap();
    (shared, path)
}

fn listeners() -> Listeners {
    Listeners {
        proxy: "127.0.0.1:8080".parse().unwrap(),
        admin: "127.0.0.1:9901".parse().unwrap(),
    }
}

fn reloads(shared: &Shared, result: &str) -> f64 {
    let scrape = shared.registry.render();
    let series = format!("redline_config_reloads_total{{result=\"{result}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn valid_applies_invalid_is_rejected_and_unchanged_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, path) = shared_from(dir.path(), BASE);
    let state = Arc::new(ReloadState::default());
    let (_stop_tx, stop) = crate::shutdown::channel();
    let quiet = Options {
        debounce: DEBOUNCE,
        poll_every: Duration::from_secs(3600),
    };
    start(
        &shared,
        &state,
        Some(path.clone()),
        None,
        listeners(),
        quiet,
        stop,
    );

    assert_eq!(
        reload_now(&shared, &state, Trigger::Poll),
        Ok(Outcome::Unchanged)
    );
    let added = format!("{BASE}  - name: search\n    match: GET /search\n");
    std::fs::write(&path, &added).unwrap();
    let Ok(Outcome::Applied(c)) = reload_now(&shared, &state, Trigger::Signal) else {
        panic!("valid config must apply");
    };
    assert_eq!(c.flows_added, ["search"]);
    assert!(c.needs_restart.is_empty());
    assert_eq!(shared.runtime.load().config.flows.len(), 2);

    std::fs::write(&path, format!("{added}bogus_key: 1\n")).unwrap();
    let Err(ReloadError::Rejected(e)) = reload_now(&shared, &state, Trigger::Api) else {
        panic!("unknown key must be rejected");
    };
    assert!(e.contains(&format!("{}:7:1", path.display())), "{e}");
    assert_eq!(state.last_error().as_deref(), Some(e.as_str()));
    assert_eq!(
        shared.runtime.load().config.flows.len(),
        2,
        "running config stays"
    );
    assert_eq!(
        (reloads(&shared, "success"), reloads(&shared, "failure")),
        (1.0, 1.0)
    );
}

#[tokio::test]
async fn a_change_before_the_watch_starts_is_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, path) = shared_from(dir.path(), BASE);
    let state = Arc::new(ReloadState::default());
    std::fs::write(&path, BASE.replace("checkout", "late")).unwrap();
    let (_stop_tx, stop) = crate::shutdown::channel();
    start(
        &shared,
        &state,
        Some(path),
        None,
        listeners(),
        Options::default(),
        stop,
    );
    assert_eq!(shared.runtime.load().config.flows[0].name, "late");
    assert_eq!(state.status_json()["last_reload"]["trigger"], "file");
    assert_eq!(reloads(&shared, "success"), 1.0);
}

#[test]
fn configs_that_would_break_the_proxy_are_unusable() {
    let parse = |y: &str| Config::parse(y, "c.yaml").unwrap();
    let l = listeners();
    assert!(check_usable(&parse("upstream: http://127.0.0.1:3000\n"), Some(&l)).is_ok());
    for looped in [
        "upstream: http://127.0.0.1:8080\n",
        "upstream: http://localhost:8080\n",
        "upstream: http://0.0.0.0:8080\n",
        "upstream: http://127.0.0.1:9901\n",
    ] {
        let e = check_usable(&parse(looped), Some(&l)).unwrap_err();
        assert!(e.contains("loop"), "{looped}: {e}");
    }
    assert!(check_usable(&parse("flows: []\n"), Some(&l)).is_err());
    if std::env::var(auth::TOKEN_ENV).is_err() {
        let missing =
            "upstream: http://127.0.0.1:3000\nadmin: { token_file: /nonexistent/token }\n";
        let e = check_usable(&parse(missing), Some(&l)).unwrap_err();
        assert!(e.contains("token_file"), "{e}");
    }
}

#[test]
fn restart_only_settings_are_listed() {
    let a = Config::parse("upstream: http://127.0.0.1:3000\n", "a").unwrap();
    let b = Config::parse(
        "upstream: http://127.0.0.1:3001\nlisten: 127.0.0.1:1\nlimits: { max_header_bytes: 32KiB }\n",
        "b",
    )
    .unwrap();
    assert_eq!(
        restart_only_changes(&a, &b),
        ["listen", "limits.max_header_bytes"]
    );
    assert!(restart_only_changes(&a, &a).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_picks_up_changes_without_file_events() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, path) = shared_from(dir.path(), BASE);
    let state = Arc::new(ReloadState::default());
    let (_stop_tx, stop) = crate::shutdown::channel();
    // A debounce far longer than the test: only the poll can deliver the change.
    let poll_only = Options {
        debounce: Duration::from_secs(3600),
        poll_every: Duration::from_millis(100),
    };
    start(
        &shared,
        &state,
        Some(path.clone()),
        None,
        listeners(),
        poll_only,
        stop,
    );
    std::fs::write(&path, BASE.replace("checkout", "payments")).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while shared.runtime.load().config.flows[0].name != "payments" {
        assert!(std::time::Instant::now() < until, "poll did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = state.status_json();
    assert_eq!(status["last_reload"]["trigger"], "poll");
    assert_eq!(reloads(&shared, "success"), 1.0);
}

#[test]
fn error_messages_are_redacted() {
    let running = Config::parse("upstream: http://127.0.0.1:3000\n", "a").unwrap();
    let msg = r#"c.yaml:3:8: invalid upstream URL "http://u:pw@h/?token=hunter2""#;
    let out = scrubber(&running).text(msg).into_owned();
    assert!(!out.contains("hunter2") && !out.contains("pw@"), "{out}");
    assert!(out.starts_with("c.yaml:3:8:"), "{out}");
}
