//! Engine tests with a manual clock: notifications, repeats, silences, no-data, reloads, SLOs, persistence.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::engine::Engine;
use super::fingerprint;
use super::persist::Store;
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::notify::{AlertEvent, AlertStatus};
use crate::state::{FlowState, Shared};
use crate::stats::{Clock, ManualClock, Sample};

/// A whole minute, so slot arithmetic in the tests is easy to follow.
const T0: u64 = 1_700_000_040_000;

const ERROR_RULE: &str = r#"
service: shop
upstream: http://127.0.0.1:9
alerting: { repeat_interval: 10m, external_url: "https://redline.example/" }
flows:
  - name: checkout
    match: /x
    owner: payments
    runbook: https://wiki.example/checkout
    alerts:
      - { when: "error_rate > 10%", over: 1m, for: 30s, keep_firing_for: 1m, min_requests: 5 }
"#;

struct Rig {
    clock: Arc<ManualClock>,
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    tx: mpsc::Sender<AlertEvent>,
    rx: mpsc::Receiver<AlertEvent>,
}

impl Rig {
    fn new(yaml: &str) -> Rig {
        Rig::with_store(yaml, None)
    }

    fn with_store(yaml: &str, store: Option<Store>) -> Rig {
        let clock = Arc::new(ManualClock::new(T0));
        let config = Config::parse(yaml, "test.yaml").unwrap();
        let shared = Shared::new(config, clock.clone(), AccessLog::off()).unwrap();
        let engine = Arc::new(Engine::new(store, "http://127.0.0.1:9901".into()));
        let (tx, rx) = mpsc::channel(64);
        Rig {
            clock,
            shared,
            engine,
            tx,
            rx,
        }
    }

    fn flow(&self) -> Arc<FlowState> {
        self.shared.runtime.load().flows[0].state.clone()
    }

    fn record(&self, n: usize, latency_ms: u64, error: bool) {
        let flow = self.flow();
        let sample = Sample {
            latency: Duration::from_millis(latency_ms),
            error,
            timeout: false,
            denied: false,
        };
        for _ in 0..n {
            flow.window.record(self.clock.now_ms(), sample);
            if let Some(slo) = flow.slo.get() {
                slo.record(self.clock.now_ms(), &sample);
            }
        }
    }

    /// Move the clock, record, evaluate; the events handed to the notifier.
    fn step(&mut self, secs: u64, n: usize, error: bool) -> Vec<AlertEvent> {
        self.clock.advance(Duration::from_secs(secs));
        self.record(n, 10, error);
        self.eval()
    }

    fn eval(&mut self) -> Vec<AlertEvent> {
        self.engine.evaluate(&self.shared);
        self.engine.flush_outbox(&self.tx);
        let mut out = Vec::new();
        while let Ok(e) = self.rx.try_recv() {
            out.push(e);
        }
        out
    }

    fn gauge(&self, alertname: &str, severity: &str) -> f64 {
        let labels = ["checkout", alertname, severity];
        self.shared.registry.alert_state.get(&labels)
    }

