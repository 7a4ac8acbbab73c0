//! Case types and how one case runs: send, check the client's answer, check the bytes the
//! upstream got, then prove the next request gets its own answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::harness::{Client, Mark, Resp, Upstream, fill_in, find, show};

/// What the client writes: bytes, or a pause until Redline sends `100 Continue`.
pub enum Seg {
    Bytes(Vec<u8>),
    Continue,
}

/// What the client must get.
pub enum Want {
    /// Redline refuses it itself: this status, JSON `error: bad_request`,
    /// `connection: close`, then the connection closes.
    Reject(u16),
    /// These answers in order (status, body if checked); then the connection stays open
    /// (`true`) or closes (`false`).
    Answers(Vec<(u16, Option<Vec<u8>>)>, bool),
}

/// What the upstream must receive before the marker request.
pub enum Up {
    Nothing,
    Exact(Vec<u8>),
    /// Perhaps part of a request, never a whole one (a body that broke midway).
    NoRequest,
}

/// One request-side case. Its requests use the path `/q/<name>` and id `<name>`.
pub struct Case {
    pub name: &'static str,
    pub send: Vec<Seg>,
    pub want: Want,
    pub up: Up,
    /// What the hyper engine does instead, where that differs and is safe.
    pub on_hyper: Option<(Want, Up)>,
}

pub fn path(name: &str) -> String {
    format!("/q/{name}")
}

fn fill(name: &str, template: &[u8]) -> Vec<u8> {
    fill_in(template, &path(name), name)
}

/// Refused before anything goes upstream.
pub fn reject(name: &'static str, status: u16, template: &[u8]) -> Case {
    Case {
        name,
        send: vec![Seg::Bytes(fill(name, template))],
        want: Want::Reject(status),
        up: Up::Nothing,
        on_hyper: None,
    }
}

/// A request body that breaks after the head was admitted: 400, and no whole request upstream.
pub fn broken(name: &'static str, template: &[u8]) -> Case {
    Case {
        up: Up::NoRequest,
        ..reject(name, 400, template)
    }
}

/// Forwarded: the upstream gets exactly `upstream`, the client gets `up:/q/<name>`, and
/// the connection stays open.
pub fn pass(name: &'static str, template: &[u8], upstream: &[u8]) -> Case {
    let body = format!("up:{}", path(name)).into_bytes();
    Case {
        name,
        send: vec![Seg::Bytes(fill(name, template))],
        want: Want::Answers(vec![(200, Some(body))], true),
        up: Up::Exact(fill(name, upstream)),
        on_hyper: None,
    }
}

impl Case {
    /// The connection closes after the answers.
    pub fn closing(mut self) -> Case {
        if let Want::Answers(_, keep) = &mut self.want {
            *keep = false;
        }
        self
    }

    /// Several answers (pipelining): each `(status, body)`; `$P` in a body is the path. An
    /// empty body is not checked, except that a 4xx/5xx one must be Redline's own refusal
    /// (JSON, `bad_request`); `*` is any body.
    pub fn answers(mut self, answers: &[(u16, &str)]) -> Case {
        let keep = matches!(self.want, Want::Answers(_, true));
        let p = path(self.name);
        let list = answers
            .iter()
            .map(|(s, b)| {
                (
                    *s,
                    (!b.is_empty()).then(|| b.replace("$P", &p).into_bytes()),
                )
            })
            .collect();
        self.want = Want::Answers(list, keep);
        self
    }

    /// With the hyper engine, `other`'s answers and upstream bytes are expected instead.
    pub fn on_hyper(mut self, other: Case) -> Case {
        self.on_hyper = Some((other.want, other.up));
        self
    }

    /// Send the head, wait for `100 Continue`, then send `body`.
    pub fn after_continue(mut self, body: &[u8]) -> Case {
        self.send.push(Seg::Continue);
        self.send.push(Seg::Bytes(body.to_vec()));
        self
    }
}

