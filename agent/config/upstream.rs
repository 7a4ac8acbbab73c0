//! The upstream app Redline proxies to: an `http://host[:port]` origin, and how many connections Redline opens to it.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Deserializer};

use super::de::{Parse, positive_duration};

/// The upstream origin, normalised to `scheme://host:port/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `scheme://authority/`, with the default port filled in.
    pub uri: Uri,
    /// Always `http` for now.
    pub scheme: String,
    /// `host:port`, with the default port filled in (IPv6 hosts keep their brackets).
    pub authority: String,
}

const EXPECTED: &str = "expected http://HOST[:PORT], e.g. http://127.0.0.1:3000";

impl Upstream {
    /// Parse and check an upstream URL; used for the file, `--upstream` and `REDLINE_UPSTREAM`.
    pub fn parse(s: &str) -> Result<Upstream, String> {
        let text = s.trim();
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("invalid upstream URL {text:?} ({e}); {EXPECTED}"))?;
        check_scheme(text, &uri)?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("upstream URL {text:?} has no host; {EXPECTED}"))?;
        check_origin_only(text, &uri, authority)?;
        let port = port_of(text, authority)?;
        let authority = format!("{}:{port}", authority.host());
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("invalid upstream URL {text:?} ({e}); {EXPECTED}"))?;
        Ok(Upstream {
            uri,
            scheme: "http".into(),
            authority,
        })
    }
}

fn check_scheme(text: &str, uri: &Uri) -> Result<(), String> {
    match uri.scheme_str() {
        Some("http") => Ok(()),
        Some("https") => Err(format!(
            "upstream URL {text:?}: https upstreams are not supported yet; use http:// \
             (Redline is meant to sit next to the app, on loopback or a pod network)"
        )),
        Some(other) => Err(format!(
            "upstream URL {text:?} has unsupported scheme {other:?}; {EXPECTED}"
        )),
        None => Err(format!("upstream URL {text:?} has no scheme; {EXPECTED}")),
    }
}

fn check_origin_only(
    text: &str,
    uri: &Uri,
    authority: &http::uri::Authority,
) -> Result<(), String> {
    if authority.as_str().contains('@') {
        return Err(format!(
            "upstream URL {text:?} contains credentials, which are not supported; {EXPECTED}"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!("upstream URL {text:?} has no host; {EXPECTED}"));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(format!(
            "upstream URL {text:?} has a path; paths are not supported (requests keep their own path); {EXPECTED}"
        ));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!(
            "upstream URL {text:?} has a query string or fragment, which is not supported; {EXPECTED}"
        ));
    }
    Ok(())
}

/// The explicit port, or 80; the http crate accepts any port text, so it is checked here.
fn port_of(text: &str, authority: &http::uri::Authority) -> Result<u16, String> {
    let after_host = authority
        .as_str()
        .strip_prefix(authority.host())
        .unwrap_or("");
    let Some(port) = after_host.strip_prefix(':') else {
        return Ok(80);
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "upstream URL {text:?} has an invalid port {port:?}; {EXPECTED}"
        )),
    }
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(s: &str) -> Result<Upstream, String> {
        Upstream::parse(s)
    }
}

impl fmt::Display for Upstream {
    /// `http://host:port`, without the trailing slash, as users write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Upstream, D::Error> {
        Parse::new(
            "an upstream URL such as http://127.0.0.1:3000",
            Upstream::parse,
        )
        .one(d)
    }
}

/// `upstream_connections:` (a Redline extension): how connections to the upstream are
/// opened, so a burst of requests cannot knock over the app it is meant to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { max_connecting: 4, connect_timeout: 5s }"
)]
pub struct UpstreamConnections {
    /// Connections being opened at once, each until its first response head arrives or
    /// 250ms after connecting (default 4: at most what a backlog-5 dev server's accept
    /// queue holds).
    pub max_connecting: NonZeroUsize,
    /// Open connections in all, idle ones included (default 0: no cap).
    pub max: usize,
    /// Requests waiting for a connection; more are refused with 503 (default 1024).
    pub queue: usize,
    /// Longest wait for a connection; then 503 `overloaded` (default 5s).
    #[serde(deserialize_with = "positive_duration")]
    pub queue_timeout: Duration,
    /// Longest TCP connect; then 502 `upstream_unavailable` (default 5s).
    #[serde(deserialize_with = "positive_duration")]
    pub connect_timeout: Duration,
}

impl Default for UpstreamConnections {
    fn default() -> Self {
        UpstreamConnections {
            max_connecting: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            max: 0,
            queue: 1024,
            queue_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}
