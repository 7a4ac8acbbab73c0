//! Admin authentication: who may change (and, with `protect_reads`, read) things through the admin API.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

use crate::config::AdminConfig;

/// Admin paths that stay open whatever `protect_reads` says: scrapers and probes carry no token,
/// and a browser cannot send one when it opens the dashboard page. The page itself holds no
/// data: it asks for the token when `/api/*` answers 401.
pub const ALWAYS_OPEN: [&str; 4] = ["/metrics", "/healthz", "/readyz", "/"];

/// Environment variable holding the admin token; wins over `admin.token_file`.
pub const TOKEN_ENV: &str = "REDLINE_ADMIN_TOKEN";

/// Outcome of checking an admin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Allowed.
    Granted,
    /// No credentials sent where they are required: 401.
    Missing,
    /// Wrong credentials: 403.
    Denied,
    /// No token configured and the admin listener is not loopback: 403.
    NoTokenConfigured,
    /// `admin.token_file` is set but holds no readable token: 403 (fail closed).
    TokenUnavailable,
    /// No token configured and the request comes from a web page on another origin, or
    /// names a `Host` that is not this machine (DNS rebinding): 403.
    CrossOrigin,
}

/// Where the admin token comes from, read per checked request so a rotated secret
/// file applies at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// No token configured anywhere.
    None,
    /// The token to expect.
    Some(String),
    /// A token file is configured but cannot be read or is empty.
    Unavailable(String),
}

/// The admin token: `REDLINE_ADMIN_TOKEN`, else the first line of `admin.token_file`.
pub fn admin_token(admin: &AdminConfig) -> Token {
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        if !t.trim().is_empty() {
            return Token::Some(t.trim().to_string());
        }
    }
    let Some(path) = &admin.token_file else {
        return Token::None;
    };
    match std::fs::read_to_string(path) {
        Ok(text) => match text.lines().next().map(str::trim) {
            Some(t) if !t.is_empty() => Token::Some(t.to_string()),
            _ => Token::Unavailable(format!("{} is empty", path.display())),
        },
        Err(e) => Token::Unavailable(format!("{}: {e}", path.display())),
    }
}

/// Decide whether an admin request may proceed.
///
/// GET/HEAD are open unless `protect_reads` is set; `/metrics`, `/healthz` and
/// `/readyz` are always open. Everything else needs `Authorization: Bearer
/// <token>` when a token is configured, and otherwise is allowed only while the
/// admin listener (`admin_listener`, the address actually bound) is loopback, and then
/// only from this machine's own clients (see [`same_machine_client`]). `host` is the
/// request's authority (HTTP/2 `:authority` or the `Host` header).
pub fn check_request(
    admin: &AdminConfig,
    admin_listener: SocketAddr,
    method: &http::Method,
    path: &str,
    host: Option<&str>,
    headers: &http::HeaderMap,
) -> Access {
    let read = matches!(*method, http::Method::GET | http::Method::HEAD);
    if read && (!admin.protect_reads || ALWAYS_OPEN.contains(&path)) {
        return Access::Granted;
    }
    match admin_token(admin) {
        Token::Some(t) => check_mutation(Some(&t), admin_listener, headers),
        Token::None => match check_mutation(None, admin_listener, headers) {
            Access::Granted if !same_machine_client(host, headers) => Access::CrossOrigin,
            other => other,
        },
        Token::Unavailable(_) => Access::TokenUnavailable,
    }
}

/// Whether a request that carries no credentials comes from a client on this machine
/// rather than from a web page the operator happens to have open.
///
/// Loopback alone does not say so: a page on any site can send a "simple" cross-origin
/// POST (`text/plain`, no preflight) to `127.0.0.1`, and through DNS rebinding it can
/// even become same-origin with the admin port under its own host name. A bearer token
/// stops both (a page can neither know it nor attach it); without one, the browser's
/// own headers have to: Fetch Metadata and `Origin` as in Go's `CrossOriginProtection`,
/// and a `Host` that names this machine, as dev servers (Vite, webpack) check against
/// rebinding. Clients that send none of these (curl, scripts) are let through.
pub fn same_machine_client(host: Option<&str>, headers: &http::HeaderMap) -> bool {
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    if host.is_some_and(|h| !is_loopback_host(h)) {
        return false;
    }
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (header(header::ORIGIN.as_str()), host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// `localhost`, a `*.localhost` name (RFC 6761: always loopback), or a loopback address,
/// with or without a port.
fn is_loopback_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Decide whether a request needing the token may proceed.
///
/// With a token configured, the request needs `Authorization: Bearer <token>`,
/// compared in constant time. Without one, it is allowed only while the
/// admin listener is bound to loopback.
pub fn check_mutation(
    token: Option<&str>,
    admin_listen: SocketAddr,
    headers: &http::HeaderMap,
) -> Access {
    let Some(expected) = token else {
        return if admin_listen.ip().is_loopback() {
            Access::Granted
        } else {
            Access::NoTokenConfigured
        };
    };
    let Some(sent) = bearer(headers) else {
        return Access::Missing;
    };
    if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        Access::Granted
    } else {
        Access::Denied
    }
}

/// The JSON error response for a refused request; 401s carry `WWW-Authenticate` (RFC 6750).
pub fn refusal(access: Access) -> http::Response<Full<Bytes>> {
    let (status, message) = match access {
        Access::Granted | Access::Missing => (
            StatusCode::UNAUTHORIZED,
            "this endpoint needs `Authorization: Bearer <admin token>`",
        ),
        Access::Denied => (StatusCode::FORBIDDEN, "wrong admin token"),
        Access::NoTokenConfigured => (
            StatusCode::FORBIDDEN,
            "no admin token configured and the admin listener is not loopback: \
             set REDLINE_ADMIN_TOKEN or admin.token_file",
        ),
        Access::TokenUnavailable => (
            StatusCode::FORBIDDEN,
            "admin.token_file is configured but holds no readable token; \
             requests needing the token are refused until it does",
        ),
        Access::CrossOrigin => (
            StatusCode::FORBIDDEN,
            "no admin token configured: only clients on this machine and the dashboard \
             itself may do this, and this request came from another web origin or named \
             a Host that is not loopback; set REDLINE_ADMIN_TOKEN or admin.token_file",
        ),
    };
    let mut resp = crate::http_json::error(status, message);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"redline-admin\""),
        );
    }
    resp
}

