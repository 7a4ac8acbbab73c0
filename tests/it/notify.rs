//! Notifier: real HTTP receivers on loopback, a real Alertmanager, durability across a hard stop, and the binary end to end.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use redline::config::{Config, ReceiverConfig};
use redline::metrics::Registry;
use redline::notify::{AlertEvent, AlertStatus, Notifier, Options, Timing};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{self, UpBody, eventually};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

// ---------------------------------------------------------------- receivers

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("receiver got JSON")
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// A scripted reply: status and optional `Retry-After`.
type Reply = (u16, Option<&'static str>);

/// An HTTP receiver that records every request and answers from a script, then 200.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Recorder {
    async fn start(script: Vec<Reply>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Recorder::on(listener, script)
    }

    fn on(listener: TcpListener, script: Vec<Reply>) -> Recorder {
        let recorder = Recorder {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let served = recorder.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let served = served.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let served = served.clone();
                        async move { Ok::<_, Infallible>(served.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        recorder
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<UpBody> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.hits.lock().unwrap().push(Hit {
            path: parts.uri.path().to_string(),
            headers: parts.headers,
            body: body.to_vec(),
            at: Instant::now(),
        });
        let (status, retry_after) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, None));
        let mut response = Response::new(support::full("ok"));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(value) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", value.parse().unwrap());
        }
        response
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests arrived; returns them all.
    async fn wait_for(&self, n: usize, what: &str) -> Vec<Hit> {
        eventually(Duration::from_secs(20), what, || async {
            let hits = self.hits();
            (hits.len() >= n).then_some(hits)
        })
        .await
    }
}

// ---------------------------------------------------------------- notifier harness

/// Product timings with quick retries, so tests take seconds.
fn fast() -> Timing {
    Timing {
        request_timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(200),
        ..Timing::default()
    }
}

/// The receivers of an `alerting.receivers` YAML block (entries indented by four spaces).
fn receivers(entries: &str) -> Vec<ReceiverConfig> {
    let yaml = format!("alerting:\n  receivers:\n{entries}");
    Config::parse(&yaml, "notify-test.yaml")
        .expect("receiver config")
        .alerting
        .receivers
}

/// An in-process notifier fed through the same bounded channel the engine uses.
struct Running {
    tx: mpsc::Sender<AlertEvent>,
    notifier: Notifier,
    registry: Arc<Registry>,
}

impl Running {
    fn start(list: Vec<ReceiverConfig>, data_dir: Option<PathBuf>, timing: Timing) -> Running {
        let source = Arc::new(Mutex::new(list));
        Running::start_with(source, data_dir, timing)
    }

    fn start_with(
        source: Arc<Mutex<Vec<ReceiverConfig>>>,
        data_dir: Option<PathBuf>,
        timing: Timing,
    ) -> Running {
        let registry = Arc::new(Registry::new(&[]));
        let (tx, rx) = mpsc::channel(1024);
        let options = Options {
            receivers: Arc::new(move || source.lock().unwrap().clone()),
            registry: registry.clone(),
            data_dir,
            timing,
        };
        let notifier = Notifier::start(options, rx).expect("notifier starts");
        Running {
            tx,
            notifier,
            registry,
        }
    }

    async fn send(&self, event: AlertEvent) {
        self.tx.send(event).await.expect("notifier is running");
    }

    fn count(&self, receiver: &str, result: &str) -> u64 {
        self.registry.notifications.get(&[receiver, result]) as u64
    }

    async fn wait_count(&self, receiver: &str, result: &str, n: u64) {
        let what = format!("{receiver}/{result} ≥ {n}");
        eventually(Duration::from_secs(20), &what, || async {
            (self.count(receiver, result) >= n).then_some(())
        })
        .await
    }
}

/// A flow alert event as the engine emits it.
fn event(flow: &str, status: AlertStatus, sequence: u64) -> AlertEvent {
    let labels: BTreeMap<String, String> = [
        ("alertname", "FlowErrorRate"),
        ("flow", flow),
        ("owner", "payments-team"),
        ("service", "shop-prototype"),
        ("severity", "page"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_string(),
        format!("{flow}: error rate 8.6% > 2% over 5m (412 requests)"),
    );
    annotations.insert(
        "runbook_url".to_string(),
        "https://wiki.example/runbooks/checkout".to_string(),
    );
    let now = SystemTime::now();
    AlertEvent {
        status,
        fingerprint: redline::alerting::fingerprint(&labels),
        labels,
        annotations,
        starts_at: now - Duration::from_secs(60),
        ends_at: (status == AlertStatus::Resolved).then_some(now),
        generator_url: "http://127.0.0.1:9901/api/alerts".into(),
        sequence,
        value: 0.086,
    }
}

/// Check a Standard Webhooks signature the way a receiver would.
fn verify_signature(hit: &Hit, secret: &str) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let (id, ts) = (hit.header("webhook-id"), hit.header("webhook-timestamp"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&hit.body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(hit.header("webhook-signature"), want, "signature of {id}");
    let ts: u64 = ts.parse().expect("webhook-timestamp is unix seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.abs_diff(now) < 300, "timestamp {ts} vs now {now}");
}

fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("webhook-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_gets_signed_alertmanager_v4_messages() {
    let hook = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}', secret_file: '{}' }}\n",
        hook.url("/hook"),
        secret.display()
    ));
    let n = Running::start(list, None, fast());
    let firing = event("checkout", AlertStatus::Firing, 1);
    n.send(firing.clone()).await;
    hook.wait_for(1, "firing webhook").await;
    n.send(event("checkout", AlertStatus::Resolved, 2)).await;
    let hits = hook.wait_for(2, "resolved webhook").await;

    let (first, second) = (&hits[0], &hits[1]);
    assert_eq!(first.path, "/hook");
    assert_eq!(first.header("content-type"), "application/json");
    assert!(first.header("webhook-id").starts_with("msg_"));
    assert_ne!(first.header("webhook-id"), second.header("webhook-id"));
    verify_signature(first, SECRET);
    verify_signature(second, SECRET);

    let body = first.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(
        body["groupKey"],
        "{}:{alertname=\"FlowErrorRate\", flow=\"checkout\"}"
    );
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "FlowErrorRate", "flow": "checkout"})
    );
    assert_eq!(body["commonLabels"]["owner"], "payments-team");
    assert_eq!(
        body["commonAnnotations"]["summary"],
        "checkout: error rate 8.6% > 2% over 5m (412 requests)"
    );
    assert_eq!(body["externalURL"], "http://127.0.0.1:9901");
    assert_eq!(body["truncatedAlerts"], 0);
    let alert = &body["alerts"][0];
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["fingerprint"], firing.fingerprint.as_str());
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["generatorURL"], "http://127.0.0.1:9901/api/alerts");

    let body = second.json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"][0]["status"], "resolved");
    assert_ne!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    n.wait_count("ops", "delivered", 2).await;
    assert_eq!(n.count("ops", "retried") + n.count("ops", "failed"), 0);
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_webhook_id() {
    let hook = Recorder::start(vec![(503, None), (408, None), (429, Some("1"))]).await;
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}' }}\n",
        hook.url("/hook")
    ));
    let n = Running::start(list, None, fast());
    n.send(event("checkout", AlertStatus::Firing, 1)).await;
    let hits = hook.wait_for(4, "four attempts").await;
    n.wait_count("ops", "delivered", 1).await;
    assert_eq!(hits.len(), 4);
    let id = hits[0].header("webhook-id");
    assert!(
        hits.iter().all(|h| h.header("webhook-id") == id),
        "stable id"
    );
    assert!(hits.iter().all(|h| h.body == hits[0].body), "same body");
    // 429 came with Retry-After: 1, which beats the 200 ms backoff cap.
    let waited = hits[3].at - hits[2].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert_eq!(n.count("ops", "retried"), 3);
    assert_eq!(n.count("ops", "failed"), 0);
}

