//! Per-flow access control end to end: tokens minted by PyJWT + cryptography (a library no
//! one here wrote), a JWKS file, both HTTP/1.1 engines, spoofed identity headers, API keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::*;

/// Mints the keys, the JWKS and one token per case. Hand-rolled only where PyJWT (rightly)
/// refuses to help an attacker: HS256 signed with the RSA public key, and `nbf` as a string.
const MINT: &str = r#"
import base64, hashlib, hmac, json, sys, time
import jwt
from jwt.algorithms import RSAAlgorithm, ECAlgorithm, OKPAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
from cryptography.hazmat.primitives import serialization

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

def jwk(alg_cls, key, kid, alg):
    d = json.loads(alg_cls.to_jwk(key.public_key()))
    d.update(kid=kid, alg=alg, use="sig")
    return d

jwks = {"keys": [jwk(RSAAlgorithm, rsa_key, "r1", "RS256"),
                 jwk(ECAlgorithm, ec_key, "e1", "ES256"),
                 jwk(OKPAlgorithm, ed_key, "o1", "EdDSA")]}
now = int(time.time())
ISS, AUD = "https://id.test", "orders"

def claims(sub, roles, **over):
    c = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600,
         "realm_access": {"roles": roles}}
    c.update(over)
    return c

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def hand_signed(header, payload, secret):
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)

rsa_pub_pem = rsa_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
good = jwt.encode(claims("alice", ["admin"]), rsa_key, "RS256", headers={"kid": "r1"})
head, body, sig = good.split(".")
tampered_body = b64(json.dumps(claims("alice", ["admin", "root"])).encode())
tokens = {
    "rs256_admin": good,
    "es256_viewer": jwt.encode(claims("bob", ["viewer"]), ec_key, "ES256", headers={"kid": "e1"}),
    "eddsa_admin": jwt.encode(claims("carol", ["admin"]), ed_key, "EdDSA", headers={"kid": "o1"}),
    "scope_admin": jwt.encode(claims("dave", [], scope="read admin"), rsa_key, "RS256", headers={"kid": "r1"}),
    "expired": jwt.encode(claims("alice", ["admin"], exp=now - 3600), rsa_key, "RS256", headers={"kid": "r1"}),
    "wrong_issuer": jwt.encode(claims("alice", ["admin"], iss="https://evil.test"), rsa_key, "RS256", headers={"kid": "r1"}),
    "wrong_audience": jwt.encode(claims("alice", ["admin"], aud="billing"), rsa_key, "RS256", headers={"kid": "r1"}),
    "alg_none": jwt.encode(claims("alice", ["admin"]), None, "none"),
    "tampered": head + "." + tampered_body + "." + sig,
    "unknown_key": jwt.encode(claims("alice", ["admin"]), other_rsa, "RS256", headers={"kid": "r1"}),
    "hs_rs_confusion": hand_signed({"alg": "HS256", "typ": "JWT", "kid": "r1"},
                                   claims("alice", ["admin"]), rsa_pub_pem),
    "nbf_string": jwt.encode(claims("alice", ["admin"], nbf=str(now + 86400)), rsa_key, "RS256", headers={"kid": "r1"}),
    "no_exp": jwt.encode({k: v for k, v in claims("alice", ["admin"]).items() if k != "exp"},
                         rsa_key, "RS256", headers={"kid": "r1"}),
}
# The issuer's next key, for the rotation test: a set that holds only it.
next_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rotated = {"keys": [jwk(RSAAlgorithm, next_key, "r2", "RS256")]}
tokens["rotated_admin"] = jwt.encode(claims("erin", ["admin"]), next_key, "RS256", headers={"kid": "r2"})
tokens["made_up_kid"] = jwt.encode(claims("mallory", ["admin"]), rsa_key, "RS256", headers={"kid": "zz"})
json.dump({"jwks": jwks, "rotated": rotated, "tokens": tokens}, sys.stdout)
"#;

/// Keys, JWKS and tokens from PyJWT.
struct Minted {
    jwks: serde_json::Value,
    rotated: serde_json::Value,
    tokens: HashMap<String, String>,
}

