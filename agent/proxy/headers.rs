//! Header rewriting between client and upstream: hop-by-hop removal, X-Forwarded-*, request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1),
/// plus every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The protocol a request wants to switch to (`Connection: upgrade` + `Upgrade: x`), if any.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Restore the two headers an upgrade needs after hop-by-hop stripping.
pub fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Append the client to `X-Forwarded-For`; set `X-Forwarded-Proto`/`-Host` unless a front proxy already did.
///
/// Appending (as nginx's `$proxy_add_x_forwarded_for` does) keeps the real client
/// address visible to the app when Redline sits behind an ingress.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: std::net::IpAddr,
    host: Option<&HeaderValue>,
) {
    let ip = client.to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if let (false, Some(host)) = (headers.contains_key(&X_FORWARDED_HOST), host) {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// The client's `x-request-id` when it is sane, else a fresh random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    new_request_id()
}

/// 32 lowercase hex characters from a fast thread-local generator.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (i * 4)) & 0xf) as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        set_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            Some(&HeaderValue::from_static("shop")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop");
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).len(), 32);
        h.insert("x-request-id", HeaderValue::from_static("abc-1"));
        assert_eq!(request_id(&h), "abc-1");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
    }
}
