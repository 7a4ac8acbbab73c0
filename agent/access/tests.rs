use serde_json::json;

use super::jwt::identity_from_claims;
use super::*;

fn access(yaml: &str) -> AccessConfig {
    yaml_serde::from_str(yaml).unwrap()
}

fn who(roles: &[&str]) -> Credential {
    let roles = roles.iter().map(|r| r.to_string()).collect();
    Credential::Valid(Arc::new(Identity::new("a".into(), roles).unwrap()))
}

#[test]
fn roles_rule_admits_holders_only() {
    let rule = access("[admin, ops]");
    assert_eq!(decide(&rule, "GET", &who(&["ops"])).verdict, Verdict::Allow);
    assert_eq!(
        decide(&rule, "GET", &who(&["viewer"])).verdict,
        Verdict::Forbid
    );
    let missing = decide(&rule, "GET", &Credential::Missing);
    assert_eq!(
        missing.verdict,
        Verdict::Unauthenticated { token_given: false }
    );
    let bad = decide(&rule, "GET", &Credential::Invalid("x".into()));
    assert_eq!(bad.verdict, Verdict::Unauthenticated { token_given: true });
    assert_eq!(missing.rule, "*: any of [admin, ops]");
}

#[test]
fn per_method_rules_deny_unlisted_methods() {
    let rule = access("{ GET: public, delete: [admin] }");
    assert_eq!(
        decide(&rule, "GET", &Credential::Missing).verdict,
        Verdict::Allow
    );
    let d = decide(&rule, "DELETE", &who(&["viewer"]));
    assert_eq!(
        (d.verdict, d.rule.as_str()),
        (Verdict::Forbid, "DELETE: any of [admin]")
    );
    let d = decide(&rule, "POST", &who(&["admin"]));
    assert_eq!(d.verdict, Verdict::Forbid, "{}", d.rule);
}

#[test]
fn bad_rules_are_refused() {
    for bad in ["anyone", "[]", "{ GET: nobody }", "[\"a b\"]"] {
        assert!(yaml_serde::from_str::<AccessConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn roles_come_from_a_nested_claim_and_scope() {
    let claims = json!({"sub": "u1", "realm_access": {"roles": ["admin"]}, "scope": "read write"});
    let path = ["realm_access".to_string(), "roles".to_string()];
    let id = identity_from_claims(claims.as_object().unwrap(), &path).unwrap();
    assert_eq!(id.roles, ["admin", "read", "write"]);
    assert_eq!(id.roles_value, "admin,read,write");
}

#[test]
fn a_subject_that_cannot_be_a_header_is_refused() {
    let claims = json!({"sub": "a\r\nx-redline-roles: admin"});
    assert!(identity_from_claims(claims.as_object().unwrap(), &["roles".into()]).is_err());
}

#[test]
fn bearer_parsing() {
    let mut h = HeaderMap::new();
    assert_eq!(bearer(&h), None);
    h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
    assert_eq!(bearer(&h), None);
    h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  t.k.n "));
    assert_eq!(bearer(&h), Some(Some("t.k.n")));
    h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
    assert_eq!(bearer(&h), Some(None));
}

#[test]
fn the_shipped_full_example_passes_its_own_policy_tests() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/full.yaml");
    let config = crate::config::Config::load(&path).unwrap();
    let (report, failed) = run_policy_tests(&config);
    assert_eq!(failed, 0, "{report}");
}

#[test]
fn the_identity_cache_is_bounded_and_forgets_expired_tokens() {
    let cache = IdentityCache::default();
    let id = Arc::new(Identity::new("a".into(), vec![]).unwrap());
    for i in 0..cache::CAPACITY as u64 + 10 {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&i.to_le_bytes());
        cache.put(hash, id.clone(), 100, 50);
    }
    assert_eq!(
        cache.len(),
        cache::CAPACITY,
        "full: new tokens are not cached"
    );
    // At 200 every entry has expired: the next token makes room by dropping them.
    cache.put([9; 32], id.clone(), 300, 200);
    assert_eq!(cache.len(), 1);
    assert!(cache.get(&[9; 32], 250).is_some());
    assert!(cache.get(&[9; 32], 300).is_none(), "never served past exp");
    cache.put([8; 32], id, 200, 200);
    assert!(
        cache.get(&[8; 32], 100).is_none(),
        "an expired token is not cached"
    );
}

/// HS256 is for development: it verifies only when listed, and only with a `kty: oct` key.
#[tokio::test]
async fn hs256_needs_to_be_listed_and_an_oct_key() {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header, encode};

    let dir = tempfile::tempdir().unwrap();
    let secret = b"development-only-secret-of-32-bytes!";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let jwks = json!({"keys": [{"kty": "oct", "k": k, "kid": "h1", "alg": "HS256"}]});
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let exp = jsonwebtoken::get_current_timestamp() + 600;
    let claims = json!({"sub": "dev", "roles": ["admin"], "exp": exp});
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("h1".into());
    let token = encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
    let config = |algorithms: &[&str]| crate::config::JwtConfig {
        jwks_file: Some(jwks_file.clone()),
        jwks_url: None,
        jwks_refresh: std::time::Duration::from_secs(300),
        jwks_min_refresh: std::time::Duration::from_secs(10),
        issuer: None,
        audience: None,
        algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
        leeway: std::time::Duration::from_secs(30),
        roles_claim: "roles".into(),
    };
    let listed = jwt::Verifier::new(&config(&["HS256"])).unwrap();
    let (id, _) = listed.verify(&token).await.unwrap();
    assert_eq!(
        (id.subject.as_str(), id.roles.as_slice()),
        ("dev", &["admin".to_string()][..])
    );
    let default = jwt::Verifier::new(&config(&["RS256", "ES256", "EdDSA"])).unwrap();
    let refused = default.verify(&token).await.unwrap_err();
    assert!(refused.contains("not accepted"), "{refused}");
}