/// The marker request after case `name`, and what the upstream must get for it.
fn marker(name: &str) -> (Vec<u8>, Vec<u8>) {
    let line = format!("GET /next-{name} HTTP/1.1\r\n");
    let sent = format!("{line}host: m\r\nx-request-id: next-{name}\r\n\r\n");
    let upstream = format!(
        "{line}host: m\r\nx-request-id: next-{name}\r\nx-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: m\r\n\r\n"
    );
    (sent.into_bytes(), upstream.into_bytes())
}

/// Send the marker (on `client` if it is still usable, else on a new connection); problems.
pub async fn check_marker(proxy: SocketAddr, client: Option<Client>, name: &str) -> Vec<String> {
    let (sent, _) = marker(name);
    let mut client = match client {
        Some(c) => c,
        None => Client::connect(proxy).await,
    };
    let want = format!("up:/next-{name}");
    let got = match client.send(&sent).await {
        Ok(()) => client.response(false).await,
        Err(e) => Err(e),
    };
    match got {
        Ok(r) if r.status == 200 && r.body == want.as_bytes() => vec![],
        Ok(r) => vec![format!(
            "next request: want 200 {want}, got {}",
            r.summary()
        )],
        Err(e) => vec![format!("next request: {e}")],
    }
}

/// Split what the upstream got since a case began at the marker's request line: the
/// case's bytes, and the problems with the marker's own bytes.
pub fn split_at_marker(got: &[u8], name: &str) -> (Vec<u8>, Vec<String>) {
    let (_, want) = marker(name);
    let line = format!("GET /next-{name} HTTP/1.1\r\n");
    let Some(at) = find(got, line.as_bytes()) else {
        return (
            got.to_vec(),
            vec!["upstream never got the next request".into()],
        );
    };
    let rest = &got[at..];
    let problems = if rest == want.as_slice() {
        vec![]
    } else {
        vec![format!(
            "upstream next request: want {}, got {}",
            show(&want),
            show(rest)
        )]
    };
    (got[..at].to_vec(), problems)
}

/// The upstream parsed the marker as a request of its own, byte for byte: nothing of an
/// earlier request was left in front of it (a desync shows here).
pub fn check_marker_upstream(up: &Upstream, mark: Mark, name: &str) -> Vec<String> {
    let (_, want) = marker(name);
    let target = format!("/next-{name}");
    let seen = up.requests_since(mark);
    let Some(at) = seen.iter().position(|r| r.target == target) else {
        return vec![format!(
            "upstream parsed no request {target} (got {:?})",
            seen.iter().map(|r| r.target.as_str()).collect::<Vec<_>>()
        )];
    };
    let mut p = Vec::new();
    if seen[at].raw != want {
        p.push(format!(
            "upstream desync: the next request arrived as {}",
            show(&seen[at].raw)
        ));
    }
    if let Some(after) = seen.get(at + 1) {
        p.push(format!(
            "upstream got a request after the next one: {}",
            show(&after.raw)
        ));
    }
    p
}

/// Redline's access log (its stdout lines).
pub type AccessLog = Arc<Mutex<Vec<String>>>;