fn mint() -> Minted {
    let out = std::process::Command::new("python3")
        .args(["-c", MINT])
        .output()
        .expect("python3 (with pyjwt and cryptography: tests/run.sh installs them)");
    assert!(
        out.status.success(),
        "minting failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = v["tokens"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
        .collect();
    Minted {
        jwks: v["jwks"].clone(),
        rotated: v["rotated"].clone(),
        tokens,
    }
}

/// `keys.yaml` in `dir` holding one API key, `k-live-123` (only its hash is in the file),
/// named `name` with `roles` (a YAML list).
fn key_file(dir: &std::path::Path, name: &str, roles: &str) -> std::path::PathBuf {
    let path = dir.join("keys.yaml");
    let hash = sha256_hex("k-live-123");
    let line = format!("- {{ name: {name}, sha256: {hash}, roles: {roles} }}\n");
    std::fs::write(&path, line).unwrap();
    path
}

fn config(app: SocketAddr, dir: &std::path::Path, jwks: &serde_json::Value) -> String {
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let keys_file = key_file(dir, "ci-deploy", "[deployer]");
    config_for(
        app,
        &format!(
            r#"auth:
  jwt:
    jwks_file: {jwks}
    issuer: https://id.test
    audience: orders
    roles_claim: realm_access.roles
  api_keys:
    file: {keys}
flows:
  - name: admin
    match: /admin/users
    access: [admin]
  - name: me
    match: /me
    access: authenticated
  - name: deploy
    match: /deploy
    access: {{ POST: [deployer], GET: authenticated }}
  - name: open
    match: /open
    access: public
  - name: plain
    match: /plain
"#,
            jwks = jwks_file.display(),
            keys = keys_file.display()
        ),
    )
}

fn sha256_hex(s: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            s,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn call(
    rl: &Redline,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(rl.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, h, body) = send(req.body(Full::new(Bytes::new())).unwrap()).await;
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, h, json)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every case against one running Redline; `engine` names it in failures.
async fn check_engine(rl: &Redline, m: &Minted, engine: &str) {
    let t = |name: &str| bearer(&m.tokens[name]);
    // Good tokens of all three algorithms; the app gets the verified identity.
    for (name, sub) in [
        ("rs256_admin", "alice"),
        ("eddsa_admin", "carol"),
        ("scope_admin", "dave"),
    ] {
        let auth = t(name);
        let (status, _, echo) = call(rl, "GET", "/admin/users", &[("authorization", &auth)]).await;
        assert_eq!(status, 200, "{engine} {name}: {echo}");
        assert_eq!(echo["headers"]["x-redline-subject"], sub, "{engine} {name}");
    }
    let auth = t("es256_viewer");
    let (status, _, echo) = call(rl, "GET", "/me", &[("authorization", &auth)]).await;
    assert_eq!(
        (status, &echo["headers"]["x-redline-roles"]),
        (200, &"viewer".into()),
        "{engine}"
    );
    // Verified, but not an admin: 403 with the request id, nothing upstream.
    let (status, h, body) = call(rl, "GET", "/admin/users", &[("authorization", &auth)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{engine}"
    );
    assert_eq!(
        body["request_id"].as_str(),
        h["x-request-id"].to_str().ok(),
        "{engine}"
    );
    // No credential: a bare challenge (RFC 6750 §3.1).
    let (status, h, body) = call(rl, "GET", "/admin/users", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated")),
        "{engine}"
    );
    assert_eq!(h["www-authenticate"], "Bearer", "{engine}");
    for bad in [
        "expired",
        "wrong_issuer",
        "wrong_audience",
        "alg_none",
        "tampered",
        "unknown_key",
        "hs_rs_confusion",
        "nbf_string",
        "no_exp",
    ] {
        let auth = t(bad);
        let (status, h, body) = call(rl, "GET", "/me", &[("authorization", &auth)]).await;
        assert_eq!(status, 401, "{engine} {bad} was let through: {body}");
        assert_eq!(
            h["www-authenticate"], r#"Bearer error="invalid_token""#,
            "{engine} {bad}"
        );
    }
    check_spoofing(rl, m, engine).await;
    check_api_keys(rl, engine).await;
}

/// Identity headers from the client never reach the app, whatever the flow's rule.
async fn check_spoofing(rl: &Redline, m: &Minted, engine: &str) {
    let spoof = [("x-redline-subject", "root"), ("x-redline-roles", "admin")];
    for path in ["/open", "/plain", "/unmatched/x"] {
        let (status, _, echo) = call(rl, "GET", path, &spoof).await;
        assert_eq!(status, 200, "{engine} {path}");
        assert!(
            echo["headers"].get("x-redline-subject").is_none(),
            "{engine} {path}: {echo}"
        );
        assert!(
            echo["headers"].get("x-redline-roles").is_none(),
            "{engine} {path}: {echo}"
        );
    }
    let auth = bearer(&m.tokens["es256_viewer"]);
    let mut headers = spoof.to_vec();
    headers.push(("authorization", &auth));
    let (_, _, echo) = call(rl, "GET", "/me", &headers).await;
    assert_eq!(
        echo["headers"]["x-redline-subject"], "bob",
        "{engine}: {echo}"
    );
    assert_eq!(
        echo["headers"]["x-redline-roles"], "viewer",
        "{engine}: {echo}"
    );
    let (status, _, _) = call(rl, "GET", "/admin/users", &spoof).await;
    assert_eq!(status, 401, "{engine}: spoofed headers are no credential");
}

async fn check_api_keys(rl: &Redline, engine: &str) {
    let key = [("x-api-key", "k-live-123")];
    let (status, _, echo) = call(rl, "POST", "/deploy", &key).await;
    assert_eq!(status, 200, "{engine}: {echo}");
    assert_eq!(
        echo["headers"]["x-redline-subject"], "ci-deploy",
        "{engine}"
    );
    let (status, h, _) = call(rl, "POST", "/deploy", &[("x-api-key", "k-live-124")]).await;
    assert_eq!(
        (status, &h["www-authenticate"]),
        (401, &r#"Bearer error="invalid_token""#.parse().unwrap())
    );
    // A method with no rule is denied by default.
    let (status, _, _) = call(rl, "DELETE", "/deploy", &key).await;
    assert_eq!(status, 403, "{engine}");
}

#[tokio::test]
async fn tokens_minted_by_pyjwt_are_judged_per_flow_in_both_engines() {
    let minted = mint();
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(app, dir.path(), &minted.jwks);
    let fast = Redline::start(&yaml);
    check_engine(&fast, &minted, "fast").await;
    let hyper = Redline::start_with(&yaml, &[], &[("REDLINE_HTTP1_ENGINE", "hyper")]);
    check_engine(&hyper, &minted, "hyper").await;

    // Denials are counted under their own error_type, and are not the flow's errors.
    let m = fast.metrics().await;
    let series = |status: &str, error: &str| {
        format!(
            r#"http_server_request_duration_seconds_count{{flow="admin",http_request_method="GET",http_route="/admin/users",http_response_status_code="{status}",error_type="{error}"}}"#
        )
    };
    assert_eq!(sample(&m, &series("403", "forbidden")), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, &series("401", "unauthenticated")),
        Some(2.0),
        "{m}"
    );
    let window = eventually(Duration::from_secs(10), "admin flow's window", || async {
        let v = fast.json("/api/flows").await;
        let admin = v["flows"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == "admin")?
            .clone();
        let window = admin["windows"].as_object()?.values().next()?.clone();
        (window["requests"].as_u64()? >= 6).then_some(window)
    })
    .await;
    assert_eq!(
        window["errors"], 0,
        "denials counted as the app's errors: {window}"
    );

    // /api/flows shows each flow's rule and its decisions; no token or key shows anywhere.
    let flows = fast.json("/api/flows").await;
    let admin = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "admin")
        .unwrap();
    assert_eq!(admin["access"]["rule"], "*: any of [admin]", "{admin}");
    assert_eq!(admin["access"]["allowed"], 3, "{admin}");
    assert_eq!(admin["access"]["denied"], 3, "{admin}");
    let plain = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "plain")
        .unwrap();
    assert_eq!(plain["access"]["rule"], serde_json::Value::Null);
    let config = fast.json("/api/config").await.to_string();
    let log = eventually(Duration::from_secs(10), "access log lines", || async {
        let lines = fast.stdout.lock().unwrap().join("\n");
        (lines.matches("\"request_id\"").count() >= 20).then_some(lines)
    })
    .await;
    for shown in [flows.to_string(), config, log] {
        for secret in [&minted.tokens["rs256_admin"], &"k-live-123".to_string()] {
            let sig = secret.rsplit('.').next().unwrap();
            assert!(!shown.contains(sig), "a credential is shown: {shown}");
        }
    }
}

/// What the test issuer serves: (status, JWKS body).
type Served = Arc<Mutex<(u16, String)>>;

/// A JWKS endpoint whose answer the test changes, counting fetches.
async fn issuer(initial: &serde_json::Value) -> (SocketAddr, Served, Arc<AtomicUsize>) {
    let served: Served = Arc::new(Mutex::new((200, initial.to_string())));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (s, f) = (served.clone(), fetches.clone());
    let addr = serve(move |_req| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            f.fetch_add(1, Ordering::SeqCst);
            let (status, body) = s.lock().unwrap().clone();
            let mut resp = http::Response::new(full(body));
            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
            resp
        }
    })
    .await;
    (addr, served, fetches)
}

