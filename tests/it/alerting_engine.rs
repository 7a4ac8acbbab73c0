//! The alert engine end to end: a real upstream failing, the real binary alerting, silences over the admin API, restart durability.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::support::*;

const RULES: &str = r#"
service: shop
flows:
  - name: checkout
    match: "/status/{code}"
    owner: payments
    runbook: https://wiki.example/checkout
    alerts:
      - when: "error_rate > 10%"
        over: 1m
        for: 1s
        min_requests: 5
        keep_firing_for: 1s
alerting:
  eval_interval: 1s
"#;

const GAUGE: &str =
    r#"redline_alert_state{flow="checkout",alertname="FlowErrorRate",severity="warning"}"#;

async fn hit(rl: &Redline, status: u16, n: usize) {
    for _ in 0..n {
        let (got, _, _) = get(&rl.url(&format!("/status/{status}"))).await;
        assert_eq!(got, status);
    }
}

/// The first alert of `/api/alerts` once it is in `state`.
async fn alert_in(rl: &Redline, state: &str) -> Value {
    eventually(Duration::from_secs(15), state, || async {
        let v = rl.json("/api/alerts").await;
        v["alerts"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .filter(|a| a["state"] == state)
    })
    .await
}

async fn no_alerts(rl: &Redline) {
    eventually(Duration::from_secs(15), "no active alerts", || async {
        let v = rl.json("/api/alerts").await;
        v["alerts"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    })
    .await;
}

/// Log lines of queued notifications, as JSON.
fn notifications(rl: &Redline) -> Vec<Value> {
    rl.stderr
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "Alert notification queued.")
        .collect()
}

async fn notification(rl: &Redline, status: &str) -> Value {
    eventually(Duration::from_secs(15), status, || async {
        notifications(rl)
            .into_iter()
            .find(|v| v["alert_status"] == status)
    })
    .await
}

fn json_request(
    method: http::Method,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

const SILENCE: &str =
    r#"{"flow":"checkout","alertname":"FlowErrorRate","duration":"1h","comment":"deploying"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_alert_goes_pending_then_firing_is_silenced_and_resolves() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, RULES));
    hit(&rl, 500, 10).await;

    let pending = alert_in(&rl, "pending").await;
    assert_eq!(pending["labels"]["alertname"], "FlowErrorRate");
    assert_eq!(pending["starts_at"], Value::Null);
    let firing = alert_in(&rl, "firing").await;
    assert_eq!(firing["labels"]["flow"], "checkout");
    assert_eq!(firing["labels"]["owner"], "payments");
    assert_eq!(firing["labels"]["service"], "shop");
    assert_eq!(firing["labels"]["severity"], "warning");
    assert_eq!(
        firing["annotations"]["summary"],
        "checkout: error rate 100% > 10% over 1m (10 requests)"
    );
    assert_eq!(
        firing["annotations"]["runbook_url"],
        "https://wiki.example/checkout"
    );
    assert_eq!(
        firing["annotations"]["dashboard_url"],
        format!("http://{}/#flow=checkout", rl.admin)
    );
    assert_eq!(firing["value"], 1.0);
    assert_eq!(firing["silenced"], false);
    let fingerprint = firing["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fingerprint.len(), 16);
    assert!(firing["starts_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sample(&rl.metrics().await, GAUGE), Some(2.0));
    let flows = rl.json("/api/flows").await;
    assert_eq!(flows["flows"][0]["alerts"][0]["state"], "firing");
    assert_eq!(flows["flows"][0]["alerts"][0]["alertname"], "FlowErrorRate");
    let fired = notification(&rl, "firing").await;
    assert_eq!(fired["fingerprint"], fingerprint.as_str());

    // Silence it (loopback admin, no token configured: allowed).
    let (status, _, body) = send(json_request(
        http::Method::POST,
        &rl.admin_url("/api/silences"),
        None,
        SILENCE,
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let silence: Value = serde_json::from_str(&body).unwrap();
    let id = silence["id"].as_str().unwrap().to_string();
    assert_eq!(silence["comment"], "deploying");
    assert!(silence["ends_at"].as_str().unwrap().ends_with('Z'));
    let listed = rl.json("/api/silences").await;
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["flow"], "checkout");
    let silenced = alert_in(&rl, "firing").await;
    assert_eq!(silenced["silenced"], true);
    assert_eq!(silenced["silenced_by"][0], id.as_str());

    // Bad silences are 400 with a reason.
    for bad in [
        r#"{"flow":"checkout","duration":"1h","colour":"red"}"#,
        r#"{"duration":"1h"}"#,
        r#"{"flow":"checkout","duration":"soon"}"#,
        "not json",
    ] {
        let req = json_request(
            http::Method::POST,
            &rl.admin_url("/api/silences"),
            None,
            bad,
        );
        let (status, _, body) = send(req).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("error"), "{body}");
    }

    let del = |id: &str| {
        json_request(
            http::Method::DELETE,
            &rl.admin_url(&format!("/api/silences/{id}")),
            None,
            "",
        )
    };
    assert_eq!(send(del(&id)).await.0, 204);
    assert_eq!(send(del(&id)).await.0, 404);
    let listed = rl.json("/api/silences").await;
    assert_eq!(listed["silences"].as_array().map(Vec::len), Some(0));

    // Traffic recovers: 10 errors in 210 requests is under 10 %; Ok held 1 s resolves.
    hit(&rl, 200, 200).await;
    no_alerts(&rl).await;
    assert_eq!(sample(&rl.metrics().await, GAUGE), Some(0.0));
    let resolved = notification(&rl, "resolved").await;
    assert_eq!(resolved["reason"], "recovered");
    assert_eq!(resolved["requests_affected"], "10");
    assert_eq!(resolved["fingerprint"], fingerprint.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_changes_need_the_admin_token() {
    let up = app().await;
    let rl = Redline::start_with(
        &config_for(up, RULES),
        &[],
        &[("REDLINE_ADMIN_TOKEN", "s3cret")],
    );
    let url = rl.admin_url("/api/silences");
    let post = |token: Option<&str>| json_request(http::Method::POST, &url, token, SILENCE);
    assert_eq!(send(post(None)).await.0, 401);
    assert_eq!(send(post(Some("wrong"))).await.0, 403);
    let (status, _, body) = send(post(Some("s3cret"))).await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Reads stay open.
    assert_eq!(
        rl.json("/api/silences").await["silences"][0]["id"],
        id.as_str()
    );
    let del_url = rl.admin_url(&format!("/api/silences/{id}"));
    let del = |token: Option<&str>| json_request(http::Method::DELETE, &del_url, token, "");
    assert_eq!(send(del(None)).await.0, 401);
    assert_eq!(send(del(Some("wrong"))).await.0, 403);
    assert_eq!(send(del(Some("s3cret"))).await.0, 204);
    assert_eq!(send(del(Some("s3cret"))).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_survives_kill_9_with_its_start_time_and_resolves_once() {
    let up = app().await;
    let data = tempfile::tempdir().unwrap();
    let yaml = config_for(up, &format!("{RULES}data_dir: {}\n", data.path().display()));
    let mut rl = Redline::start(&yaml);
    hit(&rl, 500, 10).await;
    let firing = alert_in(&rl, "firing").await;
    let starts_at = firing["starts_at"].clone();
    notification(&rl, "firing").await;
    let state_file = data.path().join("alert-state.json");
    eventually(Duration::from_secs(10), "state written", || async {
        let text = std::fs::read_to_string(&state_file).unwrap_or_default();
        text.contains(r#""phase":"firing""#).then_some(())
    })
    .await;

    rl.child.kill().unwrap();
    rl.child.wait().unwrap();
    drop(rl);

    let rl = Redline::start(&yaml);
    let restored = alert_in(&rl, "firing").await;
    assert_eq!(restored["starts_at"], starts_at);
    assert_eq!(restored["fingerprint"], firing["fingerprint"]);
    assert_eq!(sample(&rl.metrics().await, GAUGE), Some(2.0));
    // Recovery after the restart resolves the original episode; it is never paged again.
    hit(&rl, 200, 20).await;
    no_alerts(&rl).await;
    let resolved = notification(&rl, "resolved").await;
    assert_eq!(resolved["fingerprint"], firing["fingerprint"]);
    assert!(
        notifications(&rl)
            .iter()
            .all(|n| n["alert_status"] != "firing"),
        "no second page after the restart"
    );
}