/// Say at start-up when the admin API is open to the network or its token is unusable.
pub fn warn_at_startup(admin: &AdminConfig, admin_listener: SocketAddr) {
    match admin_token(admin) {
        Token::Some(_) => {}
        Token::Unavailable(reason) => tracing::error!(
            %reason,
            "admin.token_file holds no readable token: admin requests needing it are refused."
        ),
        Token::None if !admin_listener.ip().is_loopback() => tracing::warn!(
            admin = %admin_listener,
            "WARNING: the admin listener is not loopback and no admin token is configured: \
             POST/DELETE are refused. Set REDLINE_ADMIN_TOKEN or admin.token_file."
        ),
        Token::None => {}
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compare without an early exit, so timing does not reveal how much of a guess was right.
///
/// The loop runs over the expected token's length whatever was sent, so the time
/// depends on neither the guess's content nor its length.
pub fn constant_time_eq(sent: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(sent.len() != expected.len());
    for (i, &want) in expected.iter().enumerate() {
        let got = sent.get(i).copied().unwrap_or(!want);
        diff |= std::hint::black_box(got ^ want);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_rules() {
        let lo: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        assert_eq!(
            check_mutation(Some("t0k"), lo, &headers(None)),
            Access::Missing
        );
        assert_eq!(
            check_mutation(Some("t0k"), lo, &headers(Some("Bearer nope"))),
            Access::Denied
        );
        assert_eq!(
            check_mutation(Some("t0k"), lo, &headers(Some("Bearer t0k"))),
            Access::Granted
        );
        assert_eq!(
            check_mutation(Some("t0k"), lo, &headers(Some("bearer  t0k "))),
            Access::Granted
        );
        assert_eq!(
            check_mutation(Some("t0k"), lo, &headers(Some("Basic t0k"))),
            Access::Missing
        );
        assert_eq!(check_mutation(None, lo, &headers(None)), Access::Granted);
        assert_eq!(
            check_mutation(None, any, &headers(None)),
            Access::NoTokenConfigured
        );
    }

    #[test]
    fn only_names_of_this_machine_are_loopback_hosts() {
        for local in [
            "localhost",
            "LOCALHOST:9901",
            "localhost.",
            "app.localhost:8000",
            "127.0.0.1:9901",
            "127.8.9.10",
            "[::1]:9901",
            "[::ffff:127.0.0.1]:9901",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in [
            "evil.example:9901",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9901",
            "10.0.0.1:9901",
            "[::]:9901",
            "0.0.0.0:9901",
            "",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(constant_time_eq(b"", b""));
        // A shorter guess padded with what `!want` gives must still fail.
        assert!(!constant_time_eq(&[0xff], &[0x00, 0x00]));
    }

    #[test]
    fn reads_are_open_unless_protected_and_probes_always() {
        let lo: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        let mut admin = AdminConfig::default();
        let get = http::Method::GET;
        let none = headers(None);
        assert_eq!(
            check_request(&admin, any, &get, "/api/flows", None, &none),
            Access::Granted
        );
        admin.protect_reads = true;
        assert_eq!(
            check_request(&admin, any, &get, "/api/flows", None, &none),
            Access::NoTokenConfigured
        );
        assert_eq!(
            check_request(&admin, lo, &get, "/", None, &none),
            Access::Granted
        );
        for open in ALWAYS_OPEN {
            assert_eq!(
                check_request(&admin, any, &get, open, None, &none),
                Access::Granted
            );
        }
    }

    #[test]
    fn unreadable_token_file_fails_closed() {
        let lo: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let admin = AdminConfig {
            token_file: Some(dir.path().join("missing")),
            ..AdminConfig::default()
        };
        if std::env::var(TOKEN_ENV).is_ok() {
            return; // The environment token wins; nothing to check here.
        }
        assert!(matches!(admin_token(&admin), Token::Unavailable(_)));
        let post = http::Method::POST;
        assert_eq!(
            check_request(&admin, lo, &post, "/api/reload", None, &headers(None)),
            Access::TokenUnavailable
        );
        std::fs::write(dir.path().join("missing"), "s3cret\nignored\n").unwrap();
        assert_eq!(admin_token(&admin), Token::Some("s3cret".into()));
        assert_eq!(
            check_request(
                &admin,
                lo,
                &post,
                "/api/reload",
                None,
                &headers(Some("Bearer s3cret"))
            ),
            Access::Granted
        );
        assert_eq!(refusal(Access::Missing).status(), 401);
        assert!(
            refusal(Access::Missing)
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}