#[tokio::test]
async fn client_errors_fail_without_retry() {
    let hook = Recorder::start(vec![(400, None), (404, None)]).await;
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}' }}\n",
        hook.url("/hook")
    ));
    let n = Running::start(list, None, fast());
    n.send(event("a", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "failed", 1).await;
    n.send(event("b", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "failed", 2).await;
    // A third alert goes through: the earlier ones are gone, not waiting to be retried.
    n.send(event("c", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "delivered", 1).await;
    let flows: Vec<String> = hook
        .hits()
        .iter()
        .map(|h| {
            h.json()["groupLabels"]["flow"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(flows, ["a", "b", "c"]);
    assert_eq!(n.count("ops", "retried"), 0);
}

#[tokio::test]
async fn a_newer_event_replaces_an_undelivered_older_one() {
    // The firing is refused with Retry-After: 3; its resolve arrives while it waits.
    let hook = Recorder::start(vec![(503, Some("3"))]).await;
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}' }}\n",
        hook.url("/hook")
    ));
    let n = Running::start(list, None, fast());
    n.send(event("checkout", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "retried", 1).await;
    n.send(event("checkout", AlertStatus::Resolved, 2)).await;
    n.wait_count("ops", "delivered", 1).await;
    let hits = hook.hits();
    assert_eq!(hits.len(), 2, "the superseded firing is never sent again");
    assert_eq!(hits[0].json()["status"], "firing");
    assert_eq!(hits[1].json()["status"], "resolved");
    assert!(hits[1].at - hits[0].at < Duration::from_secs(3));
    assert_eq!(n.count("ops", "dropped"), 1);
}

#[tokio::test]
async fn receivers_follow_config_reloads() {
    let (old, new) = (Recorder::start(vec![]).await, Recorder::start(vec![]).await);
    let entry = |r: &Recorder| {
        format!(
            "    - {{ name: ops, type: webhook, url: '{}' }}\n",
            r.url("/")
        )
    };
    let source = Arc::new(Mutex::new(receivers(&entry(&old))));
    let n = Running::start_with(source.clone(), None, fast());
    n.send(event("a", AlertStatus::Firing, 1)).await;
    old.wait_for(1, "old receiver").await;
    *source.lock().unwrap() = receivers(&entry(&new));
    n.send(event("b", AlertStatus::Firing, 1)).await;
    new.wait_for(1, "new receiver").await;
    assert_eq!(old.hits().len(), 1);
    assert_eq!(new.hits()[0].json()["groupLabels"]["flow"], "b");
}

#[tokio::test]
async fn shutdown_flushes_what_is_queued() {
    let hook = Recorder::start(vec![]).await;
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}' }}\n",
        hook.url("/")
    ));
    let n = Running::start(list, None, fast());
    n.send(event("a", AlertStatus::Firing, 1)).await;
    n.send(event("b", AlertStatus::Firing, 1)).await;
    let registry = n.registry.clone();
    n.notifier.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        hook.hits().len(),
        2,
        "both delivered before shutdown returned"
    );
    assert_eq!(registry.notifications.get(&["ops", "delivered"]), 2.0);
}

