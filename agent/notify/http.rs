//! The notifier's HTTP client: pooled hyper-util client, rustls (ring, webpki roots) for https receivers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Pooled client used for every receiver.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Response bodies are read (so connections return to the pool) up to this size.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Raw `Retry-After`, if sent.
    pub retry_after: Option<String>,
}

/// Why no answer came back. Never includes the URL (it may embed a secret).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver did not answer in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connecting or talking to the receiver failed.
    #[error("network error: {0}")]
    Network(String),
    /// The URL or a header value cannot make a request; retrying will not help.
    #[error("cannot build the request: {0}")]
    BadRequest(String),
}

impl SendError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SendError::BadRequest(_))
    }
}

/// Build the client with the ring provider (no aws-lc) and Mozilla's roots.
pub fn client() -> Result<HttpClient, rustls::Error> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// POST a JSON `body` with extra `headers`; the whole exchange is bounded by `timeout`.
pub async fn post_json(
    client: &HttpClient,
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Reply, SendError> {
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("Redline/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| SendError::BadRequest(without_url(&e.to_string())))?;
    tokio::time::timeout(timeout, exchange(client, request))
        .await
        .map_err(|_| SendError::Timeout(timeout))?
}

async fn exchange(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
) -> Result<Reply, SendError> {
    let response = client
        .request(request)
        .await
        .map_err(|e| SendError::Network(error_chain(&e)))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Drain so the connection can be reused; the content itself does not matter.
    let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
        .collect()
        .await;
    Ok(Reply {
        status,
        retry_after,
    })
}

/// `error: cause: cause` — hyper's chain names the failure kind, not the URL.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// `http` errors do not quote the URI, but keep the guarantee explicit.
fn without_url(message: &str) -> String {
    message
        .split_whitespace()
        .filter(|word| !word.contains("://"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_refused_is_a_transient_network_error_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client().unwrap();
        let url = format!("http://{addr}/secret-token-path");
        let err = post_json(&client, &url, &[], b"{}".to_vec(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert!(matches!(err, SendError::Network(_)), "{err}");
        assert!(!err.to_string().contains("secret-token-path"), "{err}");
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept and never answer.
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let client = client().unwrap();
        let url = format!("http://{addr}/");
        let err = post_json(&client, &url, &[], vec![], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Timeout(_)), "{err}");
        assert!(err.is_transient());
    }

    #[test]
    fn bad_urls_cannot_be_retried() {
        let err = SendError::BadRequest("invalid uri character".into());
        assert!(!err.is_transient());
    }
}
