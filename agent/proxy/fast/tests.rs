use super::*;

fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
    httparse::Header {
        name,
        value: value.as_bytes(),
    }
}

#[test]
fn only_plain_requests_take_the_fast_path() {
    let plain = |body, close| Some(Plain { body, close });
    assert_eq!(plain_request(&[h("host", "a")]), plain(0, false));
    assert_eq!(
        plain_request(&[h("Content-Length", " 10 ")]),
        plain(10, false)
    );
    assert_eq!(
        plain_request(&[h("content-length", "65536")]),
        plain(65536, false)
    );
    let closing = [h("Connection", "keep-alive"), h("connection", "Close")];
    assert_eq!(plain_request(&closing), plain(0, true));
    for refused in [
        h("content-length", "65537"),
        h("content-length", "+5"),
        h("content-length", "5, 5"),
        h("content-length", ""),
        h("Transfer-Encoding", "chunked"),
        h("expect", "100-continue"),
        h("Upgrade", "websocket"),
    ] {
        assert_eq!(
            plain_request(&[h("host", "a"), refused]),
            None,
            "{refused:?}"
        );
    }
    let two = [h("content-length", "5"), h("content-length", "5")];
    assert_eq!(
        plain_request(&two),
        None,
        "two lengths are hyper's to judge"
    );

    for target in ["/", "/a?b", "http://h/x", "HTTPS://h/"] {
        assert!(fast_target(target), "{target}");
    }
    for target in ["*", "h:443", "ftp://h/", "http:/x"] {
        assert!(!fast_target(target), "{target}");
    }
}

#[test]
fn a_parsed_head_leaves_the_buffer_and_the_rest_stays() {
    let mut buf = BytesMut::from(
        &b"GET /a?q=1 HTTP/1.1\r\nHost: shop\r\nX-Many: 1\r\nx-many: 2\r\n\r\nGET /next"[..],
    );
    let Parsed::Ready(
        parts,
        Plain {
            body: 0,
            close: false,
        },
    ) = parse_request(&mut buf, 8192)
    else {
        panic!("not parsed");
    };
    assert_eq!(parts.method, Method::GET);
    assert_eq!(parts.uri, "/a?q=1");
    assert_eq!(parts.headers["host"], "shop");
    assert_eq!(parts.headers.get_all("x-many").iter().count(), 2);
    assert_eq!(&buf[..], b"GET /next");
    assert!(matches!(parse_request(&mut buf, 8192), Parsed::Partial));
    // Over the limit, HTTP/1.0, HTTP/2's preface and junk are hyper's (a 431, a 400, h2c …),
    // and the bytes stay for it.
    for other in [
        &b"GET /a HTTP/1.0\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /a HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET /a HTTP/1.1\r\nx: 0123456789\r\n\r\n",
    ] {
        let mut buf = BytesMut::from(other);
        assert!(
            matches!(parse_request(&mut buf, 30), Parsed::Other),
            "{other:?}"
        );
        assert_eq!(&buf[..], other);
    }
}