/// Without `auth.jwt`, an app's own bearer token does not stand in the way of an API key.
#[tokio::test]
async fn api_keys_alone_leave_authorization_to_the_app() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    let hash: String = sha2::Sha256::digest(b"k1")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &file,
        format!("- {{ name: ci, sha256: {hash}, roles: [deploy] }}\n"),
    )
    .unwrap();
    let config: AuthConfig =
        yaml_serde::from_str(&format!("api_keys: {{ file: {} }}", file.display())).unwrap();
    let access = Access::new(&config).unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer app-session"),
    );
    assert!(matches!(access.identify(&h, 0).await, Credential::Missing));
    h.insert("x-api-key", HeaderValue::from_static("k1"));
    let Credential::Valid(id) = access.identify(&h, 0).await else {
        panic!("the key was not accepted");
    };
    assert_eq!(
        (id.subject.as_str(), id.roles_value.to_str().unwrap()),
        ("ci", "deploy")
    );
    h.insert("x-api-key", HeaderValue::from_static("k2"));
    assert!(matches!(
        access.identify(&h, 0).await,
        Credential::Invalid(_)
    ));
}

/// A reload keeps the verifier and its cached identities only while the JWT settings and
/// the JWKS file's text stay the same.
#[tokio::test]
async fn a_reload_keeps_cached_identities_only_while_the_jwt_settings_hold() {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header, encode};

    let dir = tempfile::tempdir().unwrap();
    let secret = b"development-only-secret-of-32-bytes!";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let jwks = json!({"keys": [{"kty": "oct", "k": k, "kid": "h1", "alg": "HS256"}]});
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let exp = jsonwebtoken::get_current_timestamp() + 600;
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("h1".into());
    let claims = json!({"sub": "dev", "exp": exp});
    let token = encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
    let config = |leeway: &str| -> AuthConfig {
        let yaml = format!(
            "jwt: {{ jwks_file: {}, algorithms: [HS256], leeway: {leeway} }}",
            jwks_file.display()
        );
        yaml_serde::from_str(&yaml).unwrap()
    };
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    let first = Access::new(&config("30s")).unwrap();
    assert!(matches!(first.identify(&h, 0).await, Credential::Valid(_)));
    assert_eq!(first.cached(), 1);

    let same = Access::renewed(&config("30s"), Some(&first)).unwrap();
    assert_eq!(
        same.cached(),
        1,
        "same settings, same file: the cache is kept"
    );
    let other = Access::renewed(&config("5s"), Some(&same)).unwrap();
    assert_eq!(
        other.cached(),
        0,
        "another leeway: identities are verified again"
    );
    std::fs::write(&jwks_file, format!("{jwks}\n")).unwrap();
    let edited = Access::renewed(&config("30s"), Some(&same)).unwrap();
    assert_eq!(edited.cached(), 0, "the JWKS file changed: keys read again");
    assert!(matches!(edited.identify(&h, 0).await, Credential::Valid(_)));
}
