//! One connection of the load generator: HTTP/1.1 over TCP or TLS, reopened after a failure.
//!
//! Each generator connection is owned by one task and carries one request at a time, as
//! wrk2's connections do: there is no pool to check out from and nothing shared between
//! connections, so a request's latency is the target's plus the wire, not the client's.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::ConfigBuilderExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::BaselineError;
use super::workload::PreparedRequest;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status.
    Status(u16),
    /// Connect, TLS, write or read failed.
    Failed,
    /// The flow's timeout passed first.
    TimedOut,
}

/// Where the connections go: host, port, and TLS when the target is `https://`.
pub struct Target {
    host: String,
    port: u16,
    /// The `Host` header: the target's authority, as a browser would send it.
    authority: http::HeaderValue,
    /// The target's own path, put before every request's (`http://host/prefix`), or empty.
    prefix: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Target {
    /// Parse `http://host[:port]` or `https://host[:port]`; `ca` (PEM) replaces the Mozilla
    /// roots for `https`, so a private CA is then the only one trusted.
    pub fn new(base: &str, ca: Option<&Path>) -> Result<Target, BaselineError> {
        let bad = |m: String| BaselineError::Target(format!("--target {base:?}: {m}"));
        let uri: http::Uri = base.parse().map_err(|e| bad(format!("{e}")))?;
        let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
            return Err(bad("expected http(s)://HOST[:PORT]".into()));
        };
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected http(s)://HOST[:PORT]".into())),
        };
        let host = host.trim_matches(['[', ']']).to_string();
        let tls = if https {
            let name = match host.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.clone()).map_err(|e| bad(e.to_string()))?,
            };
            Some((TlsConnector::from(Arc::new(tls_config(ca)?)), name))
        } else {
            None
        };
        Ok(Target {
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: http::HeaderValue::from_str(authority.as_str())
                .map_err(|e| bad(e.to_string()))?,
            prefix: uri.path().trim_end_matches('/').to_string(),
            host,
            tls,
        })
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        // Small requests must not wait for Nagle's algorithm: that would be latency we add.
        tcp.set_nodelay(true)?;
        let Some((connector, name)) = &self.tls else {
            return handshake(tcp).await;
        };
        handshake(connector.connect(name.clone(), tcp).await?).await
    }
}

/// A connection could not carry a request; it is closed and the next request reopens it.
#[derive(Debug)]
struct Failure;

impl From<std::io::Error> for Failure {
    fn from(_: std::io::Error) -> Failure {
        Failure
    }
}

impl From<hyper::Error> for Failure {
    fn from(_: hyper::Error) -> Failure {
        Failure
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The rustls client settings: the roots in `ca`, or the Mozilla roots; HTTP/1.1 by ALPN.
fn tls_config(ca: Option<&Path>) -> Result<ClientConfig, BaselineError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BaselineError::Target(format!("TLS setup: {e}")))?;
    let builder = match ca {
        Some(path) => builder.with_root_certificates(roots(path)?),
        None => builder.with_webpki_roots(),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn roots(path: &Path) -> Result<RootCertStore, BaselineError> {
    let bad = |reason: String| BaselineError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        store
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no PEM certificate in it (--ca)".into()));
    }
    Ok(store)
}

/// One generator connection, opened on first use.
#[derive(Default)]
pub struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// Open the connection now if it is not open, so its first measured request does not
    /// pay for the TCP (and TLS) handshake; a failure is left for that request to meet.
    pub async fn open(&mut self, target: &Target) {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.sender = target.open().await.ok();
        }
    }

    /// Send `request` and read the whole response, giving up at `deadline`.
    pub async fn exchange(
        &mut self,
        target: &Target,
        request: &PreparedRequest,
        deadline: Instant,
    ) -> Outcome {
        // Taken out while in use: a request cut short (timeout, step drain) drops the
        // connection with it, since an HTTP/1.1 connection cannot carry another then.
        let sender = self.sender.take();
        match tokio::time::timeout_at(deadline, send(target, sender, request)).await {
            Ok(Ok((sender, status))) => {
                self.sender = Some(sender).filter(|s| !s.is_closed());
                Outcome::Status(status)
            }
            Ok(Err(Failure)) => Outcome::Failed,
            Err(_) => Outcome::TimedOut,
        }
    }
}

async fn send(
    target: &Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    request: &PreparedRequest,
) -> Result<(SendRequest<Full<Bytes>>, u16), Failure> {
    let mut sender = match sender.filter(|s| !s.is_closed()) {
        Some(sender) => sender,
        None => target.open().await?,
    };
    sender.ready().await?;
    let response = sender.send_request(build(target, request)?).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok((sender, status))
}

fn build(
    target: &Target,
    request: &PreparedRequest,
) -> Result<http::Request<Full<Bytes>>, Failure> {
    let uri = if target.prefix.is_empty() {
        http::Uri::try_from(request.path.as_str())
    } else {
        http::Uri::try_from(format!("{}{}", target.prefix, request.path))
    };
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(uri.map_err(|_| Failure)?);
    if let Some(headers) = builder.headers_mut() {
        headers.extend(request.headers.clone());
        headers
            .entry(http::header::HOST)
            .or_insert_with(|| target.authority.clone());
    }
    builder
        .body(Full::new(request.body.clone()))
        .map_err(|_| Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_their_port_path_prefix_and_host_header() {
        let t = Target::new("http://localhost:8080/api/", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("localhost", 8080, "/api")
        );
        assert_eq!(t.authority, "localhost:8080");
        assert!(t.tls.is_none());
        let t = Target::new("https://[::1]", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("::1", 443, "")
        );
        assert!(matches!(t.tls, Some((_, ServerName::IpAddress(_)))));
        assert!(Target::new("ftp://127.0.0.1", None).is_err());
        let missing = Target::new("https://localhost", Some(Path::new("/nonexistent/ca.pem")));
        assert!(missing.is_err());
    }
}
