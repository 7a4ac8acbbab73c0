//! hyper's HTTP/1.1 client and server over an in-memory pipe: the oracle's side of each property.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
}

pub(super) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// An error and its sources, for matching hyper's messages.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What hyper's HTTP/1.1 client made of a response.
#[derive(Debug)]
pub(super) struct Hyper {
    /// Status of the final response head, or why there was none.
    pub(super) status: Result<u16, String>,
    /// The body's data, or the error reading it.
    pub(super) body: Result<Vec<u8>, String>,
    /// The connection then ended cleanly: no stray byte after the response.
    pub(super) clean: bool,
}

/// Send `method /` with hyper's client and answer with `pieces`, one write each, then EOF.
pub(super) fn hyper_client(method: &http::Method, pieces: &[&[u8]]) -> Hyper {
    block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .expect("handshake");
        let conn = tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method.clone())
            .uri("/")
            .header("host", "oracle")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let exchange = async {
            let resp = send.send_request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await;
            Ok::<_, String>((
                status,
                body.map(|b| b.to_bytes().to_vec()).map_err(|e| chain(&e)),
            ))
        };
        let feed = async {
            // The answer goes out once the request came in, in pieces hyper reads apart.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            for piece in pieces {
                if server.write_all(piece).await.is_err() {
                    return;
                }
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
            let _ = server.shutdown().await;
        };
        let (answer, ()) = tokio::join!(exchange, feed);
        let clean = matches!(
            tokio::time::timeout(Duration::from_secs(2), conn).await,
            Ok(Ok(Ok(())))
        );
        drop(send);
        let (status, body) = match answer {
            Ok((status, body)) => (Ok(status), body),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        Hyper {
            status,
            body,
            clean,
        }
    })
}

/// The body length hyper's HTTP/1.1 server takes from a request with this `Content-Length`
/// line value, or `None` if it refuses the request.
pub(super) fn hyper_server_length(value: &[u8]) -> Option<u64> {
    block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let service =
            hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                use hyper::body::Body;
                let n = req
                    .body()
                    .size_hint()
                    .exact()
                    .map_or("none".into(), |n| n.to_string());
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(n))))
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let conn = tokio::spawn(conn);
        let head = [
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: ",
            value,
            b"\r\n\r\n",
        ]
        .concat();
        client.write_all(&head).await.expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        let read = async {
            // Until the body of the answer (its length is at most 20 digits) is in.
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&answer);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "));
                    if len.and_then(|l| l.parse::<usize>().ok()) == Some(body.len()) {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .expect("hyper answered");
        conn.abort();
        let text = String::from_utf8_lossy(&answer).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200 ") => {
                Some(body.parse().expect("length"))
            }
            _ => {
                // 400, or 431 for a length over hyper's maximum.
                assert!(text.starts_with("HTTP/1.1 4"), "{text:?}");
                None
            }
        }
    })
}