// ---------------------------------------------------------------- slack, pagerduty

#[tokio::test]
async fn slack_gets_block_kit_at_most_once_per_second() {
    let slack = Recorder::start(vec![]).await;
    let list = receivers(&format!(
        "    - {{ name: chat, type: slack, url: '{}' }}\n",
        slack.url("/services/T000/B000/XXXX")
    ));
    let n = Running::start(list, None, fast());
    for flow in ["a", "b", "c"] {
        n.send(event(flow, AlertStatus::Firing, 1)).await;
    }
    let hits = slack.wait_for(3, "three slack messages").await;
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(950), "gap {gap:?}");
    }
    let msg = hits[0].json();
    assert_eq!(
        msg["text"],
        "[FIRING] FlowErrorRate a: error rate 8.6% &gt; 2% over 5m (412 requests)"
    );
    assert_eq!(msg["blocks"][0]["type"], "header");
    assert_eq!(
        msg["blocks"][0]["text"]["text"],
        "🔥 FIRING: FlowErrorRate (a)"
    );
    assert_eq!(msg["blocks"][2]["fields"][0]["text"], "*Severity*\npage");
    assert!(hits[0].headers.get("webhook-signature").is_none());
    n.wait_count("chat", "delivered", 3).await;
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_with_one_dedup_key() {
    let pd = Recorder::start(vec![(202, None), (202, None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pd-key");
    std::fs::write(&key, "R0UT1NGKEY0123456789\n").unwrap();
    let list = receivers(&format!(
        "    - {{ name: oncall, type: pagerduty, url: '{}', routing_key_file: '{}' }}\n",
        pd.url("/v2/enqueue"),
        key.display()
    ));
    let n = Running::start(list, None, fast());
    let firing = event("checkout", AlertStatus::Firing, 1);
    n.send(firing.clone()).await;
    pd.wait_for(1, "trigger").await;
    n.send(event("checkout", AlertStatus::Resolved, 2)).await;
    let hits = pd.wait_for(2, "resolve").await;
    let (trigger, resolve) = (hits[0].json(), hits[1].json());
    assert_eq!(hits[0].path, "/v2/enqueue");
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY0123456789");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], firing.fingerprint.as_str());
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "shop-prototype");
    assert_eq!(trigger["payload"]["component"], "checkout");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    n.wait_count("oncall", "delivered", 2).await;
}

#[tokio::test]
async fn notifications_are_given_up_after_the_horizon() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: 'http://127.0.0.1:{port}/' }}\n"
    ));
    let timing = Timing {
        give_up_after: Duration::from_millis(600),
        ..fast()
    };
    let n = Running::start(list, None, timing);
    n.send(event("a", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "failed", 1).await;
    assert!(n.count("ops", "retried") >= 1, "retried before giving up");
    assert_eq!(n.count("ops", "delivered"), 0);
}

