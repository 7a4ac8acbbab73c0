//! Fault injection through the admin API, in both engines: token-protected, audited and
//! always expiring; an injected abort travels the real path — the flow's metrics count it,
//! its circuit breaker opens, its fallback answers — and the app is back once it expires.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Redline, config_for, eventually, full, get, send, serve};

const TOKEN: &str = "rehearse-token";

async fn admin(rl: &Redline, method: &str, path: &str, body: &str) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(rl.admin_url(path))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (status, _, body) = send(req).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_abort_is_measured_opens_the_breaker_gets_the_fallback_and_expires() {
    let up = serve(|_req| async { http::Response::new(full("ok")) }).await;
    let yaml = "flows:\n  - name: api\n    match: /api/{x...}\n    circuit_breaker: { consecutive_failures: 3, error_rate: 0%, open_for: 1s, max_open_for: 1s }\n    fallback:\n      static: { status: 503, retry_after: 5s }\n";
    for hyper in [false, true] {
        let mut env = vec![("REDLINE_ADMIN_TOKEN", TOKEN)];
        if hyper {
            env.push(("REDLINE_HTTP1_ENGINE", "hyper"));
        }
        let rl = Redline::start_with(&config_for(up, yaml), &[], &env);
        let case = format!("hyper={hyper}");
        assert_eq!(get(&rl.url("/api/a")).await.0, 200, "{case}");
        let fault = r#"{"flow":"api","abort":503,"percent":100,"expires_in":"2s"}"#;
        // Token-protected like every mutation.
        let anonymous = Request::post(rl.admin_url("/api/faults"))
            .body(Full::new(Bytes::from(fault)))
            .unwrap();
        assert_eq!(send(anonymous).await.0, 401, "{case}");
        // Always with an expiry.
        let forever = r#"{"flow":"api","abort":503}"#;
        assert_eq!(
            admin(&rl, "POST", "/api/faults", forever).await.0,
            400,
            "{case}"
        );
        let (status, body) = admin(&rl, "POST", "/api/faults", fault).await;
        assert_eq!(status, 201, "{case}: {body}");
        let listed = rl.json("/api/faults").await;
        assert_eq!(listed["faults"][0]["abort"], 503, "{case}: {listed}");
        // The fallback answers the injected failure, which the flow still counts.
        let (status, headers, _) = get(&rl.url("/api/a")).await;
        assert_eq!(status, 503, "{case}");
        assert_eq!(headers["x-redline-fallback"], "static", "{case}");
        for _ in 0..3 {
            get(&rl.url("/api/a")).await;
        }
        let m = rl.metrics_counting(5.0).await;
        assert!(
            m.lines().any(|l| l
                .starts_with("http_server_request_duration_seconds_count{flow=\"api\"")
                && l.contains("error_type=\"503\"")),
            "{case}: {m}"
        );
        eventually(Duration::from_secs(5), "the circuit open", || async {
            let flows = rl.json("/api/flows").await;
            (flows["flows"][0]["circuit"] == "open").then_some(())
        })
        .await;
        // Expired: gone from the list, and once the breaker's probe passes, the app answers.
        eventually(Duration::from_secs(10), "the app again", || async {
            let empty = rl.json("/api/faults").await["faults"]
                .as_array()
                .is_some_and(|a| a.is_empty());
            let (status, _, body) = get(&rl.url("/api/a")).await;
            (empty && status == 200 && body == "ok").then_some(())
        })
        .await;
        // A fault can also be ended early.
        let (_, body) = admin(
            &rl,
            "POST",
            "/api/faults",
            r#"{"flow":"api","delay":"10ms","expires_in":"1h"}"#,
        )
        .await;
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            admin(&rl, "DELETE", &format!("/api/faults/{id}"), "")
                .await
                .0,
            200
        );
        assert_eq!(
            admin(&rl, "DELETE", &format!("/api/faults/{id}"), "")
                .await
                .0,
            404
        );
        // Both changes are in the audit trail, each with the client that made it.
        for event in ["fault_injected", "fault_removed"] {
            let fields = [format!(r#""event":"{event}""#), format!(r#""id":"{id}""#)];
            let line = eventually(Duration::from_secs(5), event, || async {
                let lines = rl.stderr.lock().unwrap();
                let found = lines.iter().find(|l| fields.iter().all(|f| l.contains(f)));
                found.cloned()
            })
            .await;
            assert!(line.contains(r#""client":"127.0.0.1:"#), "{case}: {line}");
        }
    }
}