    fn alerts(&self) -> Vec<Value> {
        let v = self.engine.alerts_json(self.clock.now_ms());
        v["alerts"].as_array().cloned().unwrap_or_default()
    }
}

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn fires_once_repeats_after_repeat_interval_and_resolves_with_the_episode() {
    let mut rig = Rig::new(ERROR_RULE);
    assert!(rig.step(0, 10, true).is_empty());
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 1.0);
    assert_eq!(rig.alerts()[0]["state"], "pending");
    assert!(
        rig.step(10, 10, true).is_empty(),
        "pending is never notified"
    );
    let fired = rig.step(20, 0, true);
    assert_eq!(fired.len(), 1);
    let e = &fired[0];
    assert_eq!(e.status, AlertStatus::Firing);
    let labels: Vec<(&str, &str)> = e
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "FlowErrorRate"),
            ("flow", "checkout"),
            ("owner", "payments"),
            ("service", "shop"),
            ("severity", "warning"),
        ]
    );
    assert_eq!(
        e.annotations["summary"],
        "checkout: error rate 100% > 10% over 1m (20 requests)"
    );
    assert_eq!(
        e.annotations["runbook_url"],
        "https://wiki.example/checkout"
    );
    assert_eq!(
        e.annotations["dashboard_url"],
        "https://redline.example/#flow=checkout"
    );
    assert_eq!(e.generator_url, "https://redline.example/api/alerts");
    assert_eq!(e.fingerprint, fingerprint(&e.labels));
    assert_eq!(e.fingerprint.len(), 16);
    assert_eq!((e.value, e.ends_at), (1.0, None));
    let starts = ms(e.starts_at);
    assert_eq!(starts, T0 + 30_000);
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 2.0);
    assert_eq!(rig.alerts()[0]["state"], "firing");

    // Still breaching: nothing for 9 m 30 s, then a repeat at 10 m.
    for i in 1..20 {
        assert!(rig.step(30, 5, true).is_empty(), "step {i}");
    }
    let repeat = rig.step(30, 5, true);
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0].status, AlertStatus::Firing);
    assert_eq!(ms(repeat[0].starts_at), starts);
    assert!(repeat[0].sequence > e.sequence);

    // Recovery: Ok from the 4th step on, held for keep_firing_for (1 m) → resolved at step 10.
    for i in 1..10 {
        assert!(rig.step(10, 20, false).is_empty(), "step {i}");
        assert_eq!(rig.gauge("FlowErrorRate", "warning"), 2.0);
    }
    let resolved = rig.step(10, 20, false);
    assert_eq!(resolved.len(), 1);
    let r = &resolved[0];
    assert_eq!(r.status, AlertStatus::Resolved);
    assert_eq!(ms(r.starts_at), starts);
    assert_eq!(r.ends_at.map(ms), Some(rig.clock.now_ms()));
    assert_eq!(r.fingerprint, e.fingerprint);
    assert_eq!(r.annotations["reason"], "recovered");
    assert_eq!(r.annotations["value"], "0%");
    assert_eq!(r.value, 0.0);
    assert_eq!(r.annotations["duration"], "11m40s");
    // 10 + 10 errors before firing, 5 per step for 20 steps after.
    assert_eq!(r.annotations["requests_affected"], "120");
    assert_eq!(
        r.annotations["summary"],
        "checkout: error rate 0% <= 10% over 1m (140 requests)"
    );
    assert!(r.sequence > repeat[0].sequence);
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 0.0);
    assert!(rig.alerts().is_empty());
}

#[test]
fn silences_mute_notifications_and_their_end_notifies_a_still_firing_alert() {
    let mut rig = Rig::new(ERROR_RULE);
    let new = |flow: Option<&str>, name: Option<&str>, d: &str| super::silences::NewSilence {
        flow: flow.map(String::from),
        alertname: name.map(String::from),
        duration: d.into(),
        comment: None,
    };
    let s = rig
        .engine
        .add_silence(new(Some("checkout"), None, "5m"), rig.clock.now_ms())
        .unwrap();
    rig.step(0, 10, true);
    assert!(rig.step(30, 10, true).is_empty(), "fired while silenced");
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 2.0);
    let a = &rig.alerts()[0];
    assert_eq!(
        (a["state"].as_str(), a["silenced"].as_bool()),
        (Some("firing"), Some(true))
    );
    assert_eq!(a["silenced_by"][0], s.id.as_str());
    // Deleting the silence notifies at the next evaluation.
    assert!(rig.engine.remove_silence(&s.id, rig.clock.now_ms()));
    let e = rig.step(5, 5, true);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].status, AlertStatus::Firing);
    // A 1 m silence by alert name: muted, then notified again once it expires.
    rig.engine
        .add_silence(new(None, Some("FlowErrorRate"), "1m"), rig.clock.now_ms())
        .unwrap();
    assert!(rig.step(30, 5, true).is_empty());
    let e = rig.step(30, 5, true);
    assert_eq!(e.len(), 1, "silence expired");
    assert_eq!(e[0].status, AlertStatus::Firing);
    assert!(
        rig.engine.silences_json(rig.clock.now_ms())["silences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Resolving while silenced still tells the receivers that heard of the alert.
    rig.engine
        .add_silence(new(Some("checkout"), None, "1h"), rig.clock.now_ms())
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..20 {
        events.extend(rig.step(10, 20, false));
    }
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, AlertStatus::Resolved);
}

#[test]
fn an_episode_that_fired_and_resolved_inside_a_silence_is_never_notified() {
    let mut rig = Rig::new(ERROR_RULE);
    let silence = super::silences::NewSilence {
        flow: Some("checkout".into()),
        alertname: None,
        duration: "1h".into(),
        comment: Some("deploying".into()),
    };
    rig.engine.add_silence(silence, T0).unwrap();
    let mut events = rig.step(0, 10, true);
    events.extend(rig.step(30, 10, true));
    for _ in 0..20 {
        events.extend(rig.step(10, 20, false));
    }
    assert!(events.is_empty());
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 0.0);
}