/// A receiver may answer any `Retry-After`; one past what a clock can hold means "give up",
/// not a panic that would end the receiver's delivery worker for good.
#[tokio::test]
async fn an_absurd_retry_after_gives_up_and_the_receiver_keeps_working() {
    let hook = Recorder::start(vec![(503, Some("18446744073709551615"))]).await;
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: '{}' }}\n",
        hook.url("/hook")
    ));
    let n = Running::start(list, None, fast());
    n.send(event("checkout", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "failed", 1).await;
    n.send(event("search", AlertStatus::Firing, 1)).await;
    n.wait_count("ops", "delivered", 1).await;
    assert_eq!(hook.hits().len(), 2);
}

#[tokio::test]
async fn alertmanager_push_repeats_retries_per_url_and_forgets_old_resolves() {
    let (good, flaky) = (
        Recorder::start(vec![]).await,
        Recorder::start(vec![(503, None), (503, None)]).await,
    );
    let list = receivers(&format!(
        "    - {{ name: am, type: alertmanager, urls: ['{}', '{}/'] }}\n",
        good.url(""),
        flaky.url("")
    ));
    let timing = Timing {
        am_resend: Duration::from_millis(300),
        am_resolved_for: Duration::from_millis(1500),
        ..fast()
    };
    let n = Running::start(list, None, timing);
    n.send(event("a", AlertStatus::Firing, 1)).await;
    // Re-pushed on a timer, not only on change.
    let pushes = good.wait_for(3, "periodic re-push").await;
    assert!(pushes.iter().all(|h| h.json()[0]["labels"]["flow"] == "a"));
    // The flaky URL failed twice, was retried, then got the set too.
    let flaky_hits = flaky.wait_for(3, "flaky url recovers").await;
    assert!(flaky_hits.iter().all(|h| h.path == "/api/v2/alerts"));
    n.wait_count("am", "retried", 2).await;

    n.send(event("a", AlertStatus::Resolved, 2)).await;
    let resolved_push = |hits: Vec<Hit>| {
        hits.into_iter()
            .map(|h| h.json())
            .find(|v| parse_time(&v[0]["endsAt"]) <= SystemTime::now())
    };
    let resolved = eventually(Duration::from_secs(10), "resolved push", || async {
        resolved_push(good.hits())
    })
    .await;
    let count = good.hits().len();
    eventually(Duration::from_secs(10), "resolve re-sent", || async {
        let again = good.hits()[count..].iter().any(|h| h.json() == resolved);
        again.then_some(())
    })
    .await;
    // After `am_resolved_for`, the resolved alert is dropped from the pushed set.
    n.send(event("b", AlertStatus::Firing, 1)).await;
    eventually(Duration::from_secs(10), "only b is pushed", || async {
        let last = good.hits().last().map(Hit::json)?;
        let flows: Vec<&str> = last
            .as_array()?
            .iter()
            .filter_map(|a| a["labels"]["flow"].as_str())
            .collect();
        (flows == ["b"]).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------- real Alertmanager

/// Alertmanager's view of one alert, by fingerprint.
async fn am_alert(am: &support::Alertmanager, fingerprint: &str) -> Option<Value> {
    am.alerts()
        .await
        .into_iter()
        .find(|a| a["fingerprint"] == fingerprint)
}

fn parse_time(v: &Value) -> SystemTime {
    let text = v.as_str().unwrap_or_default();
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[tokio::test]
async fn a_real_alertmanager_sees_the_alert_fire_and_resolve() {
    let am = support::Alertmanager::start().await;
    let copy = Recorder::start(vec![]).await;
    let list = receivers(&format!(
        "    - {{ name: am, type: alertmanager, urls: ['{}', '{}'] }}\n",
        am.url,
        copy.url("")
    ));
    let n = Running::start(list, None, fast());
    let firing = event("checkout", AlertStatus::Firing, 1);
    n.send(firing.clone()).await;

    let seen = eventually(Duration::from_secs(20), "alert in alertmanager", || async {
        am_alert(&am, &firing.fingerprint).await
    })
    .await;
    // Alertmanager computed the same fingerprint from the labels Redline sent.
    assert_eq!(seen["labels"]["alertname"], "FlowErrorRate");
    assert_eq!(seen["labels"]["flow"], "checkout");
    assert_eq!(seen["labels"]["owner"], "payments-team");
    assert_eq!(seen["labels"]["service"], "shop-prototype");
    assert_eq!(seen["labels"]["severity"], "page");
    assert_eq!(
        seen["annotations"]["runbook_url"],
        "https://wiki.example/runbooks/checkout"
    );
    assert_eq!(seen["status"]["state"], "active");
    assert_eq!(seen["generatorURL"], "http://127.0.0.1:9901/api/alerts");
    let ends = parse_time(&seen["endsAt"]);
    assert!(
        ends > SystemTime::now() + Duration::from_secs(120),
        "endsAt a few minutes ahead"
    );

    let resolved = event("checkout", AlertStatus::Resolved, 2);
    n.send(resolved).await;
    eventually(
        Duration::from_secs(20),
        "alert resolved in alertmanager",
        || async {
            match am_alert(&am, &firing.fingerprint).await {
                None => Some(()),
                Some(a) => (parse_time(&a["endsAt"]) <= SystemTime::now()).then_some(()),
            }
        },
    )
    .await;
    // Every URL got every push: the second one is a plain recorder.
    let pushes = copy.wait_for(2, "both pushes on the second url").await;
    assert!(pushes.iter().all(|h| h.path == "/api/v2/alerts"));
    let last = pushes.last().unwrap().json();
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert!(parse_time(&last[0]["endsAt"]) <= SystemTime::now());
    n.wait_count("am", "delivered", 4).await;
}

// ---------------------------------------------------------------- durability

/// The ids saved in a receiver's outbox file.
fn saved_ids(data_dir: &Path, receiver: &str) -> Vec<String> {
    let path = data_dir.join("outbox").join(format!("{receiver}.json"));
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Kill-9 equivalent: the first runtime is torn down mid-retry, with no flush.
#[test]
fn undelivered_notifications_survive_a_hard_stop_and_keep_their_ids() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = receivers(&format!(
        "    - {{ name: ops, type: webhook, url: 'http://127.0.0.1:{port}/hook', secret_file: '{}' }}\n",
        secret_file(data.path()).display()
    ));

    // 1. Receiver down: both notifications fail and wait for a retry; then the process "dies".
    let first = runtime();
    let ids = first.block_on(async {
        let n = Running::start(list.clone(), Some(data.path().to_path_buf()), fast());
        n.send(event("a", AlertStatus::Firing, 1)).await;
        n.send(event("b", AlertStatus::Firing, 1)).await;
        n.wait_count("ops", "retried", 2).await;
        let ids = eventually(Duration::from_secs(10), "two saved", || async {
            let ids = saved_ids(data.path(), "ops");
            (ids.len() == 2).then_some(ids)
        })
        .await;
        std::mem::forget(n.notifier); // no shutdown, no flush
        ids
    });
    first.shutdown_background();

    // 2. Receiver up on the same port, Redline restarted on the same data_dir.
    let second = runtime();
    let hits = second.block_on(async {
        let listener = eventually(Duration::from_secs(10), "port free again", || async {
            TcpListener::bind(("127.0.0.1", port)).await.ok()
        })
        .await;
        let hook = Recorder::on(listener, vec![]);
        let n = Running::start(list.clone(), Some(data.path().to_path_buf()), fast());
        n.wait_count("ops", "delivered", 2).await;
        eventually(Duration::from_secs(10), "outbox emptied", || async {
            saved_ids(data.path(), "ops").is_empty().then_some(())
        })
        .await;
        n.notifier.shutdown(Duration::from_secs(5)).await;
        hook.hits()
    });
    second.shutdown_background();
    let mut got: Vec<String> = hits.iter().map(|h| h.header("webhook-id")).collect();
    let mut want = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "exactly one delivery per event, with the saved ids"
    );
    for hit in &hits {
        verify_signature(hit, SECRET);
    }

    // 3. Another restart re-sends nothing: only a new event arrives.
    let third = runtime();
    let later = third.block_on(async {
        let hook = Recorder::start(vec![]).await;
        let list = receivers(&format!(
            "    - {{ name: ops, type: webhook, url: '{}' }}\n",
            hook.url("/hook")
        ));
        let n = Running::start(list, Some(data.path().to_path_buf()), fast());
        n.send(event("c", AlertStatus::Firing, 1)).await;
        n.wait_count("ops", "delivered", 1).await;
        hook.hits()
    });
    third.shutdown_background();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].json()["groupLabels"]["flow"], "c");
}

// ---------------------------------------------------------------- the binary, end to end

/// Keep sending `path` through the proxy until the returned flag is cleared.
fn traffic(proxy_url: String) -> Arc<std::sync::atomic::AtomicBool> {
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = running.clone();
    tokio::spawn(async move {
        while flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = support::get(&proxy_url).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    running
}

#[tokio::test]
async fn failing_upstream_pages_the_webhook_then_resolves() {
    let app = support::app().await;
    let hook = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let yaml = support::config_for(
        app,
        &format!(
            "flows:
  - name: checkout
    match: \"GET /status/{{code}}\"
    owner: payments-team
    alerts:
      - {{ when: \"error_rate > 2%\", over: 10s, for: 0s, min_requests: 5, keep_firing_for: 1s, severity: page }}
alerting:
  eval_interval: 1s
  receivers:
    - {{ name: ops, type: webhook, url: '{}', secret_file: '{}' }}
    - {{ name: demo, type: console }}
",
            hook.url("/hook?token=hooksecret-url-1"),
            secret.display()
        ),
    );
    let redline = support::Redline::start(&yaml);

    // Secret-bearing requests: none of it may reach a notification.
    let failing = traffic(redline.url("/status/500?api_key=qsecret-hook-2"));
    let firing = hook.wait_for(1, "firing webhook from the engine").await;
    failing.store(false, std::sync::atomic::Ordering::Relaxed);
    let healthy = traffic(redline.url("/status/200"));
    let hits = eventually(Duration::from_secs(60), "resolved webhook", || async {
        let hits = hook.hits();
        hits.iter()
            .any(|h| h.json()["status"] == "resolved")
            .then_some(hits)
    })
    .await;
    healthy.store(false, std::sync::atomic::Ordering::Relaxed);

    for hit in &hits {
        let body = String::from_utf8_lossy(&hit.body);
        for secret in ["hooksecret-url-1", "qsecret-hook-2", SECRET] {
            assert!(!body.contains(secret), "{secret} in a webhook body: {body}");
        }
    }
    let first = firing[0].json();
    verify_signature(&firing[0], SECRET);
    assert_eq!(first["version"], "4");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["receiver"], "ops");
    assert_eq!(first["externalURL"], format!("http://{}", redline.admin));
    let alert = &first["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "FlowErrorRate");
    assert_eq!(alert["labels"]["flow"], "checkout");
    assert_eq!(alert["labels"]["owner"], "payments-team");
    assert_eq!(alert["labels"]["severity"], "page");
    assert!(alert["labels"]["service"].is_string());
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("checkout: error rate"), "{summary}");
    let fingerprint = alert["fingerprint"].as_str().unwrap_or_default();
    assert_eq!(fingerprint.len(), 16);
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");

    let resolved = hits
        .iter()
        .find(|h| h.json()["status"] == "resolved")
        .unwrap();
    verify_signature(resolved, SECRET);
    let body = resolved.json();
    assert_eq!(body["alerts"][0]["fingerprint"], fingerprint);
    assert_ne!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(
        resolved.header("webhook-id"),
        firing[0].header("webhook-id")
    );

    let line = eventually(Duration::from_secs(5), "console line", || async {
        redline
            .stdout
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("[redline] FIRING FlowErrorRate checkout: error rate"))
            .cloned()
    })
    .await;
    assert!(line.contains("requests"), "{line}");
    let delivered = eventually(Duration::from_secs(5), "delivered metric", || async {
        let scrape = redline.metrics().await;
        support::sample(
            &scrape,
            "redline_notifications_total{receiver=\"ops\",result=\"delivered\"}",
        )
        .filter(|v| *v >= 2.0)
    })
    .await;
    assert!(delivered >= 2.0);
}

#[tokio::test]
async fn a_page_queued_before_kill_9_is_delivered_once_after_restart() {
    let app = support::app().await;
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = support::config_for(
        app,
        &format!(
            "data_dir: '{}'
flows:
  - name: checkout
    match: \"GET /status/{{code}}\"
    alerts:
      - {{ when: \"error_rate > 2%\", over: 10s, for: 0s, min_requests: 5, keep_firing_for: 1s }}
alerting:
  eval_interval: 1s
  receivers:
    - {{ name: ops, type: webhook, url: 'http://127.0.0.1:{port}/hook' }}
",
            data.path().display()
        ),
    );

    // Receiver down: the firing page waits in the outbox; then Redline is SIGKILLed.
    let mut first = support::Redline::start(&yaml);
    let failing = traffic(first.url("/status/500"));
    let saved = eventually(
        Duration::from_secs(30),
        "page saved in the outbox",
        || async {
            let ids = saved_ids(data.path(), "ops");
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        let scrape = first.metrics().await;
        support::sample(
            &scrape,
            "redline_notifications_total{receiver=\"ops\",result=\"retried\"}",
        )
        .filter(|v| *v >= 1.0)
    })
    .await;
    failing.store(false, std::sync::atomic::Ordering::Relaxed);
    first.child.kill().unwrap(); // SIGKILL: no flush, no graceful anything
    first.child.wait().unwrap();
    assert_eq!(saved.len(), 1, "one page queued: {saved:?}");

    // Receiver up on the same port; restart on the same data_dir.
    let listener = eventually(Duration::from_secs(10), "port free again", || async {
        TcpListener::bind(("127.0.0.1", port)).await.ok()
    })
    .await;
    let hook = Recorder::on(listener, vec![]);
    let second = support::Redline::start(&yaml);
    let firing = hook.wait_for(1, "the saved page").await;
    assert_eq!(
        firing[0].header("webhook-id"),
        saved[0],
        "same webhook-id after restart"
    );
    assert_eq!(firing[0].json()["status"], "firing");

    // Recovery still produces its resolve: nothing lost, nothing paged twice.
    let healthy = traffic(second.url("/status/200"));
    let hits = eventually(
        Duration::from_secs(60),
        "resolved after restart",
        || async {
            let hits = hook.hits();
            hits.iter()
                .any(|h| h.json()["status"] == "resolved")
                .then_some(hits)
        },
    )
    .await;
    healthy.store(false, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<String> = hits
        .iter()
        .map(|h| h.json()["status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
}

/// The Alertmanager set is durable too: a restart keeps pushing a resolve it had not finished re-sending.
#[test]
fn the_alertmanager_set_survives_a_hard_stop() {
    let data = tempfile::tempdir().unwrap();
    let first = runtime();
    let (am_url, before) = first.block_on(async {
        let am = Recorder::start(vec![]).await;
        let list = receivers(&format!(
            "    - {{ name: am, type: alertmanager, url: '{}' }}\n",
            am.url("")
        ));
        let n = Running::start(list, Some(data.path().to_path_buf()), fast());
        n.send(event("a", AlertStatus::Firing, 1)).await;
        n.send(event("a", AlertStatus::Resolved, 2)).await;
        let hits = eventually(Duration::from_secs(10), "resolve pushed", || async {
            let hits = am.hits();
            let last = hits.last()?.json();
            (parse_time(&last[0]["endsAt"]) <= SystemTime::now()).then_some(hits)
        })
        .await;
        // The push may overtake the save of the same change: stop hard only once it is on disk.
        let file = data.path().join("alertmanager").join("am.json");
        eventually(Duration::from_secs(10), "resolve saved", || async {
            let saved = std::fs::read_to_string(&file).ok()?;
            saved.contains(r#""status":"resolved""#).then_some(())
        })
        .await;
        std::mem::forget(n.notifier);
        (am.url(""), hits.last().unwrap().json())
    });
    first.shutdown_background();

    let second = runtime();
    second.block_on(async {
        let am = Recorder::start(vec![]).await;
        assert_ne!(am.url(""), am_url);
        let list = receivers(&format!(
            "    - {{ name: am, type: alertmanager, url: '{}' }}\n",
            am.url("")
        ));
        let _n = Running::start(list, Some(data.path().to_path_buf()), fast());
        let hits = am
            .wait_for(1, "restored set pushed without any new event")
            .await;
        assert_eq!(
            hits[0].json(),
            before,
            "the same resolved alert, same endsAt"
        );
    });
    second.shutdown_background();
}