#[tokio::test]
async fn keys_from_a_jwks_url_follow_rotation_and_survive_an_issuer_outage() {
    let m = mint();
    let app = app().await;
    let (issuer, served, fetches) = issuer(&m.jwks).await;
    let yaml = config_for(
        app,
        &format!(
            "auth:\n  jwt:\n    jwks_url: http://{issuer}/jwks\n    jwks_min_refresh: 1s\n    issuer: https://id.test\n    audience: orders\n    roles_claim: realm_access.roles\nflows:\n  - name: admin\n    match: /admin/users\n    access: [admin]\n"
        ),
    );
    let rl = Redline::start(&yaml);
    let status_of = |name: &'static str| {
        let auth = bearer(&m.tokens[name]);
        let rl = &rl;
        async move {
            call(rl, "GET", "/admin/users", &[("authorization", &auth)])
                .await
                .0
        }
    };
    assert_eq!(status_of("rs256_admin").await, 200);
    // The issuer rotates: a token with the new kid makes Redline fetch again.
    served.lock().unwrap().1 = m.rotated.to_string();
    eventually(
        Duration::from_secs(10),
        "the rotated key to be fetched",
        || async { (status_of("rotated_admin").await == 200).then_some(()) },
    )
    .await;
    // The issuer goes down: the last good set is kept.
    *served.lock().unwrap() = (500, "down".into());
    let before = fetches.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for _ in 0..30 {
        assert_eq!(status_of("rotated_admin").await, 200);
        assert_eq!(status_of("made_up_kid").await, 401);
    }
    // Made-up kids cost the issuer at most one fetch per second (plus the one in flight).
    let spent = fetches.load(Ordering::SeqCst) - before;
    let allowed = started.elapsed().as_secs() as usize + 2;
    assert!(
        spent <= allowed,
        "{spent} fetches for made-up kids: not rate-limited"
    );
}

