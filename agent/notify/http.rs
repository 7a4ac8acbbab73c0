//! The notifier's HTTP client: pooled hyper-util client, rustls (ring, webpki roots) for https receivers.
//!
//! A send that got no answer is a [`crate::error::Error`], as a failed proxied request
//! or export is: a receiver is one more upstream, and `retry.rs` reads the error's
//! retry verdict to decide whether to try again. Messages never include the URL (it
//! may embed a secret).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, ErrorType, Retry};

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

/// The receiver did not answer in time; it may have taken the notification.
fn timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorType::Timeout,
        format!("no response within {timeout:?}"),
    )
    .retry(Retry::IfIdempotent)
}

/// The URL or a header value cannot make a request; retrying will not help. The cause
/// is kept as scrubbed text, not as the `http` error, so the no-URL guarantee does not
/// rest on how that error formats itself.
fn unbuildable(e: &http::Error) -> Error {
    let what = format!("cannot build the request: {}", without_url(&e.to_string()));
    Error::new(ErrorType::BadRequest, what)
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
) -> Result<Reply, Error> {
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
        .map_err(|e| unbuildable(&e))?;
    tokio::time::timeout(timeout, exchange(client, request))
        .await
        .map_err(|_| timed_out(timeout))?
}

async fn exchange(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
) -> Result<Reply, Error> {
    // hyper's chain names the failure kind, not the URL.
    let response = client
        .request(request)
        .await
        .map_err(|e| Error::request_failed("network error", e))?;
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
    async fn connection_refused_is_a_retryable_unavailable_upstream_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client().unwrap();
        let url = format!("http://{addr}/secret-token-path");
        let err = post_json(&client, &url, &[], b"{}".to_vec(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.retry_verdict(), Retry::Always, "nothing was sent");
        assert_eq!(err.kind(), ErrorType::UpstreamUnavailable, "{err}");
        let source = std::error::Error::source(&err).expect("the cause is kept");
        assert!(
            source.is::<hyper_util::client::legacy::Error>(),
            "{source:?}"
        );
        let text = err.chain().to_string();
        assert!(text.starts_with("network error: "), "{text}");
        assert!(!text.contains("secret-token-path"), "{text}");
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
        assert_eq!(err.kind(), ErrorType::Timeout, "{err}");
        assert_eq!(
            err.retry_verdict(),
            Retry::IfIdempotent,
            "it may have arrived"
        );
    }

    #[tokio::test]
    async fn bad_urls_cannot_be_retried() {
        let client = client().unwrap();
        let url = "http://exa mple/secret-token-path";
        let err = post_json(&client, url, &[], vec![], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorType::BadRequest, "{err}");
        assert_eq!(err.retry_verdict(), Retry::Never);
        assert!(!err.chain().to_string().contains("secret"), "{err}");
    }
}
