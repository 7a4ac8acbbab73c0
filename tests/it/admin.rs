//! Flows, route templates and the admin API: `/metrics` names and labels, `/api/flows`, `/api/routes`, `/api/config`, health.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::*;

const CONFIG: &str = r#"
flows:
  - name: checkout
    match: ["POST /api/checkout", "GET /api/orders/{id}"]
    owner: payments
    alerts:
      - when: "p95 > 800ms"
  - name: assets
    match: "GET /static/{path...}"
  - name: orders-list
    match: "GET /api/orders/latest"
routes:
  max_templates: 3
alerting:
  receivers:
    - { name: ops, type: webhook, url: "http://hooks.example/x?token=hook-secret" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_match_by_specificity_and_metrics_use_route_templates() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, CONFIG));
    for _ in 0..3 {
        assert_eq!(get(&rl.url("/api/orders/17")).await.0, 200);
    }
    assert_eq!(get(&rl.url("/api/orders/latest")).await.0, 200);
    assert_eq!(get(&rl.url("/static/css/site.css")).await.0, 200);
    assert_eq!(
        send(
            Request::post(rl.url("/api/checkout"))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap()
        )
        .await
        .0,
        200
    );
    assert_eq!(get(&rl.url("/status/503")).await.0, 503);
    for path in [
        "/users/123",
        "/users/456",
        "/users/5f0c7e1c-3b7d-4bb8-9d1e-1f6a2b3c4d5e/avatar",
        "/a",
        "/b",
        "/c",
    ] {
        get(&rl.url(path)).await;
    }
    let m = rl.metrics_counting(13.0).await;
    let count = |labels: &str| {
        sample(
            &m,
            &format!("http_server_request_duration_seconds_count{{{labels}}}"),
        )
    };
    assert_eq!(
        count(
            r#"flow="checkout",http_request_method="GET",http_route="/api/orders/{id}",http_response_status_code="200",error_type="""#
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        count(
            r#"flow="orders-list",http_request_method="GET",http_route="/api/orders/latest",http_response_status_code="200",error_type="""#
        ),
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"flow="assets",http_request_method="GET",http_route="/static/{path...}",http_response_status_code="200",error_type="""#
        ),
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"flow="checkout",http_request_method="POST",http_route="/api/checkout",http_response_status_code="200",error_type="""#
        ),
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"flow="unmatched",http_request_method="GET",http_route="/status/{id}",http_response_status_code="503",error_type="503""#
        ),
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"flow="unmatched",http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",error_type="""#
        ),
        Some(2.0)
    );
    // max_templates: 3 → /status/{id}, /users/{id}, /users/{id}/avatar; the rest fold into /{other}.
    assert_eq!(
        count(
            r#"flow="unmatched",http_request_method="GET",http_route="/{other}",http_response_status_code="200",error_type="""#
        ),
        Some(3.0),
        "{m}"
    );
    assert!(!m.contains("/users/123"), "raw paths never become labels");
    assert!(m.contains("# TYPE http_server_request_duration_seconds histogram"));
    assert!(
        m.contains(r#"le="0.8""#),
        "alert thresholds join the bucket boundaries"
    );
    assert!(m.contains(r#"le="0.005""#) && m.contains(r#"le="10""#));
    assert!(m.contains("# TYPE http_server_active_requests gauge"));
    assert!(
        m.contains(r#"http_server_active_requests{flow="checkout",http_request_method="GET"} 0"#),
        "{m}"
    );
    assert!(m.contains(&format!(
        "redline_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    let routes = rl.json("/api/routes").await;
    let t = routes["templates"].as_array().unwrap();
    assert_eq!(t.len(), 4, "{routes}");
    let users = t.iter().find(|r| r["route"] == "/users/{id}").unwrap();
    assert_eq!(users["count"], 2);
    assert_eq!(users["examples"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_flows_reports_windows_and_active_requests() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, CONFIG));
    for i in 0..20 {
        let path = if i % 4 == 0 {
            "/api/orders/1?sleep_ms=100"
        } else {
            "/api/orders/1"
        };
        get(&rl.url(path)).await;
    }
    let slow = tokio::spawn({
        let url = rl.url("/api/orders/2?sleep_ms=1500");
        async move { get(&url).await }
    });
    let flows = eventually(Duration::from_secs(5), "active request visible", || async {
        let f = rl.json("/api/flows").await;
        (f["flows"][0]["active_requests"] == 1).then_some(f)
    })
    .await;
    let checkout = &flows["flows"][0];
    assert_eq!(checkout["name"], "checkout");
    assert_eq!(checkout["owner"], "payments");
    assert_eq!(checkout["patterns"][1], "GET /api/orders/{id}");
    let w = &checkout["windows"]["1m"];
    assert_eq!(w["requests"], 20);
    assert_eq!(w["error_rate"], 0.0);
    let p50 = w["p50_ms"].as_f64().unwrap();
    let p95 = w["p95_ms"].as_f64().unwrap();
    assert!(p50 < 50.0, "{w}");
    assert!(
        (100.0..130.0).contains(&p95),
        "p95 of 25% slow requests is ~100 ms: {w}"
    );
    assert!(w["rps"].as_f64().unwrap() > 0.0);
    assert_eq!(checkout["windows"]["5m"]["requests"], 20);
    assert_eq!(
        flows["flows"].as_array().unwrap().last().unwrap()["name"],
        "unmatched"
    );
    slow.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_config_redacted_and_not_found() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, CONFIG));
    assert_eq!(get(&rl.admin_url("/healthz")).await.0, 200);
    assert_eq!(get(&rl.admin_url("/readyz")).await.0, 200);
    let (status, _, body) = get(&rl.admin_url("/api/config")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("hook-secret"), "{body}");
    assert!(body.contains("checkout"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["last_reload_error"].is_null());
    assert_eq!(get(&rl.admin_url("/nope")).await.0, 404);
}