/// A reload that leaves `auth.jwt` alone keeps the fetched JWKS and the verified identities:
/// no fetch, and a token whose key the issuer has since dropped still works from the cache.
/// A reload that changes the JWKS source builds both again.
#[tokio::test]
async fn a_reload_keeps_the_jwks_and_identity_caches_unless_the_jwks_source_changes() {
    let m = mint();
    let app = app().await;
    let (issuer, served, fetches) = issuer(&m.jwks).await;
    let yaml = |path: &str, extra_flow: &str| {
        config_for(
            app,
            &format!(
                "auth:\n  jwt:\n    jwks_url: http://{issuer}{path}\n    jwks_min_refresh: 1s\n    issuer: https://id.test\n    audience: orders\n    roles_claim: realm_access.roles\nflows:\n  - name: admin\n    match: /admin/users\n    access: [admin]\n{extra_flow}"
            ),
        )
    };
    let rl = Redline::start(&yaml("/jwks", ""));
    let status_of = |name: &'static str| {
        let auth = bearer(&m.tokens[name]);
        let rl = &rl;
        async move {
            call(rl, "GET", "/admin/users", &[("authorization", &auth)])
                .await
                .0
        }
    };
    let reload = |text: String| {
        let rl = &rl;
        async move {
            std::fs::write(&rl.config_path, text).unwrap();
            let (status, _, body) =
                crate::reload::post(&rl.admin_url("/api/reload"), None, "").await;
            assert_eq!(status, 200, "{body}");
        }
    };
    assert_eq!(status_of("rs256_admin").await, 200);
    let fetched = fetches.load(Ordering::SeqCst);
    assert!(fetched >= 1);

    // Unrelated change: a new flow.
    reload(yaml("/jwks", "  - name: plain\n    match: /plain\n")).await;
    let flows = rl.json("/api/flows").await.to_string();
    assert!(
        flows.contains("\"plain\""),
        "the reload did not apply: {flows}"
    );
    // The issuer drops key r1: only a cached identity can still admit rs256_admin.
    served.lock().unwrap().1 = m.rotated.to_string();
    assert_eq!(status_of("rs256_admin").await, 200, "identity cache lost");
    // A token never seen, signed with r1: verified with the set fetched before the reload.
    // A rebuilt key source would have had to fetch (and would now get the set without r1).
    assert_eq!(status_of("scope_admin").await, 200, "JWKS lost");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        fetched,
        "the reload fetched the JWKS"
    );

    // Another source: keys fetched again from it, every identity verified again.
    reload(yaml("/jwks-next", "")).await;
    assert_eq!(status_of("rotated_admin").await, 200);
    assert_eq!(
        status_of("rs256_admin").await,
        401,
        "a stale identity survived"
    );
    assert!(fetches.load(Ordering::SeqCst) > fetched);
}