#[test]
fn firing_without_data_resolves_with_no_data_after_three_overs() {
    let mut rig = Rig::new(ERROR_RULE);
    rig.step(0, 10, true);
    assert_eq!(rig.step(30, 10, true).len(), 1);
    // No more traffic: the errors leave the 1 m window, then Unknown for 3 m resolves.
    let mut first_unknown = None;
    let mut resolved = None;
    for _ in 0..80 {
        let events = rig.step(5, 0, false);
        let summary = rig
            .alerts()
            .first()
            .map(|a| a["annotations"]["summary"].clone());
        if first_unknown.is_none()
            && summary.is_some_and(|s| s.as_str().unwrap_or("").contains("no data"))
        {
            first_unknown = Some(rig.clock.now_ms());
        }
        if let Some(e) = events.into_iter().next() {
            resolved = Some((rig.clock.now_ms(), e));
            break;
        }
    }
    let first_unknown = first_unknown.expect("went Unknown");
    let (at, e) = resolved.expect("resolved");
    assert_eq!(at - first_unknown, 180_000);
    assert_eq!(e.status, AlertStatus::Resolved);
    assert_eq!(e.annotations["reason"], "no_data");
    assert_eq!(e.annotations["value"], "100%", "the last value measured");
    assert_eq!(e.annotations["requests_affected"], "20");
    assert!(e.annotations["summary"].contains("no data over 1m"));
}

#[test]
fn min_requests_keeps_a_thin_window_from_alerting() {
    let mut rig = Rig::new(ERROR_RULE);
    // 4 errors < min_requests 5: Unknown, never pending.
    rig.step(0, 4, true);
    assert!(rig.step(30, 0, true).is_empty());
    assert!(rig.alerts().is_empty());
    assert_eq!(rig.gauge("FlowErrorRate", "warning"), 0.0);
}

#[test]
fn traffic_low_fires_on_no_traffic_at_all() {
    let yaml = "upstream: http://127.0.0.1:9\nflows:\n  - name: checkout\n    match: /x\n    \
                alerts:\n      - { when: \"rps < 1\", over: 1m, for: 0s }\n";
    let mut rig = Rig::new(yaml);
    let e = rig.step(60, 0, false);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].labels["alertname"], "FlowTrafficLow");
    assert_eq!(
        e[0].annotations["summary"],
        "checkout: rps 0 < 1 over 1m (0 requests)"
    );
    assert!(!e[0].labels.contains_key("owner"));
    assert_eq!(e[0].labels["service"], "redline");
    assert_eq!(e[0].generator_url, "http://127.0.0.1:9901/api/alerts");
}

#[test]
fn a_rule_removed_by_a_reload_resolves_and_its_gauge_goes() {
    let mut rig = Rig::new(ERROR_RULE);
    rig.step(0, 10, true);
    assert_eq!(rig.step(30, 10, true).len(), 1);
    let without = ERROR_RULE.replace(
        "    alerts:\n      - { when: \"error_rate > 10%\", over: 1m, for: 30s, keep_firing_for: 1m, min_requests: 5 }\n",
        "",
    );
    let config = Config::parse(&without, "test.yaml").unwrap();
    let runtime = rig.shared.build_runtime(config).unwrap();
    rig.shared.runtime.store(Arc::new(runtime));
    let e = rig.step(5, 0, false);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].status, AlertStatus::Resolved);
    assert_eq!(e[0].annotations["reason"], "rule_removed");
    assert!(!rig.shared.registry.render().contains("FlowErrorRate"));
    assert!(rig.alerts().is_empty());
}

#[test]
fn state_survives_a_reload_that_keeps_the_rule() {
    let mut rig = Rig::new(ERROR_RULE);
    rig.step(0, 10, true);
    assert_eq!(rig.step(30, 10, true).len(), 1);
    let changed = ERROR_RULE.replace("owner: payments", "owner: web");
    let runtime = rig
        .shared
        .build_runtime(Config::parse(&changed, "test.yaml").unwrap())
        .unwrap();
    rig.shared.runtime.store(Arc::new(runtime));
    assert!(
        rig.step(5, 5, true).is_empty(),
        "no new page after a reload"
    );
    assert_eq!(rig.alerts()[0]["labels"]["owner"], "web");
    assert_eq!(rig.alerts()[0]["starts_at"], super::rfc3339(T0 + 30_000));
}

#[test]
fn trace_ids_of_offending_requests_are_attached() {
    let mut rig = Rig::new(ERROR_RULE);
    let flow = rig.flow();
    flow.exemplars.push(T0 - 120_000, "old".into());
    for id in ["t1", "t2", "t3", "t4"] {
        flow.exemplars.push(T0, id.into());
    }
    flow.exemplars.push(T0 + 1, "t5".into());
    rig.step(0, 10, true);
    let e = rig.step(30, 10, true);
    let ids: Vec<&str> = e[0].annotations["trace_ids"].split(',').collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], "t5");
    assert!(!ids.contains(&"old"));
}

