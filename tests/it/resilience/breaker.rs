//! Circuit breaking per flow, in both engines: failures in a row open the flow's circuit,
//! which then refuses requests with 503 `circuit_open` without calling the app, shows on
//! `/metrics`, `/api/flows` and as the `FlowCircuitOpen` alert; after the backoff one probe
//! goes through, and the app's recovery closes the circuit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::support::{Redline, config_for, eventually, full, get, sample, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_open_the_circuit_a_probe_closes_it_in_both_engines() {
    let down = Arc::new(AtomicBool::new(true));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (is_down, seen) = (down.clone(), arrived.clone());
    let up = serve(move |_req| {
        seen.fetch_add(1, SeqCst);
        let failing = is_down.load(SeqCst);
        async move {
            let mut resp = http::Response::new(full(if failing { "down" } else { "ok" }));
            if failing {
                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            resp
        }
    })
    .await;
    let yaml = "alerting: { eval_interval: 1s }\nflows:\n  - name: api\n    match: /api/{x...}\n    circuit_breaker: { consecutive_failures: 3, error_rate: 0%, open_for: 1s, max_open_for: 2s }\n";
    for hyper in [false, true] {
        down.store(true, SeqCst);
        let env: &[(&str, &str)] = if hyper {
            &[("REDLINE_HTTP1_ENGINE", "hyper")]
        } else {
            &[]
        };
        let rl = Redline::start_with(&config_for(up, yaml), &[], env);
        let case = format!("hyper={hyper}");
        for _ in 0..3 {
            assert_eq!(get(&rl.url("/api/a")).await.0, 503, "{case}");
        }
        // A request is recorded as its response ends, a moment after the client has it.
        let (headers, body) = eventually(Duration::from_secs(5), "circuit_open", || async {
            let (status, headers, body) = get(&rl.url("/api/a")).await;
            (status == 503 && body.contains("circuit_open")).then_some((headers, body))
        })
        .await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "circuit_open", "{case}: {body}");
        let before = arrived.load(SeqCst);
        assert_eq!(get(&rl.url("/api/a")).await.0, 503, "{case}");
        assert!(headers.contains_key("retry-after"), "{case}");
        assert_eq!(
            arrived.load(SeqCst),
            before,
            "{case}: the app was not called"
        );
        let m = rl.metrics().await;
        assert_eq!(
            sample(&m, "redline_circuit_state{flow=\"api\"}"),
            Some(1.0),
            "{case}"
        );
        assert!(
            m.contains("error_type=\"circuit_open\""),
            "{case}: refused requests count as the flow's errors"
        );
        let flows = rl.json("/api/flows").await;
        assert_eq!(flows["flows"][0]["circuit"], "open", "{case}");
        eventually(
            Duration::from_secs(15),
            "FlowCircuitOpen firing",
            || async {
                let v = rl.json("/api/alerts").await;
                v["alerts"].as_array()?.iter().find(|a| {
                    a["labels"]["alertname"] == "FlowCircuitOpen" && a["state"] == "firing"
                })?;
                Some(())
            },
        )
        .await;
        // The app recovers: once the backoff passes, the probe succeeds and closes it.
        down.store(false, SeqCst);
        eventually(Duration::from_secs(10), "the circuit closed", || async {
            let (status, _, _) = get(&rl.url("/api/a")).await;
            let m = rl.metrics().await;
            let closed = sample(&m, "redline_circuit_state{flow=\"api\"}") == Some(0.0);
            (status == 200 && closed).then_some(())
        })
        .await;
        let flows = rl.json("/api/flows").await;
        assert_eq!(flows["flows"][0]["circuit"], "closed", "{case}");
    }
}
