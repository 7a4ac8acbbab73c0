//! Admin security and redaction: bearer token, loopback rule, protect_reads, audit of mutations, bad admin input, and no secret anywhere in what Redline emits.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::otlp::Collector;
use crate::reload::{Proc, audit_lines, post};
use crate::support::*;

const TOKEN: &str = "adm-tok-7Hq2ZxP4";

/// GET with an optional bearer token.
async fn get_as(url: &str, token: Option<&str>) -> (u16, http::HeaderMap, String) {
    let mut req = Request::get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(req.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_bearer_token_and_every_one_is_audited() {
    let up = app().await;
    let rl = Redline::start_with(&config_for(up, ""), &[], &[("REDLINE_ADMIN_TOKEN", TOKEN)]);
    let url = rl.admin_url("/api/reload");

    let (status, headers, body) = post(&url, None, "").await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert!(body.contains("Bearer"), "{body}");
    let (status, _, body) = post(&url, Some("not-the-token"), "").await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(&url, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    // Reads stay open without protect_reads.
    assert_eq!(get(&rl.admin_url("/api/flows")).await.0, 200);

    let lines = eventually(
        Duration::from_secs(5),
        "three admin audit lines",
        || async {
            let l = audit_lines(&rl.stderr, "admin");
            (l.len() == 3).then_some(l)
        },
    )
    .await;
    let results: Vec<&str> = lines
        .iter()
        .map(|l| l["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["denied", "denied", "ok"]);
    for l in &lines {
        assert_eq!(l["action"], "POST");
        assert_eq!(l["resource"], "/api/reload");
        assert!(
            l["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{l}"
        );
    }
    assert_eq!(lines[0]["status"], 401);
    let everything = rl.stderr.lock().unwrap().join("\n") + &rl.stdout.lock().unwrap().join("\n");
    assert!(!everything.contains(TOKEN), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_and_protect_reads_guard_the_api_and_dashboard_but_not_probes() {
    let up = app().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let yaml = config_for(
        up,
        &format!(
            "admin:\n  token_file: {}\n  protect_reads: true\n",
            token_file.display()
        ),
    );
    let rl = Proc::launch(
        &[
            "--config",
            &write_config(&dir, &yaml),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    );
    // The dashboard page stays open (it carries no data and asks for the token itself).
    for open in ["/metrics", "/healthz", "/readyz", "/"] {
        assert_eq!(get(&rl.admin_url(open)).await.0, 200, "{open}");
    }
    for guarded in ["/api/flows", "/api/routes", "/api/config", "/api/alerts"] {
        let (status, _, body) = get_as(&rl.admin_url(guarded), None).await;
        assert_eq!(status, 401, "{guarded}: {body}");
        assert_eq!(get_as(&rl.admin_url(guarded), Some("nope")).await.0, 403);
        assert_eq!(get_as(&rl.admin_url(guarded), Some(TOKEN)).await.0, 200);
    }
    // A rotated token file applies at once.
    std::fs::write(&token_file, "rotated-token\n").unwrap();
    assert_eq!(
        get_as(&rl.admin_url("/api/flows"), Some(TOKEN)).await.0,
        403
    );
    let (status, _, body) = post(&rl.admin_url("/api/reload"), Some("rotated-token"), "").await;
    assert_eq!(status, 200, "{body}");
    // An unreadable token file fails closed, even on loopback.
    std::fs::remove_file(&token_file).unwrap();
    let (status, _, body) = post(&rl.admin_url("/api/reload"), None, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token_file"), "{body}");
}

fn write_config(dir: &tempfile::TempDir, yaml: &str) -> String {
    let path = dir.path().join("redline.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_a_loopback_admin_listener_allows_mutations() {
    let up = app().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &config_for(up, ""));
    let open = Proc::launch(
        &[
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "0.0.0.0:0",
        ],
        &[],
    );
    // The warning may be logged just after the "listening" line the launcher waits for.
    eventually(Duration::from_secs(5), "no-token warning", || async {
        open.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("no admin token"))
            .then_some(())
    })
    .await;
    let url = format!("http://127.0.0.1:{}/api/reload", open.admin.port());
    let (status, _, body) = post(&url, None, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("REDLINE_ADMIN_TOKEN"), "{body}");
    let flows = format!("http://127.0.0.1:{}/api/flows", open.admin.port());
    assert_eq!(get(&flows).await.0, 200, "reads stay open");
    drop(open);

    let lo = Proc::launch(
        &[
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    );
    let (status, _, body) = post(&lo.admin_url("/api/reload"), None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !lo.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("no admin token"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_gets_a_clear_4xx_and_nothing_panics() {
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    let huge = "x".repeat(100 * 1024);
    let huge_json = format!("{{\"pad\":\"{huge}\"}}");
    // (path, body, expected status, words the message must contain)
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("/api/reload", "not json", 400, "invalid JSON"),
        ("/api/reload", "{\"force\":true}", 400, "unknown field"),
        ("/api/reload", "[1,2", 400, "invalid JSON"),
        ("/api/reload", "null", 400, "invalid JSON"),
        ("/api/reload", &huge_json, 413, "larger than"),
        ("/api/reload", "{}", 200, "success"),
        // Other engineers' mutations join here as they land, one line each.
        ("/api/silences", "{\"flow\":", 400, ""),
        ("/api/silences", "{\"bogus\":1}", 400, ""),
    ];
    for (path, body, want, words) in cases {
        let (status, _, text) = post(&rl.admin_url(path), None, body).await;
        let known = status != 404 || !path.ends_with("silences");
        if known {
            assert_eq!(status, want, "{path} {:.40}: {text}", body);
            assert!(text.contains(words), "{path}: {text}");
        }
        assert!(status < 500, "{path}: {status} {text}");
    }
    assert_eq!(get(&rl.admin_url("/api/reload")).await.0, 405);
    assert_eq!(get(&rl.admin_url("/healthz")).await.0, 200, "still alive");
    let panicked = rl
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("panicked"));
    assert!(!panicked);
}

/// Secrets sent through every path; none may show up anywhere Redline writes or serves.
const SECRETS: [&str; 9] = [
    "qsecret-token-1",
    "qsecret-apikey-2",
    "qsecret-password-3",
    "qsecret-semicolon-4",
    "hsecret-bearer-5",
    "hsecret-cookie-6",
    "hsecret-xapikey-7",
    "hooksecret-8",
    "cfgsecret-9",
];

/// A reset token in a path: the access log keeps raw paths (as nginx does), but the
/// admin API's route examples must not hand it out.
const PATH_SECRET: &str = "a9f3c2e1b0d4f6e8a7c5b3d1";
/// A session id as a path parameter: same rule, and it must not become a route label.
const SESSION_SECRET: &str = "psecret-jsession-10";

/// Every GET endpoint of the admin API; add new ones here.
const GET_ENDPOINTS: [&str; 10] = [
    "/",
    "/metrics",
    "/healthz",
    "/readyz",
    "/api/flows",
    "/api/flows/orders/series",
    "/api/routes",
    "/api/config",
    "/api/alerts",
    "/api/silences",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_admin_responses_or_errors() {
    let up = app().await;
    let yaml = config_for(
        up,
        "flows:\n  - name: orders\n    match: GET /api/orders/{id}\n\
         alerting:\n  receivers:\n    - { name: ops, type: webhook, url: \"http://127.0.0.1:9/hook?token=hooksecret-8\" }\n",
    );
    // Exported spans and metrics are searched too, from an in-process OTLP collector.
    let collector = Collector::http().await;
    let endpoint = collector.url();
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ];
    let rl = Redline::start_with(&yaml, &[], &otel);
    let requests = [
        "/api/orders/1?token=qsecret-token-1&api_key=qsecret-apikey-2&page=2",
        "/users/42?password=qsecret-password-3",
        "/search?q=shoes;signature=qsecret-semicolon-4",
        "/reset/a9f3c2e1b0d4f6e8a7c5b3d1",
        "/cart;jsessionid=psecret-jsession-10/items",
        "/status/503?secret=qsecret-token-1",
    ];
    let mut last_id = String::new();
    for (i, path) in requests.iter().enumerate() {
        last_id = format!("leak-test-{i}");
        let req = Request::get(rl.url(path))
            .header("authorization", "Bearer hsecret-bearer-5")
            .header("cookie", "session=hsecret-cookie-6")
            .header("x-api-key", "hsecret-xapikey-7")
            .header("x-request-id", &last_id)
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert!(send(req).await.0 < 600);
    }
    let line = rl.access_line(&last_id).await;
    assert!(
        line["path"].as_str().unwrap().contains("secret=REDACTED"),
        "{line}"
    );

    // A rejected reload whose error would quote a secret-bearing URL.
    std::fs::write(
        &rl.config_path,
        "upstream: \"http://127.0.0.1:1/x?token=cfgsecret-9\"\n",
    )
    .unwrap();
    let (status, _, reload_body) = post(&rl.admin_url("/api/reload"), None, "").await;
    assert_eq!(status, 422, "{reload_body}");
    let config = rl.json("/api/config").await;
    assert!(
        config["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("REDACTED"),
        "{config}"
    );

    let mut captures: Vec<(String, String)> = Vec::new();
    for path in GET_ENDPOINTS {
        captures.push((format!("GET {path}"), get(&rl.admin_url(path)).await.2));
    }
    captures.push(("POST /api/reload".into(), reload_body));
    // Two spans per request (SERVER and CLIENT) and at least one metrics export.
    eventually(
        Duration::from_secs(15),
        "every request's spans exported",
        || async {
            let enough = collector.spans().len() >= 2 * requests.len();
            (enough && collector.dump().contains("http.server.request.duration")).then_some(())
        },
    )
    .await;
    let exported = collector.dump();
    // The secret-bearing query was exported, redacted (so the search below means something).
    assert!(exported.contains("token=REDACTED"), "{exported}");
    captures.push(("OTLP export".into(), exported));
    // Webhook bodies: no alert fires here; notify::failing_upstream_pages_the_webhook_then_resolves
    // searches its firing and resolved bodies for the receiver URL's and the requests' secrets.
    captures.push(("stdout".into(), rl.stdout.lock().unwrap().join("\n")));
    captures.push(("stderr".into(), rl.stderr.lock().unwrap().join("\n")));
    for (what, text) in &captures {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked in {what}: {text}");
        }
        if what.starts_with("GET ") {
            for secret in [PATH_SECRET, SESSION_SECRET] {
                assert!(
                    !text.contains(secret),
                    "path token leaked in {what}: {text}"
                );
            }
        }
    }
    let routes: Value = rl.json("/api/routes").await;
    assert!(routes.to_string().contains("/reset/REDACTED"), "{routes}");
    let metrics = get(&rl.admin_url("/metrics")).await.2;
    assert!(metrics.contains(r#"http_route="/cart/items""#), "{metrics}");
}

/// POST `body` to the admin API with extra headers (Origin, Host, …) and no token.
async fn post_from(
    rl: &Redline,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = Request::post(rl.admin_url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, text) = send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await;
    (status, text)
}

/// Without a token a loopback admin listener trusts whoever reaches it, and a web page the
/// operator has open reaches it too: a `text/plain` POST is a "simple" request that needs
/// no CORS preflight, and DNS rebinding makes the page same-origin with the admin port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_web_pages_cannot_mutate_the_loopback_admin_api() {
    let up = app().await;
    let rl = Redline::start(&config_for(
        up,
        "flows:\n  - name: checkout\n    match: GET /x\n",
    ));
    let silence = r#"{"flow":"checkout","duration":"1h","comment":"csrf"}"#;
    let own = format!("http://127.0.0.1:{}", rl.admin.port());
    let refused: [&[(&str, &str)]; 6] = [
        // fetch(…, {mode: 'no-cors', method: 'POST', body}) from another site.
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("content-type", "text/plain;charset=UTF-8"),
        ],
        // A browser without Fetch Metadata still sends Origin on a cross-site POST.
        &[("origin", "http://evil.example")],
        // A sandboxed iframe or a data: page.
        &[("origin", "null")],
        &[("sec-fetch-site", "same-site")],
        // DNS rebinding: evil.example now resolves to 127.0.0.1, so the page is same-origin.
        &[
            ("host", "evil.example:9901"),
            ("origin", "http://evil.example:9901"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[("host", "evil.example")],
    ];
    for headers in refused {
        let (status, body) = post_from(&rl, "/api/silences", headers, silence).await;
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert!(body.contains("REDLINE_ADMIN_TOKEN"), "{body}");
        let (status, body) = post_from(&rl, "/api/reload", headers, "").await;
        assert_eq!(status, 403, "{headers:?}: {body}");
    }
    let fault = r#"{"flow":"checkout","abort":503,"expires_in":"1m"}"#;
    let (status, body) = post_from(&rl, "/api/faults", refused[0], fault).await;
    assert_eq!(status, 403, "{body}");

    let allowed: [&[(&str, &str)]; 4] = [
        // curl, scripts: no Origin.
        &[],
        // The dashboard page itself.
        &[
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/json"),
        ],
        // The dashboard through `ssh -L 8000:127.0.0.1:9901` or `kubectl port-forward`.
        &[
            ("host", "localhost:8000"),
            ("origin", "http://localhost:8000"),
        ],
        // Typed into the address bar (a bookmarklet, say).
        &[("sec-fetch-site", "none"), ("host", "[::1]:9901")],
    ];
    for headers in allowed {
        let (status, body) = post_from(&rl, "/api/silences", headers, silence).await;
        assert_eq!(status, 201, "{headers:?}: {body}");
    }
    let silences = rl.json("/api/silences").await;
    assert_eq!(
        silences["silences"].as_array().unwrap().len(),
        4,
        "{silences}"
    );
    // Refused attempts are audited like any denied mutation.
    let want = 2 * refused.len() + 1;
    eventually(Duration::from_secs(5), "denied audit lines", || async {
        let denied = audit_lines(&rl.stderr, "admin")
            .into_iter()
            .filter(|l| l["result"] == "denied")
            .count();
        (denied == want).then_some(())
    })
    .await;
}

/// `redline run` with text logs of the audit trail alone (`REDLINE_LOG=redline::audit=info`),
/// killed on drop. Its start-up line is filtered out, so it listens on a port chosen here.
struct TextAudit {
    child: std::process::Child,
    admin: String,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TextAudit {
    async fn start(config: &str) -> TextAudit {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
            .args(["run", "--config", config, "--listen", "127.0.0.1:0"])
            .args(["--admin", &admin])
            .env("REDLINE_LOG_FORMAT", "text")
            .env("REDLINE_LOG", "redline::audit=info")
            .env("NO_COLOR", "1")
            .env_remove("REDLINE_ADMIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn redline");
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        wait_ready(&format!("http://{admin}/healthz"), "redline", &mut child).await;
        TextAudit {
            child,
            admin,
            stderr,
        }
    }
}

impl Drop for TextAudit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creating and deleting a silence are admin changes: they belong to the audit trail (its
/// target, so `REDLINE_LOG=redline::audit=info` and the OTLP export include them), say
/// who did it, and stay one line each whatever the client wrote in the comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_changes_are_audited_in_the_trail_and_a_comment_cannot_forge_a_line() {
    let up = app().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_for(up, "flows:\n  - name: checkout\n    match: GET /x\n");
    let config = write_config(&dir, &yaml);
    let forged = "2026-01-01T00:00:00.000000Z  INFO redline::audit: Configuration reloaded. \
                  audit=true event=\"reload\" trigger=\"api\" result=\"success\"";
    let comment = format!("maintenance\r\n{forged}\u{1b}[2K");
    let body = serde_json::json!({ "flow": "checkout", "duration": "1h", "comment": comment });

    let rl = TextAudit::start(&config).await;
    let (status, _, created) = post(
        &format!("http://{}/api/silences", rl.admin),
        None,
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let req = Request::delete(format!("http://{}/api/silences/{id}", rl.admin))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, 204);
    let lines = eventually(Duration::from_secs(5), "silence audit lines", || async {
        let lines = rl.stderr.lock().unwrap().clone();
        let done = lines.iter().any(|l| l.contains("silence_deleted"));
        done.then_some(lines)
    })
    .await;
    let created = lines
        .iter()
        .find(|l| l.contains("silence_created"))
        .expect("a silence_created line");
    assert!(created.contains("client=127.0.0.1:"), "{created}");
    assert!(created.contains(&id), "{created}");
    let deleted = lines
        .iter()
        .find(|l| l.contains("silence_deleted"))
        .unwrap();
    assert!(deleted.contains("client=127.0.0.1:"), "{deleted}");
    for line in &lines {
        assert!(
            !line.starts_with("2026-01-01") && !line.contains('\u{1b}'),
            "a client forged or garbled an audit line: {lines:#?}"
        );
    }
}

/// Credentials and query secrets in the config's own URLs (the OTLP endpoint,
/// `alerting.external_url`) stay out of the start-up log and `GET /api/config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_configured_urls_stay_out_of_the_startup_log_and_api_config() {
    let up = app().await;
    let secrets = ["extsecret-1", "extsecret-2", "otsecret-3", "otsecret-4"];
    let yaml = config_for(
        up,
        "alerting:\n  external_url: http://ext:extsecret-1@redline.example/?token=extsecret-2\n\
         telemetry:\n  otlp: { endpoint: \"http://ot:otsecret-3@127.0.0.1:9/?key=otsecret-4\" }\n",
    );
    let rl = Redline::start(&yaml);
    let config = rl.json("/api/config").await;
    assert_eq!(
        config["config"]["alerting"]["external_url"],
        "http://REDACTED@redline.example/?token=REDACTED",
        "{config}"
    );
    let stderr = eventually(Duration::from_secs(5), "the OTLP start line", || async {
        let all = rl.stderr.lock().unwrap().join("\n");
        all.contains("OTLP export on.").then_some(all)
    })
    .await;
    assert!(stderr.contains("redline.example"), "{stderr}");
    for secret in secrets {
        assert!(
            !stderr.contains(secret),
            "{secret} leaked in the log: {stderr}"
        );
        assert!(!config.to_string().contains(secret), "{secret}: {config}");
    }
}

/// A body announced larger than the admin API takes is refused from its `Content-Length`,
/// at once: not after the client has sent it all, nor after the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_admin_body_is_refused_from_its_content_length() {
    use tokio::io::AsyncWriteExt;
    let up = app().await;
    let rl = Redline::start(&config_for(up, ""));
    for path in ["/api/silences", "/api/reload", "/api/faults"] {
        let mut s = tokio::net::TcpStream::connect(rl.admin).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             content-length: 10000000000\r\n\r\n{{\"flow\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (read, answer) = read_until(&mut s, "larger than").await;
        assert!(
            read,
            "{path}: no answer while the body is pending: {answer:?}"
        );
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
}

/// A config error at start-up lands in the service's log (and `check`'s in CI logs): it
/// names the key and position, but does not quote the credentials it complains about,
/// just as a rejected reload does not.
#[test]
fn config_errors_at_startup_do_not_quote_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "upstream: http://user:upsecret-1@127.0.0.1:3000\n",
            "upsecret-1",
        ),
        (
            "upstream: http://127.0.0.1:3000\nalerting:\n  receivers:\n    - { name: ops, type: webhook, url: \"ftp://u:hooksecret-2@hooks/?token=hooksecret-3\" }\n",
            "hooksecret",
        ),
        (
            "upstream: http://127.0.0.1:3000\ntelemetry:\n  otlp: { endpoint: \"tcp://u:otsecret-4@col:4318/?key=otsecret-5\" }\n",
            "otsecret",
        ),
    ];
    for (yaml, secret) in cases {
        let config = write_config(&dir, yaml);
        let run = [
            "run",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ];
        for args in [&run[..], &["check", "--config", &config]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
                .args(args)
                .env_remove("REDLINE_ADMIN_TOKEN")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains("redline.yaml:") && stderr.contains("REDACTED"),
                "{stderr}"
            );
            assert!(
                !stderr.contains(secret),
                "{args:?} leaked {secret}: {stderr}"
            );
        }
    }
}

/// A client that sends an admin request's headers and then stalls its body gets 408 after
/// `limits.body_read_timeout`, as on the proxy: it does not hold a connection (and a file
/// descriptor the proxy shares) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_admin_body_times_out() {
    use tokio::io::AsyncWriteExt;
    let up = app().await;
    let rl = Redline::start(&config_for(up, "limits:\n  body_read_timeout: 300ms\n"));
    for path in ["/api/silences", "/api/reload", "/api/faults"] {
        let mut s = tokio::net::TcpStream::connect(rl.admin).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{{\"f"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (read, answer) = read_until(&mut s, "}").await;
        assert!(read, "{path}: still waiting for the body: {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("body_read_timeout"), "{path}: {answer}");
    }
}

/// The admin listener keeps the header read timeout from the moment a client connects, as
/// the proxy does: a connection that never sends a byte (or idles after a response) is
/// closed, so idle sockets cannot pile up and use the file descriptors the proxy needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_admin_connection_is_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = app().await;
    let rl = Redline::start(&config_for(up, "limits:\n  header_read_timeout: 300ms\n"));
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    };
    let silent = tokio::net::TcpStream::connect(rl.admin).await.unwrap();
    assert!(
        closed(silent).await,
        "a connection that sends nothing stays open"
    );
    let mut kept = tokio::net::TcpStream::connect(rl.admin).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed(kept).await,
        "an idle keep-alive connection stays open"
    );
}

/// What `s` sends until `marker` shows (or it closes), and whether that happened within 5 s
/// rather than the client being left waiting.
async fn read_until(s: &mut tokio::net::TcpStream, marker: &str) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains(marker) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (read.is_ok(), String::from_utf8_lossy(&answer).into_owned())
}
