//! Request-side cases about the rest of the head: Host, request targets, CONNECT,
//! versions, Expect, Upgrade, and several requests in one write (pipelining).
//!
//! Templates as in `request_framing`; `$U` in an upstream template is the upstream's
//! address (the Host Redline sends when the client sent none).

use super::runner::{Case, pass, reject};

const UP_GET: &[u8] = b"GET $P HTTP/1.1\r\nhost: a\r\n$I$F\r\n";

/// Upstream bytes of a GET whose host (from the URI or the Host header) is `host`.
fn up_get_host(host: &str) -> Vec<u8> {
    format!(
        "GET $P HTTP/1.1\r\nhost: {host}\r\n$Ix-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: {host}\r\n\r\n"
    )
    .into_bytes()
}

pub fn cases() -> Vec<Case> {
    // Host (RFC 9112 §3.2, spec16 §4).
    let mut c = vec![
        reject("host-missing", 400, b"GET $P HTTP/1.1\r\n$I\r\n"),
        reject(
            "host-twice-same",
            400,
            b"GET $P HTTP/1.1\r\nhost: a\r\nhost: a\r\n$I\r\n",
        ),
        reject(
            "host-twice-different",
            400,
            b"GET $P HTTP/1.1\r\nhost: a\r\nhost: b\r\n$I\r\n",
        ),
        reject(
            "host-twice-case",
            400,
            b"GET $P HTTP/1.1\r\nHost: a\r\nHOST: a\r\n$I\r\n",
        ),
    ];
    for (name, value) in [
        ("host-empty", &b""[..]),
        ("host-space", b"a b"),
        ("host-slash", b"a/b"),
        // nginx: 200, forwarded verbatim with `proxy_set_header Host $host`
        ("host-userinfo", b"user@a"),
        ("host-backslash", b"a\\b"),
        ("host-port-not-digits", b"a:8x"),
        ("host-control-byte", b"a\x01b"),
    ] {
        let mut t = b"GET $P HTTP/1.1\r\nhost: ".to_vec();
        t.extend_from_slice(value);
        t.extend_from_slice(b"\r\n$I\r\n");
        c.push(reject(name, 400, &t));
    }
    c.push(pass(
        "host-with-port",
        b"GET $P HTTP/1.1\r\nhost: a.example:8080\r\n$I\r\n",
        &up_get_host("a.example:8080"),
    ));
    c.push(pass(
        "host-ipv6",
        b"GET $P HTTP/1.1\r\nhost: [::1]:8080\r\n$I\r\n",
        &up_get_host("[::1]:8080"),
    ));
    // HTTP/1.0 needs no Host: the upstream's authority is sent.
    c.push(
        pass(
            "host-missing-http10",
            b"GET $P HTTP/1.0\r\n$I\r\n",
            b"GET $P HTTP/1.1\r\n$Ix-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nhost: $U\r\n\r\n",
        )
        .closing(),
    );
    // Absolute form: forwarded in origin form, the URI's authority is the host.
    c.push(pass(
        "abs-http",
        b"GET http://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        &up_get_host("b.example"),
    ));
    c.push(pass(
        "abs-http-port",
        b"GET http://b.example:8080$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        &up_get_host("b.example:8080"),
    ));
    c.push(pass(
        "abs-https",
        b"GET https://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        &up_get_host("b.example"),
    ));
    c.push(pass(
        "abs-upper-scheme",
        b"GET HTTP://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        &up_get_host("b.example"),
    ));
    c.push(
        pass(
            "abs-no-path",
            b"GET http://b.example HTTP/1.1\r\nhost: a\r\n$I\r\n",
            b"GET / HTTP/1.1\r\nhost: b.example\r\n$Ix-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: b.example\r\n\r\n",
        )
        .answers(&[(200, "up:/")]),
    );
    // nginx: 200, the scheme is not checked (ftp://x/y goes up as GET /y, host x)
    c.push(reject(
        "abs-ftp",
        400,
        b"GET ftp://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    c.push(reject(
        "abs-ws",
        400,
        b"GET ws://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    c.push(reject(
        "abs-without-host-header",
        400,
        b"GET http://b.example$P HTTP/1.1\r\n$I\r\n",
    ));
    // The Host header is ignored for the absolute form, but must still be valid.
    c.push(reject(
        "abs-invalid-host-header",
        400,
        b"GET http://b.example$P HTTP/1.1\r\nhost: a b\r\n$I\r\n",
    ));
    // Userinfo would reach the upstream as `host: u:p@b.example`, which §4 refuses as a Host.
    c.push(reject(
        "abs-userinfo",
        400,
        b"GET http://u:p@b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    c.push(reject(
        "abs-empty-authority",
        400,
        b"GET http://$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    // `*` only with OPTIONS; authority form only with CONNECT, which is refused.
    // nginx: 400 (invalid request line)
    c.push(
        pass(
            "options-star",
            b"OPTIONS * HTTP/1.1\r\nhost: a\r\n$I\r\n",
            b"OPTIONS * HTTP/1.1\r\nhost: a\r\n$I$F\r\n",
        )
        .answers(&[(200, "up:*")]),
    );
    c.push(reject(
        "get-star",
        400,
        b"GET * HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    c.push(reject(
        "post-star",
        400,
        b"POST * HTTP/1.1\r\nhost: a\r\n$IContent-Length: 0\r\n\r\n",
    ));
    c.push(reject(
        "authority-form-get",
        400,
        b"GET b.example:80 HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    c.push(reject(
        "authority-form-options",
        400,
        b"OPTIONS b.example:80 HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    // Method names are case-sensitive: `connect` is not CONNECT, so its authority form is 400.
    c.push(reject(
        "authority-form-lowercase-connect",
        400,
        b"connect b.example:443 HTTP/1.1\r\nhost: a\r\n$I\r\n",
    ));
    for (name, t) in [
        // nginx: 400 (invalid request line) for the authority form
        (
            "connect-authority",
            &b"CONNECT b.example:443 HTTP/1.1\r\nhost: b.example:443\r\n$I\r\n"[..],
        ),
        (
            "connect-origin",
            b"CONNECT $P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        ),
        (
            "connect-absolute",
            b"CONNECT http://b.example$P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        ),
        (
            "connect-http10",
            b"CONNECT b.example:443 HTTP/1.0\r\n$I\r\n",
        ),
        (
            "connect-with-body",
            b"CONNECT b.example:443 HTTP/1.1\r\nhost: a\r\n$IContent-Length: 5\r\n\r\nhello",
        ),
    ] {
        c.push(reject(name, 405, t));
    }
    // Versions: HTTP/1.0 and 1.1 only (spec16 §1).
    for (name, t) in [
        // nginx: http09 is answered body-only (HTTP/0.9) and forwarded as HTTP/1.1;
        // http12 is served as HTTP/1.1
        ("http09", &b"GET $P\r\n"[..]),
        (
            "http09-long-path",
            b"GET $P-with-a-longer-path-xxxxxxxxxxxxxxxx\r\n",
        ),
        ("http12", b"GET $P HTTP/1.2\r\nhost: a\r\n$I\r\n"),
        (
            "http20-not-preface",
            b"GET $P HTTP/2.0\r\nhost: a\r\n$I\r\n",
        ),
        ("http-lowercase", b"GET $P http/1.1\r\nhost: a\r\n$I\r\n"),
        (
            "version-trailing-space",
            b"GET $P HTTP/1.1 \r\nhost: a\r\n$I\r\n",
        ),
        (
            "request-line-double-space",
            b"GET  $P HTTP/1.1\r\nhost: a\r\n$I\r\n",
        ),
    ] {
        c.push(reject(name, 400, t));
    }
    c.push(pass(
        "http10-keep-alive",
        b"GET $P HTTP/1.0\r\nhost: a\r\n$IConnection: keep-alive\r\n\r\n",
        UP_GET,
    ));
    c.push(
        pass(
            "http10-close",
            b"GET $P HTTP/1.0\r\nhost: a\r\n$I\r\n",
            UP_GET,
        )
        .closing(),
    );
    c.push(
        pass(
            "http10-post-cl",
            b"POST $P HTTP/1.0\r\nhost: a\r\n$IContent-Length: 5\r\n\r\nhello",
            b"POST $P HTTP/1.1\r\nhost: a\r\n$Icontent-length: 5\r\n$F\r\nhello",
        )
        .closing(),
    );
    // Expect goes to hyper; 100-continue is answered there, the body then follows.
    // nginx: sends 100 Continue itself and removes Expect upstream
    c.push(
        pass(
            "expect-continue-wait",
            b"POST $P HTTP/1.1\r\nhost: a\r\n$IExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            b"POST $P HTTP/1.1\r\nhost: a\r\n$Iexpect: 100-continue\r\ncontent-length: 5\r\n$F\r\nhello",
        )
        .after_continue(b"hello"),
    );
    c.push(pass(
        "expect-continue-eager",
        b"POST $P HTTP/1.1\r\nhost: a\r\n$IExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        b"POST $P HTTP/1.1\r\nhost: a\r\n$Iexpect: 100-continue\r\ncontent-length: 5\r\n$F\r\nhello",
    ));
    c.push(
        pass(
            "expect-continue-then-pipelined-get",
            b"POST $P HTTP/1.1\r\nhost: a\r\n$IExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET $P-2 HTTP/1.1\r\nhost: a\r\n$I\r\n",
            b"POST $P HTTP/1.1\r\nhost: a\r\n$Iexpect: 100-continue\r\ncontent-length: 5\r\n$F\r\nhelloGET $P-2 HTTP/1.1\r\nhost: a\r\n$I$F\r\n",
        )
        .answers(&[(200, "up:$P"), (200, "up:$P-2")]),
    );
    c.push(pass(
        "expect-continue-chunked",
        b"POST $P HTTP/1.1\r\nhost: a\r\n$IExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST $P HTTP/1.1\r\nhost: a\r\n$Iexpect: 100-continue\r\n$Ftransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ));
    // An expectation Redline does not know is the upstream's to judge (RFC 9110 §10.1.1).
    // nginx: no 417, Expect removed upstream
    c.push(pass(
        "expect-other",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IExpect: something\r\n\r\n",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$Iexpect: something\r\n$F\r\n",
    ));
    // Upgrade: asked for properly it is passed on; the upstream declines with a 200.
    c.push(pass(
        "upgrade-websocket",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$I$Fconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    ));
    c.push(pass(
        "upgrade-without-connection",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IUpgrade: websocket\r\n\r\n",
        UP_GET,
    ));
    // h2c is never offered upstream: an app that switched would take the tunnel's
    // requests past every flow and access rule (RFC 9113 §3.1 retired the upgrade).
    c.push(pass(
        "upgrade-h2c",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        UP_GET,
    ));
    // Nor any other protocol but WebSocket: its tunnel would be unjudged.
    c.push(pass(
        "upgrade-other",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IConnection: Upgrade\r\nUpgrade: foo/2\r\n\r\n",
        UP_GET,
    ));
    c.push(pass(
        "upgrade-h2c-listed",
        b"GET $P HTTP/1.1\r\nhost: a\r\n$IConnection: Upgrade\r\nUpgrade: websocket, H2C\r\n\r\n",
        UP_GET,
    ));
    c.extend(pipelined());
    c
}

/// Several requests in one write: each gets its own answer, in order; a bad one ends the
/// connection after the answers before it, and nothing of it goes upstream.
fn pipelined() -> Vec<Case> {
    const GET2: &[u8] = b"GET $P-2 HTTP/1.1\r\nhost: a\r\n$I\r\n";
    const UP_GET2: &[u8] = b"GET $P-2 HTTP/1.1\r\nhost: a\r\n$I$F\r\n";
    const CHUNKED: &[u8] = b"POST $P HTTP/1.1\r\nhost: a\r\n$ITransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    const UP_CHUNKED: &[u8] = b"POST $P HTTP/1.1\r\nhost: a\r\n$I$Ftransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    const GET1: &[u8] = b"GET $P HTTP/1.1\r\nhost: a\r\n$I\r\n";
    const H2_PREFACE: &[u8] =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    const CL_TE_2: &[u8] = b"POST $P-2 HTTP/1.1\r\nhost: a\r\n$IContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX";
    const UP_CL_TE_2: &[u8] =
        b"POST $P-2 HTTP/1.1\r\nhost: a\r\n$I$Ftransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let cat = |parts: &[&[u8]]| parts.concat();
    let then_bad = |name, first: &[u8], up_first: &[u8], bad: &[u8], status| {
        pass(name, &cat(&[first, bad]), up_first)
            .answers(&[(200, "up:$P"), (status, "")])
            .closing()
    };
    let mut c = vec![
        pass("pipe-two", &cat(&[b"GET $P HTTP/1.1\r\nhost: a\r\n$I\r\n", GET2]), &cat(&[UP_GET, UP_GET2]))
            .answers(&[(200, "up:$P"), (200, "up:$P-2")]),
        pass(
            "pipe-three-last-closes",
            &cat(&[
                b"POST $P HTTP/1.1\r\nhost: a\r\n$IContent-Length: 5\r\n\r\nhello",
                GET2,
                b"GET $P-3 HTTP/1.1\r\nhost: a\r\n$IConnection: close\r\n\r\n",
            ]),
            &cat(&[
                b"POST $P HTTP/1.1\r\nhost: a\r\n$Icontent-length: 5\r\n$F\r\nhello",
                UP_GET2,
                b"GET $P-3 HTTP/1.1\r\nhost: a\r\n$I$F\r\n",
            ]),
        )
        .answers(&[(200, "up:$P"), (200, "up:$P-2"), (200, "up:$P-3")])
        .closing(),
        // A GET whose body is a request: one request upstream, one answer.
        pass(
            "pipe-request-in-get-body",
            b"GET $P HTTP/1.1\r\nhost: a\r\n$IContent-Length: 39\r\n\r\nGET /q/smuggled-2 HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET $P HTTP/1.1\r\nhost: a\r\n$Icontent-length: 39\r\n$F\r\nGET /q/smuggled-2 HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        // With the hyper engine the second head is hyper's, as after a takeover (below).
        then_bad("pipe-then-cl-te", GET1, UP_GET, CL_TE_2, 400).on_hyper(
            pass("pipe-then-cl-te", &cat(&[GET1, CL_TE_2]), &cat(&[UP_GET, UP_CL_TE_2]))
                .answers(&[(200, "up:$P"), (200, "up:$P-2")])
                .closing(),
        ),
        // The HTTP/2 preface only starts a connection (RFC 9113 §3.3); after a request
        // it is a malformed request line, not a switch to HTTP/2.
        then_bad("pipe-then-h2-preface", GET1, UP_GET, H2_PREFACE, 400).on_hyper(
            pass("pipe-then-h2-preface", &cat(&[GET1, H2_PREFACE]), UP_GET)
                .answers(&[(200, "up:$P")])
                .closing(),
        ),
        then_bad("pipe-then-http09", GET1, UP_GET, b"GET $P-2\r\n", 400).on_hyper(
            pass("pipe-then-http09", &cat(&[GET1, b"GET $P-2\r\n"]), UP_GET)
                .answers(&[(200, "up:$P"), (400, "*")])
                .closing(),
        ),
    ];
    // After a chunked upload the connection is hyper's: admission still judges every
    // head hyper parsed, but hyper has settled two things before it. CL+TE: hyper keeps
    // the chunked framing, drops the length and closes after answering (RFC 9112 §6.1
    // allows this; nothing is ambiguous upstream). An unknown coding: hyper's own bare 400.
    c.push(
        pass(
            "pipe-after-hyper-cl-te",
            &cat(&[
                CHUNKED,
                b"POST $P-2 HTTP/1.1\r\nhost: a\r\n$IContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
            ]),
            &cat(&[
                UP_CHUNKED,
                b"POST $P-2 HTTP/1.1\r\nhost: a\r\n$I$Ftransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            ]),
        )
        .answers(&[(200, "up:$P"), (200, "up:$P-2")])
        .closing(),
    );
    c.push(
        pass(
            "pipe-after-hyper-te-xchunked",
            &cat(&[
                CHUNKED,
                b"POST $P-2 HTTP/1.1\r\nhost: a\r\n$ITransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            ]),
            UP_CHUNKED,
        )
        .answers(&[(200, "up:$P"), (400, "*")])
        .closing(),
    );
    for (name, bad, status) in [
        (
            "pipe-after-hyper-host-twice",
            &b"GET $P-2 HTTP/1.1\r\nhost: a\r\nhost: b\r\n$I\r\n"[..],
            400,
        ),
        (
            "pipe-after-hyper-connect",
            b"CONNECT b.example:443 HTTP/1.1\r\nhost: a\r\n$I\r\n",
            405,
        ),
        (
            "pipe-after-hyper-get-star",
            b"GET * HTTP/1.1\r\nhost: a\r\n$I\r\n",
            400,
        ),
    ] {
        c.push(then_bad(name, CHUNKED, UP_CHUNKED, bad, status));
    }
    c
}