/// A webhook receiver keeping every notification's JSON body.
async fn webhook() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let addr = serve(move |req: Request<hyper::body::Incoming>| {
        let keep = keep.clone();
        async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            keep.lock().unwrap().push(json);
            http::Response::new(full(""))
        }
    })
    .await;
    (addr, got)
}

/// The first notification of `alertname` with `status`, if any.
fn notified(got: &Mutex<Vec<serde_json::Value>>, alertname: &str, status: &str) -> Option<String> {
    got.lock().unwrap().iter().find_map(|n| {
        let alert = &n["alerts"][0];
        (alert["labels"]["alertname"] == alertname && n["status"] == status).then(|| {
            alert["annotations"]["summary"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    })
}

/// A spike of unauthenticated requests fires `denied_rate`, and resolves once callers
/// authenticate again; the refusals never fire the flow's error-rate rule.
#[tokio::test]
async fn a_spike_of_denials_fires_denied_rate_at_a_webhook_and_resolves() {
    let app = app().await;
    let (hook, got) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "shop", "[]");
    let rule = "over: 10s, for: 0s, min_requests: 10, keep_firing_for: 1s";
    let yaml = config_for(
        app,
        &format!(
            "auth:\n  api_keys: {{ file: {keys} }}\nflows:\n  - name: me\n    match: /me\n    access: authenticated\n    alerts:\n      - {{ when: \"denied_rate > 20%\", {rule} }}\n      - {{ when: \"error_rate > 2%\", {rule} }}\nalerting:\n  eval_interval: 1s\n  receivers:\n    - {{ name: sec, type: webhook, url: 'http://{hook}/hook' }}\n",
            keys = keys.display()
        ),
    );
    let rl = Redline::start(&yaml);
    let key = [("x-api-key", "k-live-123")];
    let burst = |good: usize, bad: usize| {
        let rl = &rl;
        async move {
            for _ in 0..good {
                assert_eq!(call(rl, "GET", "/me", &key).await.0, 200);
            }
            for _ in 0..bad {
                assert_eq!(call(rl, "GET", "/me", &[]).await.0, 401);
            }
        }
    };
    // Healthy traffic first: nothing fires.
    burst(20, 0).await;
    // The spike: half the requests come without a credential.
    let firing = eventually(Duration::from_secs(30), "FlowDeniedRate firing", || async {
        burst(3, 3).await;
        notified(&got, "FlowDeniedRate", "firing")
    })
    .await;
    assert!(firing.starts_with("me: denied rate "), "{firing}");
    assert!(firing.contains("> 20% over 10s"), "{firing}");
    let flows = rl.json("/api/flows").await;
    let me = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "me")
        .unwrap();
    let window = me["windows"].as_object().unwrap().values().next().unwrap();
    assert!(window["denied"].as_u64().unwrap() >= 3, "{window}");
    assert_eq!(window["errors"], 0, "{window}");
    // Callers authenticate again: the denied share falls under 20 % and the alert resolves.
    let resolved = eventually(
        Duration::from_secs(60),
        "FlowDeniedRate resolved",
        || async {
            burst(5, 0).await;
            notified(&got, "FlowDeniedRate", "resolved")
        },
    )
    .await;
    assert!(resolved.starts_with("me: denied rate "), "{resolved}");
    assert_eq!(notified(&got, "FlowErrorRate", "firing"), None);
}

/// Audited requests under load, a kill -9 while requests are still being answered, then the
/// trail checked by `redline audit verify`.
///
/// What a kill -9 may lose is what the writer thread has not yet handed to the kernel (the
/// queue and the batch being written); when that is depends on when the thread gets a CPU,
/// so no wall-clock bound is asserted. What is asserted: every record seen on disk before
/// the kill is still there after it, the trail is an intact chain (an interrupted last line
/// is reported, not counted), and no record was dropped.
#[tokio::test]
async fn audit_records_survive_kill_9_and_tampering_is_caught() {
    let app = app().await;
    let data = tempfile::tempdir().unwrap();
    let keys = key_file(data.path(), "ci-deploy", "[deployer]");
    let yaml = config_for(
        app,
        &format!(
            "data_dir: {data}\naudit_trail: {{ max_file_size: 16KiB }}\nauth:\n  api_keys: {{ file: {keys} }}\nflows:\n  - name: deploy\n    match: /deploy/{{id}}\n    access: [deployer]\n    audit: true\n  - name: admin\n    match: /admin\n    access: [admin]\n",
            data = data.path().display(),
            keys = keys.display()
        ),
    );
    let mut rl = Redline::start(&yaml);
    let audit_dir = data.path().join("audit");
    let on_disk = |ids: &[String]| {
        let text = trail_text(&audit_dir);
        ids.iter()
            .all(|id| text.contains(&format!("\"request_id\":\"{id}\"")))
    };
    let first = load(&rl).await;
    eventually(
        Duration::from_secs(20),
        "the first load on disk",
        || async { on_disk(&first).then_some(()) },
    )
    .await;
    // More load, and the kill while it runs, once some of it has reached the disk.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = Arc::new(Mutex::new(Vec::new()));
    let running = tokio::spawn(load_until(
        rl.url("/deploy/9"),
        stop.clone(),
        second.clone(),
    ));
    let seen = eventually(
        Duration::from_secs(20),
        "the second load on disk",
        || async {
            let ids = second.lock().unwrap().clone();
            let text = trail_text(&audit_dir);
            let seen: Vec<String> = ids
                .into_iter()
                .filter(|id| text.contains(&format!("\"request_id\":\"{id}\"")))
                .collect();
            (seen.len() >= 5).then_some(seen)
        },
    )
    .await;
    let m = rl.metrics().await;
    assert_eq!(sample(&m, "redline_audit_dropped_total"), Some(0.0), "{m}");
    rl.child.kill().unwrap();
    rl.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    running.await.unwrap();

    let mut files: Vec<_> = std::fs::read_dir(&audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() > 1,
        "16 KiB files should have rotated: {files:?}"
    );
    let text = trail_text(&audit_dir);
    assert!(
        !text.contains("k-live-123"),
        "a key reached the audit trail"
    );
    assert!(on_disk(&first), "a record on disk before the kill was lost");
    assert!(on_disk(&seen), "a record on disk before the kill was lost");
    let denial = text
        .lines()
        .find(|l| l.contains("\"decision\":\"forbidden\""))
        .expect("denials on a flow without audit are recorded");
    let denial: serde_json::Value = serde_json::from_str(denial).unwrap();
    assert_eq!(denial["subject"], "ci-deploy");
    assert_eq!(denial["rule"], "*: any of [admin]");
    assert_eq!(denial["status"], 403);

    let (code, out) = verify(&files);
    assert_eq!(code, 0, "{out}");
    // One record edited: caught at its file and line.
    let victim = &files[1];
    let original = std::fs::read_to_string(victim).unwrap();
    std::fs::write(
        victim,
        original.replacen("\"status\":200", "\"status\":204", 1),
    )
    .unwrap();
    let (code, out) = verify(&files);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}:", victim.display())) && out.contains("altered"),
        "{out}"
    );
}

