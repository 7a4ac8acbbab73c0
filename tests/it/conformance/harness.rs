//! The battery's peers: a raw-socket upstream that records every byte it receives and
//! answers by path, and a raw client that reads responses byte by byte, strictly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a client waits for one response (or for a close) before calling it a failure.
pub const WAIT: Duration = Duration::from_secs(2);

/// One answer of the scripted upstream.
#[derive(Clone)]
pub struct Reply {
    pub bytes: Vec<u8>,
    /// Close the connection after writing `bytes` (else read the next request on it).
    pub close: bool,
    /// Then, once the test opens this gate, write these bytes too.
    pub then: Option<(Arc<Notify>, Vec<u8>)>,
}

/// The answer the upstream gives any request it has no script for: `up:<target>`.
pub fn echo(target: &str) -> Reply {
    let body = format!("up:{target}");
    let bytes = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Reply {
        bytes: bytes.into_bytes(),
        close: false,
        then: None,
    }
}

/// A request as the upstream parsed it from its connection.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted connection it came on (1, 2, …).
    pub conn: usize,
    pub target: String,
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct Log {
    accepted: usize,
    /// Every read from every connection, in arrival order.
    chunks: Vec<(usize, Vec<u8>)>,
    /// Every complete request, in arrival order.
    requests: Vec<Seen>,
}

/// Where the upstream's log stood when a case began.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    chunks: usize,
    requests: usize,
}

/// A raw-socket upstream: parses requests (Content-Length or chunked) and answers each one
/// from `script` by target, or with [`echo`].
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Upstream {
    pub async fn start(script: HashMap<String, Reply>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Log>> = Arc::default();
        let script = Arc::new(script);
        let up = Upstream { addr, log };
        let shared = up.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = {
                    let mut log = shared.log.lock().unwrap();
                    log.accepted += 1;
                    log.accepted
                };
                tokio::spawn(shared.clone().serve(stream, id, script.clone()));
            }
        });
        up
    }

    async fn serve(self, mut stream: TcpStream, id: usize, script: Arc<HashMap<String, Reply>>) {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            buf.extend_from_slice(&chunk[..n]);
            self.log
                .lock()
                .unwrap()
                .chunks
                .push((id, chunk[..n].to_vec()));
            loop {
                let (len, target) = match request_len(&buf) {
                    Ok(Some(found)) => found,
                    Ok(None) => break,
                    Err(()) => {
                        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream400";
                        let _ = stream.write_all(bad).await;
                        return;
                    }
                };
                let raw: Vec<u8> = buf.drain(..len).collect();
                let reply = script
                    .get(&target)
                    .cloned()
                    .unwrap_or_else(|| echo(&target));
                self.log.lock().unwrap().requests.push(Seen {
                    conn: id,
                    target,
                    raw,
                });
                if stream.write_all(&reply.bytes).await.is_err() {
                    return;
                }
                if let Some((gate, more)) = &reply.then {
                    gate.notified().await;
                    if stream.write_all(more).await.is_err() {
                        return;
                    }
                }
                if reply.close {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
    }

    pub fn mark(&self) -> Mark {
        let log = self.log.lock().unwrap();
        Mark {
            chunks: log.chunks.len(),
            requests: log.requests.len(),
        }
    }

    /// Every byte received since `mark`, on any connection, in arrival order.
    pub fn bytes_since(&self, mark: Mark) -> Vec<u8> {
        let log = self.log.lock().unwrap();
        log.chunks[mark.chunks..]
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect()
    }

    /// The complete requests received since `mark`.
    pub fn requests_since(&self, mark: Mark) -> Vec<Seen> {
        self.log.lock().unwrap().requests[mark.requests..].to_vec()
    }
}

/// Length and target of the complete request at the start of `buf`; `None` while partial.
fn request_len(buf: &[u8]) -> Result<Option<(usize, String)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let target = req.path.unwrap_or("").to_string();
    let chunked = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value
                .to_ascii_lowercase()
                .trim_ascii_end()
                .ends_with(b"chunked")
    });
    if !chunked {
        let length = match req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        {
            Some(h) => std::str::from_utf8(h.value.trim_ascii())
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(())?,
            None => 0,
        };
        return Ok((buf.len() >= head + length).then_some((head + length, target)));
    }
    Ok(chunked_len(&buf[head..])?.map(|n| (head + n, target)))
}

/// Length of the chunked body (with trailers) at the start of `buf`; `None` while partial.
pub fn chunked_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut at = 0;
    loop {
        let (n, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(()),
        };
        at += n;
        if size == 0 {
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| ())?;
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(());
        }
        at += size + 2;
    }
}

/// The data of a whole chunked body (extensions and trailers dropped).
pub fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Ok(httparse::Status::Complete((n, size))) = httparse::parse_chunk_size(raw.get(at..)?)
        else {
            return None;
        };
        at += n;
        if size == 0 {
            return (chunked_len(raw) == Ok(Some(raw.len()))).then_some(data);
        }
        let end = at + usize::try_from(size).ok()?;
        data.extend_from_slice(raw.get(at..end)?);
        at = end + 2;
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes for a failure message: printable, escapes visible, long runs shortened.
pub fn show(bytes: &[u8]) -> String {
    let s = bytes.escape_ascii().to_string();
    if s.len() > 700 {
        format!(
            "{}…({} bytes)…{}",
            &s[..500],
            bytes.len(),
            &s[s.len() - 150..]
        )
    } else {
        s
    }
}

