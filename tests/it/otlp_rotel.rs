//! The real `rotel` collector receives Redline's traces, metrics and logs over both transports, in cleartext and behind TLS, and prints them.
//!
//! rotel cannot terminate TLS itself: `rotel-agent start --help` (rotel 0.0.1a15 from pip,
//! whose binary reports `rotel 0.0.1-alpha10`) lists receiver options `--otlp-grpc-endpoint`,
//! `--otlp-http-endpoint`, `--otlp-grpc-max-recv-msg-size-mib`, `--otlp-receiver-*-disabled`
//! and `--otlp-receiver-*-http-path` only; every TLS option it has (`--otlp-exporter-*tls*`)
//! is for its own exporter. So the TLS tests put a TLS terminator in front of rotel, as one
//! would deploy it: the handshake (certificates made with `openssl`, mutual TLS for HTTP, a
//! private CA and ALPN `h2` for gRPC) happens in the test, the bytes after it go to rotel
//! unchanged, and rotel's debug output must show every record. Redline knows only the
//! terminator's `https://` address, so whatever rotel prints came over TLS.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::otlp::{Rotel, free_port, start_rotel};
use crate::otlp_tls::Pki;
use crate::support::*;

const FLOWS: &str = "flows:\n  - name: checkout\n    match: \"GET /api/orders/{id}\"\n";

/// rotel on two free ports (gRPC, HTTP), once both listen.
async fn rotel() -> (Rotel, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let rotel = start_rotel(grpc, http);
    for port in [grpc, http] {
        eventually(Duration::from_secs(15), "rotel listening", || async {
            TcpStream::connect(("127.0.0.1", port)).await.ok()
        })
        .await;
    }
    (rotel, grpc, http)
}

/// A TLS listener whose connections, once the handshake is done, are piped to `port`.
async fn tls_front(acceptor: tokio_rustls::TlsAcceptor, port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    front
}

/// Sends one request with this `x-request-id` through Redline (its exports set by `env`),
/// then waits for rotel to print its span, its access record and the duration metric.
async fn delivered(rotel: &Rotel, env: &[(&str, &str)], id: &str) {
    let up = app().await;
    let service = format!("service.name: Str({id})");
    let mut env = env.to_vec();
    env.extend([
        ("OTEL_SERVICE_NAME", id),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ]);
    let rl = Redline::start_with(&config_for(up, FLOWS), &[], &env);
    let req = http::Request::get(rl.url("/api/orders/7"))
        .header("x-request-id", id)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200);
    let request_id = format!("http.request.header.x-request-id: Slice(Str({id}))");
    let expected = [
        // The span, with its resource.
        "Kind           : SPAN_KIND_SERVER",
        "Name           : GET /api/orders/{id}",
        &request_id,
        &service,
        // The metrics.
        "-> Name: http.server.request.duration",
        "http.route: Str(/api/orders/{id})",
        // The access record.
        "GET /api/orders/7 200",
        "redline.duration_ms",
    ];
    rotel.wait_for_output(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_traces_and_logs_over_grpc_and_metrics_over_http() {
    let (rotel, grpc, http) = rotel().await;
    let grpc = format!("http://127.0.0.1:{grpc}");
    let metrics = format!("http://127.0.0.1:{http}/v1/metrics");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
    ];
    delivered(&rotel, &env, "rotel-grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_every_signal_as_otlp_json() {
    let (rotel, _, http) = rotel().await;
    let base = format!("http://127.0.0.1:{http}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    delivered(&rotel, &env, "rotel-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_behind_mutual_tls_receives_every_signal_over_https() {
    let pki = Pki::new();
    let (rotel, _, http) = rotel().await;
    let front = tls_front(pki.acceptor(true, b"http/1.1"), http).await;
    let base = format!("https://localhost:{front}");
    let (ca, cert, key) = (
        pki.env("ca.pem"),
        pki.env("client.pem"),
        pki.env("client.key"),
    );
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base.as_str()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
    ];
    delivered(&rotel, &env, "rotel-https").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_behind_tls_receives_every_signal_over_grpc() {
    let pki = Pki::new();
    let (rotel, grpc, _) = rotel().await;
    let front = tls_front(pki.acceptor(false, b"h2"), grpc).await;
    // No scheme: gRPC then means TLS (OTEL_EXPORTER_OTLP_INSECURE unset).
    let endpoint = format!("localhost:{front}");
    let ca = pki.env("ca.pem");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
    ];
    delivered(&rotel, &env, "rotel-grpcs").await;
}
