//! Static load shedding: past a flow's `max_concurrent_requests`, or the overall
//! `limits.max_concurrent_requests`, a request is refused with 503 `overloaded` and
//! `Retry-After` before anything goes upstream, in both engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::support::{Redline, config_for, eventually, full, get, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_a_flow_cap_or_the_overall_cap_get_503_overloaded_in_both_engines() {
    // Counts the requests that reached it; /slow answers after a while.
    let arrived = Arc::new(AtomicUsize::new(0));
    let seen = arrived.clone();
    let up = serve(move |req| {
        seen.fetch_add(1, SeqCst);
        async move {
            if req.uri().path().starts_with("/slow") {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            http::Response::new(full("ok"))
        }
    })
    .await;
    let flow =
        "flows:\n  - name: slow\n    match: \"GET /slow/{x...}\"\n    max_concurrent_requests: 1\n";
    let overall = "limits:\n  max_concurrent_requests: 1\n";
    let cases = [
        // (config, engine, the second request, refused by)
        (flow, false, "/slow/b", "slow"),
        (flow, true, "/slow/b", "slow"),
        (overall, false, "/other", "unmatched"),
        (overall, true, "/other", "unmatched"),
    ];
    for (extra, hyper, second, refused_flow) in cases {
        let env: &[(&str, &str)] = if hyper {
            &[("REDLINE_HTTP1_ENGINE", "hyper")]
        } else {
            &[]
        };
        let rl = Redline::start_with(&config_for(up, extra), &[], env);
        let before = arrived.load(SeqCst);
        let slow_url = rl.url("/slow/a");
        let slow = tokio::spawn(async move { get(&slow_url).await });
        eventually(Duration::from_secs(5), "the slow request upstream", || {
            let reached = arrived.load(SeqCst) > before;
            async move { reached.then_some(()) }
        })
        .await;
        let case = format!("{extra:?} hyper={hyper}");
        let (status, headers, body) = get(&rl.url(second)).await;
        assert_eq!(status, 503, "{case}: {body}");
        assert_eq!(headers["retry-after"], "1", "{case}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "overloaded", "{case}: {body}");
        assert_eq!(json["flow"], refused_flow, "{case}: {body}");
        assert_eq!(
            arrived.load(SeqCst),
            before + 1,
            "{case}: nothing went upstream"
        );
        if extra == flow {
            // Another flow is not capped by this one's limit.
            assert_eq!(get(&rl.url("/other")).await.0, 200, "{case}");
        }
        assert_eq!(slow.await.unwrap().0, 200, "{case}");
        // Its place is given back: the flow takes a request again.
        assert_eq!(get(&rl.url("/slow/c")).await.0, 200, "{case}");
    }
}
