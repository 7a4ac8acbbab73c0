//! Fallbacks, in both engines: a failed request (a 5xx, a timeout) is answered with the last good response to
//! the same target (`stale_if_error`) or the flow's static response, marked
//! `x-redline-fallback`, while the app's failure still counts for the flow; what a shared
//! cache must not keep (`Set-Cookie`, a request with `Authorization`) is never served stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Redline, config_for, full, get, sample, send, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_then_static_fallbacks_spare_users_while_the_failure_still_counts() {
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let up = serve(move |req| {
        let failing = is_down.load(SeqCst);
        async move {
            let path = req.uri().path().to_string();
            let mut resp = http::Response::new(full(format!("fresh {path}")));
            if path.contains("cookie") {
                resp.headers_mut()
                    .insert("set-cookie", http::HeaderValue::from_static("s=1"));
            }
            if failing && path.contains("slow") {
                // Past the flow's timeout: a 504 timeout, answered from the stale store.
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            } else if failing {
                *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
                *resp.body_mut() = full("down");
            }
            resp
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("sorry.json");
    std::fs::write(&body, "{\"sorry\":true}").unwrap();
    let yaml = format!(
        "flows:\n  - name: api\n    match: /api/{{x...}}\n    timeout: 300ms\n    fallback:\n      stale_if_error: {{ max_age: 1m }}\n      static: {{ status: 503, body_file: {}, retry_after: 30s }}\n",
        body.display()
    );
    for hyper in [false, true] {
        down.store(false, SeqCst);
        let env: &[(&str, &str)] = if hyper {
            &[("REDLINE_HTTP1_ENGINE", "hyper")]
        } else {
            &[]
        };
        let rl = Redline::start_with(&config_for(up, &yaml), &[], env);
        let case = format!("hyper={hyper}");
        for path in ["/api/a", "/api/cookie", "/api/secret", "/api/slow"] {
            let mut req = Request::get(rl.url(path));
            if path == "/api/secret" {
                req = req.header("authorization", "Bearer x");
            }
            let (status, _, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
            assert_eq!((status, body), (200, format!("fresh {path}")), "{case}");
        }
        // A response is kept as it ends: wait until /api/a's has been counted.
        rl.metrics_counting(4.0).await;
        down.store(true, SeqCst);
        let (status, headers, body) = get(&rl.url("/api/a")).await;
        assert_eq!((status, body.as_str()), (200, "fresh /api/a"), "{case}");
        assert_eq!(headers["x-redline-fallback"], "stale", "{case}");
        let (status, headers, body) = get(&rl.url("/api/slow")).await;
        assert_eq!((status, body.as_str()), (200, "fresh /api/slow"), "{case}");
        assert_eq!(
            headers["x-redline-fallback"], "stale",
            "{case}: a timeout too"
        );
        // Never kept: a Set-Cookie answer, an answer to a request with credentials, and a
        // target never seen: the static response.
        for path in ["/api/cookie", "/api/secret", "/api/never"] {
            let (status, headers, body) = get(&rl.url(path)).await;
            assert_eq!(
                (status, body.as_str()),
                (503, "{\"sorry\":true}"),
                "{case} {path}"
            );
            assert_eq!(headers["x-redline-fallback"], "static", "{case}");
            assert_eq!(headers["retry-after"], "30", "{case}");
        }
        let m = rl.metrics_counting(9.0).await;
        let fell = |kind: &str| {
            sample(
                &m,
                &format!("redline_fallbacks_total{{flow=\"api\",kind=\"{kind}\"}}"),
            )
        };
        assert_eq!(
            (fell("stale"), fell("static")),
            (Some(2.0), Some(3.0)),
            "{case}"
        );
        let timeouts: f64 = m
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{flow=\"api\""))
            .filter(|l| l.contains("error_type=\"timeout\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(timeouts, 1.0, "{case}: the timeout is still the flow's");
        // The app's 502s are still the flow's errors.
        let errors: f64 = m
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{flow=\"api\""))
            .filter(|l| l.contains("error_type=\"502\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(errors, 4.0, "{case}: {m}");
    }
}