#[test]
fn slo_burn_rate_pages_through_the_engine() {
    let yaml = "upstream: http://127.0.0.1:9\nflows:\n  - name: checkout\n    match: /x\n    \
                slo: { objective: 99%, latency: 100ms }\n";
    let mut rig = Rig::new(yaml);
    assert!(rig.flow().slo.get().is_some());
    // Half the requests slower than 100 ms: burn 50× on every window, but the 1 h / 5 m pair
    // is judged only after 5 m seen.
    let mut events = Vec::new();
    for _ in 0..4 {
        rig.clock.advance(Duration::from_secs(60));
        rig.record(10, 10, false);
        rig.record(10, 300, false);
        events.extend(rig.eval());
    }
    assert!(events.is_empty());
    rig.clock.advance(Duration::from_secs(60));
    rig.record(10, 300, false);
    let e = rig.eval();
    assert_eq!(e.len(), 1, "for: 0 — fires on the first judged breach");
    assert_eq!(e[0].labels["alertname"], "FlowSLOBurnRate");
    assert_eq!(e[0].labels["severity"], "page");
    assert!(
        e[0].annotations["summary"].starts_with(
            "checkout: error budget burn rate 55.6x > 14.4x over 1h and 5m (SLO 99%, 90 requests)"
        ),
        "{}",
        e[0].annotations["summary"]
    );
    assert_eq!(rig.gauge("FlowSLOBurnRate", "page"), 2.0);
    assert_eq!(
        rig.gauge("FlowSLOBurnRate", "warning"),
        0.0,
        "3 d / 6 h not judged yet"
    );
}

#[tokio::test]
async fn persisted_state_restores_firing_alerts_silences_and_undelivered_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::with_store(ERROR_RULE, Some(Store::new(dir.path())));
    rig.step(0, 10, true);
    let fired = rig.step(30, 10, true);
    assert_eq!(fired.len(), 1);
    let silence = super::silences::NewSilence {
        flow: None,
        alertname: Some("FlowTimeoutRate".into()),
        duration: "1h".into(),
        comment: Some("noisy".into()),
    };
    rig.engine.add_silence(silence, rig.clock.now_ms()).unwrap();
    rig.engine.persist().await;

    // "Restart": new process state, same data_dir, clock moved on.
    let mut after = Rig::with_store(ERROR_RULE, Some(Store::new(dir.path())));
    after.clock.set(rig.clock.now_ms() + 20_000);
    after
        .engine
        .restore(&after.shared.registry, after.clock.now_ms());
    assert_eq!(after.gauge("FlowErrorRate", "warning"), 2.0);
    let a = after.alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["state"], "firing");
    assert_eq!(a[0]["starts_at"], super::rfc3339(T0 + 30_000));
    let silences = after.engine.silences_json(after.clock.now_ms());
    assert_eq!(silences["silences"][0]["comment"], "noisy");
    // Still breaching after the restart: no second page.
    assert!(after.step(5, 10, true).is_empty());
    // Recovery after the restart is resolved against the original episode.
    let mut events = Vec::new();
    for _ in 0..12 {
        events.extend(after.step(10, 20, false));
    }
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, AlertStatus::Resolved);
    assert_eq!(ms(events[0].starts_at), T0 + 30_000);

    // An event decided but not handed over before a crash is sent after the restart.
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::with_store(ERROR_RULE, Some(Store::new(dir.path())));
    rig.record(10, 10, true);
    rig.engine.evaluate(&rig.shared);
    rig.clock.advance(Duration::from_secs(30));
    assert!(rig.engine.evaluate(&rig.shared));
    assert_eq!(rig.engine.outbox_len(), 1);
    rig.engine.persist().await;
    let mut after = Rig::with_store(ERROR_RULE, Some(Store::new(dir.path())));
    after.engine.restore(&after.shared.registry, T0 + 30_000);
    assert_eq!(after.engine.outbox_len(), 1);
    let e = after.eval();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].status, AlertStatus::Firing);
}

#[test]
fn external_url_is_validated_and_trimmed() {
    let parse = |url: &str| {
        Config::parse(
            &format!("alerting: {{ external_url: \"{url}\" }}\n"),
            "t.yaml",
        )
    };
    let ok = parse("https://redline.example/ops/").unwrap();
    assert_eq!(
        ok.alerting.external_url.as_deref(),
        Some("https://redline.example/ops")
    );
    for bad in ["redline.example", "ftp://x", "http://"] {
        let err = parse(bad).unwrap_err();
        assert!(err.to_string().contains("external_url"), "{bad}: {err}");
        assert_eq!((err.line, err.column), (1, 27), "{bad}");
    }
}
