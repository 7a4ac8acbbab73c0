use super::*;
use crate::error::Retry;

fn judge(
    method: &str,
    target: &str,
    version: Version,
    headers: &[(&str, &str)],
) -> Result<Admitted, Refusal> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let pairs = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    admit(&method, Target::of_raw(target), version, pairs)
}

fn status(r: Result<Admitted, Refusal>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(refusal) => refusal.status.as_u16(),
    }
}

const V11: Version = Version::HTTP_11;
const V10: Version = Version::HTTP_10;

#[test]
fn framing_is_decided_once() {
    let ok = judge(
        "POST",
        "/a",
        V11,
        &[("Host", "shop"), ("Content-Length", "5")],
    )
    .unwrap();
    assert_eq!(ok.body, BodyLen::Length(5));
    let dup = [
        ("host", "shop"),
        ("content-length", "5"),
        ("CONTENT-LENGTH", "5"),
    ];
    assert_eq!(
        judge("POST", "/a", V11, &dup).unwrap().body,
        BodyLen::Length(5)
    );
    let chunked = [("host", "shop"), ("transfer-encoding", " Chunked ")];
    assert_eq!(
        judge("POST", "/a", V11, &chunked).unwrap().body,
        BodyLen::Chunked
    );
    assert_eq!(
        judge("GET", "/a", V11, &[("host", "shop")]).unwrap().body,
        BodyLen::None
    );
}

