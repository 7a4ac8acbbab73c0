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

/// POST a JSON `body` with extra `headers`; the whole exchange is bounded by `timeout`,
/// and once a status is in, running out of time reading the body does not undo it.
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
    let deadline = tokio::time::Instant::now() + timeout;
    // hyper's chain names the failure kind, not the URL.
    let response = tokio::time::timeout_at(deadline, client.request(request))
        .await
        .map_err(|_| timed_out(timeout))?
        .map_err(|e| Error::request_failed("network error", e))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Drain so the connection can be reused; the content itself does not matter, and a
    // receiver that trickles or never ends its body has answered all the same: a timeout
    // here would turn its 2xx into a retry, and a retry into a second page.
    let drain = Limited::new(response.into_body(), MAX_RESPONSE_BODY).collect();
    let _ = tokio::time::timeout_at(deadline, drain).await;
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

#[cfg(test)]
mod hostile_receivers {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A receiver that reads a request and answers `head`, then runs `body` on the socket.
    async fn receiver<F, Fut>(head: String, body: F) -> std::net::SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(body);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (head, body) = (head.clone(), body.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if s.write_all(head.as_bytes()).await.is_ok() {
                        body(s).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_redirect_is_the_answer_and_is_not_followed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_addr = elsewhere.local_addr().unwrap();
        let seen = calls.clone();
        tokio::spawn(async move {
            while elsewhere.accept().await.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere_addr}/steal\r\ncontent-length: 0\r\n\r\n"
        );
        let addr = receiver(head, |_| async {}).await;
        let reply = post_json(
            &client().unwrap(),
            &format!("http://{addr}/hook"),
            &[],
            b"{}".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 307);
        // A client that followed it would have done so before answering.
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    /// A 2xx is a delivery, whatever the body does next: endless or trickling, it is read
    /// up to a bound and a deadline, never into a retry (which would page again).
    #[tokio::test]
    async fn an_endless_or_trickling_body_after_a_2xx_is_still_a_delivery() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
        let endless = receiver(chunked.clone(), |mut s| async move {
            let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
            while s.write_all(chunk.as_bytes()).await.is_ok() {}
        })
        .await;
        let trickle = receiver(chunked, |mut s| async move {
            while s.write_all(b"1\r\nx\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let client = client().unwrap();
        for addr in [endless, trickle] {
            let started = Instant::now();
            let timeout = Duration::from_millis(500);
            let url = format!("http://{addr}/hook");
            let reply = post_json(&client, &url, &[], b"{}".to_vec(), timeout).await;
            assert_eq!(reply.map(|r| r.status).ok(), Some(200), "{addr}");
            assert!(started.elapsed() < timeout + Duration::from_secs(2));
        }
    }
}
