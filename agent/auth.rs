//! Admin authentication: who may change things through the admin API.

use std::net::SocketAddr;

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
}

/// Decide whether a mutation (POST/DELETE) may proceed.
///
/// With a token configured, the request needs `Authorization: Bearer <token>`,
/// compared in constant time. Without one, mutations are allowed only while
/// the admin listener is bound to loopback.
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

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compare without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
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
        assert_eq!(check_mutation(None, lo, &headers(None)), Access::Granted);
        assert_eq!(
            check_mutation(None, any, &headers(None)),
            Access::NoTokenConfigured
        );
    }
}
