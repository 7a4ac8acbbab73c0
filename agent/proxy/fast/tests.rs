use bytes::BytesMut;
use http::Method;

use super::head::*;
use crate::proxy::phases::{Admitted, BodyLen, Target};

const LIMITS: Limits = Limits {
    max_head: 8192,
    hyper_only: false,
    first: true,
};

fn admitted(body: BodyLen, close: bool, expect: bool, upgrade: bool, target: Target) -> Admitted {
    Admitted {
        body,
        close,
        expect,
        upgrade,
        target,
    }
}

#[test]
fn only_plain_requests_take_the_fast_path() {
    let plain = |body: BodyLen, close| admitted(body, close, false, false, Target::Origin);
    let taken = |a: Admitted| plain_request(1, &a).map(|p| p.body);
    assert_eq!(taken(plain(BodyLen::None, false)), Some(0));
    assert_eq!(taken(plain(BodyLen::Length(10), true)), Some(10));
    assert_eq!(taken(plain(BodyLen::Length(65536), false)), Some(65536));
    assert_eq!(taken(plain(BodyLen::Length(65537), false)), None);
    assert_eq!(taken(plain(BodyLen::Chunked, false)), None);
    assert_eq!(
        plain_request(0, &plain(BodyLen::None, false)),
        None,
        "HTTP/1.0"
    );
    let expect = admitted(BodyLen::Length(1), false, true, false, Target::Origin);
    assert_eq!(taken(expect), None);
    let upgrade = admitted(BodyLen::None, false, false, true, Target::Origin);
    assert_eq!(taken(upgrade), None);
    let absolute = admitted(BodyLen::None, false, false, false, Target::Absolute);
    assert_eq!(taken(absolute), Some(0));
    let options = admitted(BodyLen::None, false, false, false, Target::Asterisk);
    assert_eq!(taken(options), None, "OPTIONS * goes to hyper");
}

#[test]
fn a_parsed_head_leaves_the_buffer_and_the_rest_stays() {
    let mut buf = BytesMut::from(
        &b"GET /a?q=1 HTTP/1.1\r\nHost: shop\r\nX-Many: 1\r\nx-many: 2\r\n\r\nGET /next"[..],
    );
    let Parsed::Ready(parts, plain) = parse_request(&mut buf, LIMITS) else {
        panic!("not parsed");
    };
    assert_eq!((plain.body, plain.admitted.close), (0, false));
    assert_eq!(parts.method, Method::GET);
    assert_eq!(parts.uri, "/a?q=1");
    assert_eq!(parts.headers["host"], "shop");
    assert_eq!(parts.headers.get_all("x-many").iter().count(), 2);
    assert_eq!(&buf[..], b"GET /next");
    assert!(matches!(parse_request(&mut buf, LIMITS), Parsed::Partial));
    // HTTP/1.0, HTTP/2's preface, chunked and Expect are hyper's; the bytes stay for it.
    for other in [
        &b"GET /a HTTP/1.0\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST /a HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
    ] {
        let mut buf = BytesMut::from(other);
        assert!(
            matches!(parse_request(&mut buf, LIMITS), Parsed::Other),
            "{other:?}"
        );
        assert_eq!(&buf[..], other);
    }
    let hyper_only = Limits {
        hyper_only: true,
        ..LIMITS
    };
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"[..]);
    assert!(matches!(parse_request(&mut buf, hyper_only), Parsed::Other));
}

#[test]
fn bad_heads_are_refused_here_not_handed_on() {
    let small = Limits {
        max_head: 30,
        ..LIMITS
    };
    let later = Limits {
        first: false,
        ..LIMITS
    };
    let cases: [(&[u8], Limits, u16); 9] = [
        (b"GET /a HTTP/1.1\r\nbad header\r\n\r\n", LIMITS, 400),
        (b"GET /a HTTP/1.1\r\nhost : a\r\n\r\n", LIMITS, 400),
        (
            b"GET /a HTTP/1.1\r\nhost: a\r\nx: 0123456789abcdef\r\n\r\n",
            small,
            431,
        ),
        (b"GET /a HTTP/1.1\r\n\r\n", LIMITS, 400),
        (b"CONNECT a:443 HTTP/1.1\r\nhost: a\r\n\r\n", LIMITS, 405),
        (
            b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            LIMITS,
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: xchunked\r\n\r\n",
            LIMITS,
            501,
        ),
        (b"GET /\r\n\r\n", LIMITS, 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", later, 400),
    ];
    for (head, limits, status) in cases {
        let mut buf = BytesMut::from(head);
        match parse_request(&mut buf, limits) {
            Parsed::Refused(refusal, _) => assert_eq!(refusal.status.as_u16(), status, "{head:?}"),
            _ => panic!("not refused: {head:?}"),
        }
    }
}

#[test]
fn a_resent_head_names_its_own_span_in_every_trace_header() {
    let (old, new) = ([0xab; 8], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    let head = "GET /a HTTP/1.1\r\nhost: h\r\n\
        traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01\r\n\
        b3: 4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-1\r\n\r\n";
    let resent = super::respan(head.as_bytes(), &old, &new);
    let expected = head.replace("abababababababab", "0123456789abcdef");
    assert_eq!(String::from_utf8(resent).unwrap(), expected);
    // A head without the id is copied unchanged.
    let plain = b"GET /b HTTP/1.1\r\nhost: h\r\n\r\n";
    assert_eq!(super::respan(plain, &old, &new), plain);
}