/// 8 clients × 40 audited requests and 10 denied ones; each answer's request id.
async fn load(rl: &Redline) -> Vec<String> {
    let mut tasks = Vec::new();
    for c in 0..8 {
        let deploy = rl.url(&format!("/deploy/{c}"));
        let admin = rl.url("/admin");
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..50 {
                let url = if i % 5 == 4 { &admin } else { &deploy };
                let req = Request::get(url.as_str())
                    .header("x-api-key", "k-live-123")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let (status, h, _) = send(req).await;
                assert!(status == 200 || status == 403, "{status}");
                let id = h["x-request-id"].to_str().unwrap().to_string();
                out.push(id);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// One audited request after another until `stop`, keeping each answer's request id;
/// failures (the kill) end nothing but their own request.
async fn load_until(
    url: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ids: Arc<Mutex<Vec<String>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let req = Request::get(url.as_str())
            .header("x-api-key", "k-live-123")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let Ok(resp) = client().request(req).await else {
            continue;
        };
        if let Some(id) = resp.headers().get("x-request-id") {
            ids.lock().unwrap().push(id.to_str().unwrap().to_string());
        }
    }
}

/// Every audit file's text, in order.
fn trail_text(dir: &std::path::Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

fn verify(files: &[std::path::PathBuf]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["audit", "verify"])
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `redline check` runs `policy_tests:` (exit 2 on a mismatch); `--explain` judges one request.
#[test]
fn policy_is_testable_with_redline_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redline.yaml");
    let yaml = |expect_admin: &str| {
        format!(
            r#"upstream: http://127.0.0.1:3000
auth:
  jwt: {{ jwks_file: jwks.json, roles_claim: realm_access.roles }}
flows:
  - name: users-admin
    match: ["GET /api/users/{{id}}", "DELETE /api/users/{{id}}"]
    access: {{ GET: authenticated, DELETE: [admin] }}
policy_tests:
  - name: viewer cannot delete
    request: DELETE /api/users/5
    claims: {{ sub: a, realm_access: {{ roles: [viewer] }} }}
    expect: forbidden
  - name: anonymous read
    request: GET /api/users/5
    expect: unauthenticated
  - name: admin deletes
    request: DELETE /api/users/5
    claims: {{ sub: root, realm_access: {{ roles: [admin] }} }}
    expect: {expect_admin}
"#
        )
    };
    let check = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    std::fs::write(&config, yaml("allow")).unwrap();
    let (code, out) = check(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("access: GET: authenticated, DELETE: any of [admin]"),
        "{out}"
    );
    assert!(out.contains("3 of 3 passed"), "{out}");

    let claims = r#"{"sub":"a","realm_access":{"roles":["viewer"]}}"#;
    let (code, out) = check(&["--explain", "DELETE /api/users/5", "--claims", claims]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(r#"flow users-admin, rule "DELETE: any of [admin]": forbidden (403)"#),
        "{out}"
    );
    let (_, out) = check(&["--explain", "GET /elsewhere"]);
    assert!(
        out.contains("flow unmatched") && out.contains("allow"),
        "{out}"
    );

    // A policy change that breaks an expectation fails the check.
    std::fs::write(&config, yaml("forbidden")).unwrap();
    let (code, out) = check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("FAIL  admin deletes: expected forbidden"),
        "{out}"
    );
}

/// An upstream that switches to HTTP/2 when offered `Upgrade: h2c` would take whatever
/// the tunnel carries as requests to any path, past every access rule (h2c smuggling).
/// Redline never offers h2c (RFC 9113 §3.1 retired it), so the upgrade request is plain,
/// and the next request on the connection is judged as usual.
#[tokio::test]
async fn an_h2c_upgrade_is_never_offered_so_no_tunnel_skips_the_access_rules() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    let all = seen.lock().unwrap().to_ascii_lowercase();
                    let answer: &[u8] = if all.windows(12).any(|w| w == b"upgrade: h2c") {
                        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let keys = key_file(dir.path(), "shop", "[]");
    let yaml = config_for(
        app,
        &format!(
            "auth:\n  api_keys: {{ file: {} }}\nflows:\n  - name: admin\n    match: /admin\n    access: [admin]\n",
            keys.display()
        ),
    );
    let rl = Redline::start(&yaml);
    let mut c = tokio::net::TcpStream::connect(rl.proxy).await.unwrap();
    let read = async |c: &mut tokio::net::TcpStream| {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    c.write_all(
        b"GET /public HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\n\
          upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await
    .unwrap();
    let first = read(&mut c).await;
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    c.write_all(b"GET /admin HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let second = read(&mut c).await;
    assert!(second.starts_with("HTTP/1.1 401 "), "{second}");
    let upstream = String::from_utf8_lossy(&got.lock().unwrap()).to_ascii_lowercase();
    assert!(!upstream.contains("upgrade"), "{upstream}");
    assert!(!upstream.contains("/admin"), "{upstream}");
}