#[test]
fn ambiguous_lengths_are_refused() {
    for cl in [
        "+5",
        "-1",
        "0x5",
        "5, 5",
        "5 5",
        "",
        "12345678901234567890",
        "5\u{b}",
    ] {
        let r = judge(
            "POST",
            "/a",
            V11,
            &[("host", "shop"), ("content-length", cl)],
        );
        assert_eq!(status(r), 400, "{cl:?}");
    }
    let two = [
        ("host", "shop"),
        ("content-length", "5"),
        ("content-length", "6"),
    ];
    assert_eq!(status(judge("POST", "/a", V11, &two)), 400);
    let both = [
        ("host", "shop"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(status(judge("POST", "/a", V11, &both)), 400);
}

#[test]
fn only_plain_chunked_is_a_transfer_coding() {
    for te in [
        "xchunked",
        "chunked, identity",
        "gzip, chunked",
        "identity",
        "",
        "chunked;q=1",
    ] {
        let r = judge(
            "POST",
            "/a",
            V11,
            &[("host", "shop"), ("transfer-encoding", te)],
        );
        assert_eq!(status(r), 501, "{te:?}");
    }
    let twice = [
        ("host", "shop"),
        ("transfer-encoding", "chunked"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(status(judge("POST", "/a", V11, &twice)), 501);
    let old = [("transfer-encoding", "chunked")];
    assert_eq!(status(judge("POST", "/a", V10, &old)), 400);
}

#[test]
fn host_rules() {
    assert_eq!(status(judge("GET", "/", V11, &[])), 400);
    assert_eq!(status(judge("GET", "/", V10, &[])), 200);
    let same = [("host", "shop"), ("host", "shop")];
    assert_eq!(status(judge("GET", "/", V11, &same)), 400);
    for good in [
        "shop",
        "shop:8080",
        "127.0.0.1",
        "[::1]:80",
        "a-b.example",
        "xn--d1a.example",
        "shop:",
    ] {
        assert_eq!(
            status(judge("GET", "/", V11, &[("host", good)])),
            200,
            "{good}"
        );
    }
    for bad in [
        "a b/c@d",
        "user@shop",
        "shop/x",
        "",
        " ",
        "shop:80x",
        "[::1",
        "[zz]",
        "sh\\op",
        "shop:123456",
    ] {
        assert_eq!(
            status(judge("GET", "/", V11, &[("host", bad)])),
            400,
            "{bad:?}"
        );
    }
}

#[test]
fn targets_and_methods() {
    let host = [("host", "shop")];
    assert_eq!(status(judge("CONNECT", "shop:443", V11, &host)), 405);
    assert_eq!(status(judge("CONNECT", "/a", V11, &host)), 405);
    assert_eq!(
        status(judge("CONNECT", "http://evil.example:443/", V11, &host)),
        405
    );
    assert_eq!(status(judge("OPTIONS", "*", V11, &host)), 200);
    assert_eq!(status(judge("GET", "*", V11, &host)), 400);
    assert_eq!(status(judge("GET", "example.com:80", V11, &host)), 400);
    assert_eq!(status(judge("GET", "ftp://x/y", V11, &host)), 400);
    assert_eq!(
        status(judge("GET", "HTTP://other.example/x", V11, &host)),
        200
    );
    assert_eq!(
        status(judge("GET", "http://other.example:8080?q", V11, &host)),
        200
    );
    for bad in [
        "http://user:pw@shop/x",
        "http:///x",
        "https://a b/",
        "http://sh\\op/",
    ] {
        assert_eq!(status(judge("GET", bad, V11, &host)), 400, "{bad}");
    }
    let uri: Uri = "http://user@shop/x".parse().unwrap();
    assert_eq!(Target::of_uri(&uri), Target::BadAuthority);
    let h2 = Method::GET;
    let uri: Uri = "http://shop/a".parse().unwrap();
    let none: [(&[u8], &[u8]); 0] = [];
    assert!(admit(&h2, Target::of_uri(&uri), Version::HTTP_2, none).is_ok());
    // h2's `:path: *` comes with a scheme and an authority: still OPTIONS only.
    let star = Uri::from_parts({
        let mut p = http::uri::Parts::default();
        p.scheme = Some(http::uri::Scheme::HTTP);
        p.authority = Some("shop".parse().unwrap());
        p.path_and_query = Some(http::uri::PathAndQuery::from_static("*"));
        p
    })
    .unwrap();
    assert_eq!(Target::of_uri(&star), Target::Asterisk);
    assert!(admit_h2(&Method::GET, &star, none).is_err());
    assert!(admit_h2(&Method::OPTIONS, &star, none).is_ok());
    // Without `:authority`, one valid `host` is needed, as in HTTP/1.1.
    let bare: Uri = "/a".parse().unwrap();
    assert!(admit_h2(&h2, &bare, none).is_err());
    let host: [(&[u8], &[u8]); 1] = [(b"host", b"shop")];
    assert!(admit_h2(&h2, &bare, host).is_ok());
    let bad: [(&[u8], &[u8]); 1] = [(b"host", b"a b")];
    assert!(admit_h2(&h2, &bare, bad).is_err());
}

#[test]
fn connection_options() {
    let close = [("host", "shop"), ("connection", "keep-alive, close")];
    assert!(judge("GET", "/", V11, &close).unwrap().close);
    assert!(!judge("GET", "/", V11, &[("host", "shop")]).unwrap().close);
    assert!(judge("GET", "/", V10, &[]).unwrap().close);
    assert!(
        !judge("GET", "/", V10, &[("connection", "Keep-Alive")])
            .unwrap()
            .close
    );
}

#[test]
fn retries_follow_rfc_9110() {
    let e = |retry| Error::new(ErrorType::UpstreamError, "x").retry(retry);
    assert!(may_retry(&e(Retry::Always), false, false));
    assert!(may_retry(&e(Retry::IfIdempotent), true, true));
    assert!(!may_retry(&e(Retry::IfIdempotent), false, true));
    assert!(!may_retry(&e(Retry::IfIdempotent), true, false));
    assert!(!may_retry(&e(Retry::Never), true, true));
}

#[test]
fn responses_are_normalised() {
    let mut h = HeaderMap::new();
    h.append(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    h.append(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    assert!(normalise_response(StatusCode::OK, &mut h));
    assert_eq!(h.get_all(header::CONTENT_LENGTH).iter().count(), 1);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3, 3"));
    assert!(normalise_response(StatusCode::OK, &mut h));
    assert_eq!(h[header::CONTENT_LENGTH], "3");
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    assert!(!normalise_response(StatusCode::OK, &mut h));
    assert!(!h.contains_key(header::CONTENT_LENGTH));
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    assert!(!normalise_response(StatusCode::NO_CONTENT, &mut h));
    assert!(normalise_response(StatusCode::NOT_MODIFIED, &mut h));
}

#[test]
fn failures_are_classified_by_whose_fault() {
    let malformed = client_failed(ClientFault::Malformed);
    assert_eq!(
        (status_of(&malformed).as_u16(), malformed.kind()),
        (400, ErrorType::BadRequest)
    );
    let aborted = client_failed(ClientFault::Aborted);
    assert_eq!(
        (status_of(&aborted).as_u16(), aborted.kind()),
        (499, ErrorType::ClientClosed)
    );
    let late = timed_out(Duration::from_secs(1));
    assert_eq!(
        (status_of(&late).as_u16(), late.kind()),
        (504, ErrorType::Timeout)
    );
    assert_eq!(late.what(), "upstream sent no response headers within 1s");
    let refused = Error::new(ErrorType::UpstreamUnavailable, "cannot connect");
    assert_eq!(status_of(&refused).as_u16(), 502);
    assert!(!ErrorType::BadRequest.is_error());
    let stalled = client_failed(ClientFault::TimedOut);
    assert_eq!(
        (
            status_of(&stalled).as_u16(),
            stalled.kind().label(408).as_ref()
        ),
        (408, "client_timeout")
    );
    assert!(!ErrorType::ClientTimeout.is_error(), "the client's failure");
    let shed = Error::new(ErrorType::Overloaded, "no upstream connection free");
    assert_eq!(status_of(&shed).as_u16(), 503);
    assert!(ErrorType::Overloaded.is_error(), "users were refused");
}

#[test]
fn origin_form_always_starts_with_a_slash() {
    for (target, want) in [
        ("http://shop.example?q=1", "/?q=1"),
        ("http://shop.example", "/"),
        ("http://shop.example/a?b", "/a?b"),
        ("/x", "/x"),
        ("*", "*"),
    ] {
        let uri: Uri = target.parse().unwrap();
        let got = origin_form(uri);
        assert_eq!(
            got.path_and_query().map(|p| p.as_str()),
            Some(want),
            "{target}"
        );
    }
}
