//! OTLP over TLS: a private CA (`OTEL_EXPORTER_OTLP_CERTIFICATE`), mutual TLS (`_CLIENT_CERTIFICATE`, `_CLIENT_KEY`), gRPC over TLS, and a collector whose certificate the CA did not sign refused with a clear log line. Certificates are made by the test with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::otlp::Collector;
use crate::support::*;

/// A CA and certificates it signed, as PEM files in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// CA `ca`, a server certificate for localhost/127.0.0.1 and a client certificate, and a
    /// second CA `other` that signed nothing here.
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for ca in ["ca", "other"] {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "1"];
            args.extend(EC);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=test {ca}"),
            );
            args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign"]);
            openssl(d, &args);
        }
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let mut args = vec!["req", "-nodes"];
            args.extend(EC);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={name}"),
            );
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(d, &args);
            let ext = format!(
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
            );
            std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
            let (pem, extfile) = (format!("{name}.pem"), format!("{name}.ext"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-out",
                    &pem,
                    "-extfile",
                    &extfile,
                ],
            );
        }
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn env(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A TLS acceptor with the server certificate; with `mtls`, client certificates signed by the CA are required.
    pub(crate) fn acceptor(&self, mtls: bool, alpn: &[u8]) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// One request through Redline, and its `x-request-id` in the receiver's access records.
async fn logged(rl: &Redline, collector: &Collector, id: &str) {
    let req = http::Request::get(rl.url("/echo"))
        .header("x-request-id", id)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200);
    eventually(Duration::from_secs(15), id, || async {
        collector.dump().contains(id).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_and_mutual_tls_over_http_and_grpc() {
    let pki = Pki::new();
    let up = app().await;
    // HTTP/protobuf to a collector that requires a client certificate.
    let http = Collector::tls(pki.acceptor(true, b"http/1.1"), false).await;
    // gRPC over TLS (ALPN h2) with the private CA, per-signal variables.
    let grpc = Collector::tls(pki.acceptor(false, b"h2"), true).await;
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                &format!("{}/v1/logs", http.https_url()),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.env("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &pki.env("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.env("client.key")),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &grpc.https_url()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &pki.env("ca.pem")),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    logged(&rl, &http, "mtls-1").await;
    eventually(
        Duration::from_secs(15),
        "spans over gRPC and TLS",
        || async { (!grpc.spans().is_empty()).then_some(()) },
    )
    .await;

    // Without a client certificate the same collector refuses the connection.
    let anonymous = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                &format!("{}/v1/logs", http.https_url()),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.env("ca.pem")),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "500"),
        ],
    );
    let req = http::Request::get(anonymous.url("/echo"))
        .header("x-request-id", "no-client-cert")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200);
    eventually(
        Duration::from_secs(15),
        "the refused record counted",
        || async {
            sample(
                &anonymous.metrics().await,
                r#"redline_telemetry_dropped_total{signal="logs"}"#,
            )
            .filter(|n| *n >= 1.0)
        },
    )
    .await;
    assert!(!http.dump().contains("no-client-cert"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_the_ca_did_not_sign_is_refused_with_a_clear_line() {
    let pki = Pki::new();
    let up = app().await;
    let collector = Collector::tls(pki.acceptor(false, b"http/1.1"), false).await;
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                &format!("{}/v1/logs", collector.https_url()),
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", &pki.env("other.pem")),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "500"),
        ],
    );
    let req = http::Request::get(rl.url("/echo"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 200, "the proxy does not care");
    let line = eventually(Duration::from_secs(15), "the refusal logged", || async {
        rl.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("UnknownIssuer"))
            .cloned()
    })
    .await;
    assert!(line.contains(r#""signal":"logs""#), "{line}");
    assert!(line.contains("invalid peer certificate"), "{line}");
    assert!(
        collector.dump().starts_with("[]\n[]"),
        "nothing was received"
    );
    eventually(Duration::from_secs(10), "the drop counted", || async {
        sample(
            &rl.metrics().await,
            r#"redline_telemetry_dropped_total{signal="logs"}"#,
        )
        .filter(|n| *n >= 1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_certificate_turns_the_signal_off_naming_the_variable() {
    let up = app().await;
    let rl = Redline::start_with(
        &config_for(up, ""),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:1"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ],
    );
    eventually(Duration::from_secs(10), "the setup error", || async {
        rl.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot use /nonexistent/ca.pem"))
            .cloned()
    })
    .await;
}