/// A response as the client received it.
#[derive(Debug, Default)]
pub struct Resp {
    pub status: u16,
    /// Lowercase names, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body as it came on the wire (chunk framing included).
    pub body: Vec<u8>,
    /// Interim (1xx) statuses that came before this one.
    pub interim: Vec<u16>,
    /// The body ended per its framing (not cut by a close, not malformed).
    pub complete: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn summary(&self) -> String {
        let mut s = format!("{}", self.status);
        if !self.interim.is_empty() {
            s = format!("{:?}+{s}", self.interim);
        }
        format!("{s} body={}", show(&self.body))
    }
}

/// A raw client connection to Redline.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect to redline"),
            buf: Vec::new(),
            eof: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    /// Read more; `Ok(false)` at the peer's end.
    async fn fill(&mut self, until: Instant) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = vec![0u8; 65536];
        match tokio::time::timeout_at(until.into(), self.stream.read(&mut chunk)).await {
            Err(_) => Err(format!("timed out, have: {}", show(&self.buf))),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                Ok(false)
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    /// Read one interim (1xx) head, e.g. `100 Continue` before sending a body.
    pub async fn interim(&mut self) -> Result<u16, String> {
        let until = Instant::now() + WAIT;
        loop {
            if let Some((status, _, len)) = parse_head(&self.buf)? {
                self.buf.drain(..len);
                return if (100..200).contains(&status) {
                    Ok(status)
                } else {
                    Err(format!("wanted a 1xx head, got {status}"))
                };
            }
            if !self.fill(until).await? {
                return Err(format!("closed before a 1xx head: {}", show(&self.buf)));
            }
        }
    }

    /// Read one final response (1xx heads are collected on the way). A body cut by the
    /// peer's close, or chunk framing that is not HTTP, gives `complete: false`.
    pub async fn response(&mut self, head_request: bool) -> Result<Resp, String> {
        let mut resp = self.response_head().await?;
        self.response_body(&mut resp, head_request).await?;
        Ok(resp)
    }

    /// Read the head of one final response (1xx heads are collected on the way).
    pub async fn response_head(&mut self) -> Result<Resp, String> {
        let until = Instant::now() + WAIT;
        let mut interim = Vec::new();
        loop {
            if let Some((status, headers, len)) = parse_head(&self.buf)? {
                self.buf.drain(..len);
                if (100..200).contains(&status) && status != 101 {
                    interim.push(status);
                    continue;
                }
                return Ok(Resp {
                    status,
                    headers,
                    interim,
                    ..Resp::default()
                });
            }
            if !self.fill(until).await? {
                return Err(if self.buf.is_empty() {
                    "closed without a response".to_string()
                } else {
                    format!("closed mid-head: {}", show(&self.buf))
                });
            }
        }
    }

    /// Read the body of `resp` per its framing.
    pub async fn response_body(
        &mut self,
        resp: &mut Resp,
        head_request: bool,
    ) -> Result<(), String> {
        let until = Instant::now() + WAIT;
        let status = resp.status;
        let te = resp
            .header("transfer-encoding")
            .map(str::to_ascii_lowercase);
        if head_request || status == 204 || status == 304 || status == 101 {
            resp.complete = true;
        } else if te.is_some_and(|t| t.trim_end().ends_with("chunked")) {
            loop {
                match chunked_len(&self.buf) {
                    Ok(Some(n)) => {
                        resp.body = self.buf.drain(..n).collect();
                        resp.complete = true;
                        break;
                    }
                    Ok(None) if self.fill(until).await? => {}
                    // Cut by a close, or not chunked framing: whatever came, then the end.
                    _ => {
                        while self.fill(until).await? {}
                        resp.body = std::mem::take(&mut self.buf);
                        break;
                    }
                }
            }
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| format!("client got content-length {cl:?}"))?;
            while self.buf.len() < n && self.fill(until).await? {}
            resp.complete = self.buf.len() >= n;
            let n = n.min(self.buf.len());
            resp.body = self.buf.drain(..n).collect();
        } else {
            while self.fill(until).await? {}
            resp.body = std::mem::take(&mut self.buf);
            resp.complete = true;
        }
        Ok(())
    }

    /// The peer closes (or resets) within [`WAIT`] and sends nothing more first.
    pub async fn closes(&mut self) -> Result<(), String> {
        let until = Instant::now() + WAIT;
        while self
            .fill(until)
            .await
            .map_err(|_| "connection left open".to_string())?
        {}
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("stray bytes before close: {}", show(&self.buf)))
        }
    }

    /// Bytes received and not yet read as part of a response.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let headers = resp
                .headers
                .iter()
                .map(|h| {
                    let v = String::from_utf8_lossy(h.value).to_string();
                    (h.name.to_ascii_lowercase(), v)
                })
                .collect();
            Ok(Some((resp.code.unwrap_or(0), headers, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("unparsable response head ({e}): {}", show(buf))),
    }
}

/// Replace `$P` (the case's path `/q/<name>`), `$I` (its request id line) and `$F` (the
/// X-Forwarded-* lines for host `a`) in a template.
pub fn fill_in(template: &[u8], path: &str, id: &str) -> Vec<u8> {
    let forwarded =
        "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n";
    let id_line = format!("x-request-id: {id}\r\n");
    let mut out = Vec::with_capacity(template.len() + 64);
    let mut i = 0;
    while i < template.len() {
        match (template[i], template.get(i + 1)) {
            (b'$', Some(b'P')) => out.extend_from_slice(path.as_bytes()),
            (b'$', Some(b'I')) => out.extend_from_slice(id_line.as_bytes()),
            (b'$', Some(b'F')) => out.extend_from_slice(forwarded.as_bytes()),
            (b, _) => {
                out.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    out
}
