//! Header rewriting between client and upstream: hop-by-hop removal, X-Forwarded-*, request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::netfmt::push_ip;

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1),
/// plus every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One scan of the few names present instead of nine hashed removals: this runs twice
    // per request and showed in the profile. Bit i set: HOP_BY_HOP[i] is present.
    let mut present = 0u16;
    for name in headers.keys() {
        // Most names have a length no hop-by-hop name has: skip them without comparing.
        let len = name.as_str().len();
        if len >= 32 || HOP_LENGTHS & (1 << len) == 0 {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        remove_connection_named(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The fixed hop-by-hop headers; `connection` must stay first (bit 0 above).
const HOP_NAMES: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static(HOP_NAMES[0]),
    HeaderName::from_static(HOP_NAMES[1]),
    HeaderName::from_static(HOP_NAMES[2]),
    HeaderName::from_static(HOP_NAMES[3]),
    HeaderName::from_static(HOP_NAMES[4]),
    HeaderName::from_static(HOP_NAMES[5]),
    HeaderName::from_static(HOP_NAMES[6]),
    HeaderName::from_static(HOP_NAMES[7]),
    HeaderName::from_static(HOP_NAMES[8]),
];

/// Bit n set: some hop-by-hop name is n bytes long.
const HOP_LENGTHS: u32 = {
    let mut bits = 0u32;
    let mut i = 0;
    while i < HOP_NAMES.len() {
        bits |= 1 << HOP_NAMES[i].len();
        i += 1;
    }
    bits
};

/// Remove the headers the `Connection` header names.
fn remove_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // `close` names no header and the fixed ones go anyway: skipping them means the
        // usual `Connection: keep-alive` costs no allocation. Framing and Host are never
        // a connection's option to remove: `Connection: content-length` would otherwise
        // send a body upstream without its length, to be read as the next request.
        .filter(|t| {
            !t.eq_ignore_ascii_case("close")
                && !NEVER_NAMED.iter().any(|n| t.eq_ignore_ascii_case(n))
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Headers a `Connection` option cannot remove: they frame the message or name its target.
const NEVER_NAMED: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// The protocol a request wants to switch to (`Connection: upgrade` + `Upgrade: x`), if any.
///
/// Only `websocket` (Envoy, too, tunnels only the upgrade types it is configured for):
/// after a 101 every byte is tunnelled unjudged, and a protocol whose tunnel carries HTTP
/// again (`h2c` above all, which RFC 9113 §3.1 retired) would take every later request, to
/// any path, past the flows and access rules. Any other upgrade request goes up as a plain
/// one, and a 101 to it is a 502.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers
            .get(header::UPGRADE)
            .filter(|p| only_websocket(p.as_bytes()))
            .cloned()
    } else {
        None
    }
}

/// `Upgrade` names WebSocket and nothing else (RFC 6455 §4.1: `Upgrade: websocket`).
fn only_websocket(value: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .all(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
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
    let prev = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::as_bytes)
        .filter(|p| !p.trim_ascii().is_empty());
    let mut xff = Vec::with_capacity(prev.map_or(0, |p| p.len() + 2) + 39);
    if let Some(prev) = prev {
        xff.extend_from_slice(prev);
        xff.extend_from_slice(b", ");
    }
    push_ip(&mut xff, client);
    // Built in one buffer handed over without a copy: no fmt machinery on the request path.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    // `entry`: one lookup for "is it there" and "put it there".
    headers
        .entry(X_FORWARDED_PROTO.clone())
        .or_insert_with(|| HeaderValue::from_static("http"));
    if let (http::header::Entry::Vacant(slot), Some(host)) =
        (headers.entry(X_FORWARDED_HOST.clone()), host)
    {
        slot.insert(host.clone());
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
    fn the_length_prefilter_knows_every_hop_by_hop_name() {
        for h in &HOP_BY_HOP {
            assert_ne!(HOP_LENGTHS & (1 << h.as_str().len()), 0, "{h}");
        }
    }

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
    fn connection_cannot_remove_framing_or_host() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, Content-Length, host, transfer-encoding, x-hop"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("43"));
        h.insert(header::HOST, HeaderValue::from_static("shop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::CONTENT_LENGTH], "43");
        assert_eq!(h[header::HOST], "shop");
        assert!(!h.contains_key("x-hop"));
        assert!(!h.contains_key(header::CONNECTION));
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
    fn client_addresses_are_written_like_display() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes());
        }
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, "10.20.3.4".parse().unwrap(), None);
        assert_eq!(h["x-forwarded-for"], "10.20.3.4");
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