/// The access-log `error_type` of the request `id` answered with `status` is `want`.
pub async fn check_error_type(log: &AccessLog, id: &str, status: u16, want: &str) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let found = log.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["request_id"] == id && v["status"] == status).then(|| v["error_type"].clone())
        });
        match found {
            Some(t) if t == want => return vec![],
            Some(t) => return vec![format!("access log error_type: want {want:?}, got {t}")],
            None if Instant::now() > until => {
                return vec![format!("no access log line for {id} with status {status}")];
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The checks of a Redline rejection: status, JSON error, close announced, id echoed.
pub fn check_reject(r: &Resp, status: u16, error: &str) -> Vec<String> {
    let mut p = Vec::new();
    if r.status != status {
        p.push(format!("want {status}, got {}", r.summary()));
        return p;
    }
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if json["error"] != error {
        p.push(format!("want error {error:?}, got body {}", show(&r.body)));
    }
    if r.header("content-type") != Some("application/json") {
        p.push(format!("content-type {:?}", r.header("content-type")));
    }
    if r.header("x-request-id").is_none() {
        p.push("no x-request-id".into());
    }
    p
}

/// Run one request-side case; its problems (empty: it passed).
pub async fn run(
    proxy: SocketAddr,
    log: &AccessLog,
    up: &Upstream,
    case: &Case,
    hyper: bool,
) -> Vec<String> {
    let (want, expect_up) = match &case.on_hyper {
        Some((want, expect_up)) if hyper => (want, expect_up),
        _ => (&case.want, &case.up),
    };
    let mark = up.mark();
    let mut problems = Vec::new();
    let mut client = Client::connect(proxy).await;
    for seg in &case.send {
        let sent = match seg {
            Seg::Bytes(b) => client.send(b).await,
            Seg::Continue => match client.interim().await {
                Ok(100) => Ok(()),
                Ok(s) => Err(format!("wanted 100 Continue, got {s}")),
                Err(e) => Err(format!("waiting for 100 Continue: {e}")),
            },
        };
        if let Err(e) = sent {
            problems.push(e);
            break;
        }
    }
    let mut open = false;
    if problems.is_empty() {
        match want {
            Want::Reject(status) => match client.response(false).await {
                Ok(r) => {
                    let rejected = check_reject(&r, *status, "bad_request");
                    let announced = r.header("connection") == Some("close");
                    if rejected.is_empty() && !announced {
                        problems.push("no connection: close".into());
                    }
                    // The id is known only when the head could be read.
                    if rejected.is_empty() && r.header("x-request-id") == Some(case.name) {
                        problems
                            .extend(check_error_type(log, case.name, *status, "bad_request").await);
                    }
                    problems.extend(rejected);
                    if let Err(e) = client.closes().await {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("want {status}: {e}")),
            },
            Want::Answers(answers, keep) => {
                open = *keep;
                for (i, (status, body)) in answers.iter().enumerate() {
                    match client.response(false).await {
                        Ok(r) if body.is_none() && *status >= 400 => {
                            let rejected = check_reject(&r, *status, "bad_request");
                            if rejected.is_empty() && r.header("x-request-id") == Some(case.name) {
                                problems.extend(
                                    check_error_type(log, case.name, *status, "bad_request").await,
                                );
                            }
                            problems.extend(rejected);
                        }
                        Ok(r)
                            if r.status == *status
                                && body.as_ref().is_none_or(|b| *b == r.body || b == b"*") => {}
                        Ok(r) => {
                            let want = body.as_deref().map(show).unwrap_or_default();
                            problems.push(format!(
                                "answer {i}: want {status} {want}, got {}",
                                r.summary()
                            ));
                        }
                        Err(e) => {
                            problems.push(format!("answer {i}: want {status}: {e}"));
                            open = false;
                            break;
                        }
                    }
                }
                if problems.is_empty() && !*keep {
                    if let Err(e) = client.closes().await {
                        problems.push(e);
                    }
                } else if open && !client.leftover().is_empty() {
                    problems.push(format!("extra bytes: {}", show(client.leftover())));
                    open = false;
                }
            }
        }
    }
    problems.extend(check_marker(proxy, open.then_some(client), case.name).await);
    let (got, mut marker_problems) = split_at_marker(&up.bytes_since(mark), case.name);
    marker_problems.extend(check_marker_upstream(up, mark, case.name));
    match expect_up {
        Up::Nothing if !got.is_empty() => {
            problems.push(format!("upstream: want nothing, got {}", show(&got)));
        }
        Up::Exact(want) => {
            let want = replace(want, b"$U", up.addr.to_string().as_bytes());
            if got != want {
                problems.push(format!(
                    "upstream: want {}, got {}",
                    show(&want),
                    show(&got)
                ));
            }
        }
        Up::NoRequest => {
            let whole: Vec<String> = up
                .requests_since(mark)
                .into_iter()
                .filter(|r| !r.target.starts_with("/next-"))
                .map(|r| show(&r.raw))
                .collect();
            if !whole.is_empty() {
                problems.push(format!("upstream: want no whole request, got {whole:?}"));
            }
        }
        _ => {}
    }
    problems.extend(marker_problems);
    problems
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
