use super::*;

fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
    httparse::Header {
        name,
        value: value.as_bytes(),
    }
}

#[test]
fn framing_follows_rfc_9112() {
    let cl = [h("Content-Length", "42")];
    assert_eq!(response_framing(false, 200, &cl), Ok(Framing::Length(42)));
    assert_eq!(response_framing(true, 200, &cl), Ok(Framing::Empty));
    for status in [100, 103, 204, 304] {
        assert_eq!(response_framing(false, status, &cl), Ok(Framing::Empty));
    }
    let zero = [h("content-length", "0")];
    assert_eq!(response_framing(false, 200, &zero), Ok(Framing::Empty));
    // Transfer-Encoding wins over Content-Length; chunked must be the last coding.
    let both = [
        h("content-length", "5"),
        h("Transfer-Encoding", "gzip, chunked"),
    ];
    assert_eq!(response_framing(false, 200, &both), Ok(Framing::Chunked));
    let not_last = [h("transfer-encoding", "chunked, gzip")];
    assert_eq!(response_framing(false, 200, &not_last), Ok(Framing::Close));
    assert_eq!(response_framing(false, 200, &[]), Ok(Framing::Close));
    // Repeated equal lengths are one length; different or junk ones are an error.
    let same = [h("content-length", "7, 7"), h("content-length", "7")];
    assert_eq!(response_framing(false, 200, &same), Ok(Framing::Length(7)));
    for bad in ["7, 8", "-1", "", "1e3", "99999999999999999999"] {
        let v = [h("content-length", bad)];
        assert_eq!(
            response_framing(false, 200, &v),
            Err(WireError::ContentLength),
            "{bad:?}"
        );
    }
}

#[test]
fn chunk_scan_finds_the_end_across_any_split() {
    let body = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
    // Whole.
    let mut s = ChunkScan::default();
    assert_eq!(
        s.scan(body),
        Ok(Scanned {
            used: body.len(),
            data: 31
        })
    );
    assert_eq!(s, ChunkScan::Done);
    // Every split point, the way reads would deliver it: unused bytes are offered again.
    for cut in 0..body.len() {
        let mut s = ChunkScan::default();
        let first = s.scan(&body[..cut]).unwrap();
        let rest = &body[first.used..];
        let second = s.scan(rest).unwrap();
        assert_eq!(first.used + second.used, body.len(), "cut {cut}");
        assert_eq!(first.data + second.data, 31, "cut {cut}");
        assert_eq!(s, ChunkScan::Done, "cut {cut}");
    }
    // Bytes after the end are not part of the body.
    let mut s = ChunkScan::default();
    let mut more = body.to_vec();
    more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(s.scan(&more).unwrap().used, body.len());
}

#[test]
fn chunk_scan_rejects_what_is_not_chunked() {
    assert_eq!(ChunkScan::default().scan(b"zz\r\n"), Err(WireError::Chunk));
    assert_eq!(
        ChunkScan::default().scan(b"3\r\nabcXY"),
        Err(WireError::Chunk)
    );
}

#[test]
fn hop_by_hop_names_are_known_in_any_case() {
    for name in [
        "Connection",
        "keep-alive",
        "Proxy-Connection",
        "proxy-authenticate",
        "TE",
        "trailer",
        "Transfer-Encoding",
        "upgrade",
    ] {
        assert!(is_hop_by_hop(name.as_bytes()), "{name}");
    }
    for name in [
        "content-length",
        "content-type",
        "x-request-id",
        "date",
        "tea",
    ] {
        assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
    }
    let conn: [&[u8]; 2] = [b"keep-alive, X-Hop", b"close"];
    assert!(named_by_connection(&conn, b"x-hop"));
    assert!(!named_by_connection(&conn, b"x-kept"));
    assert!(names_headers(b"keep-alive, X-Hop"));
    assert!(!names_headers(b"Keep-Alive, close,"));
    assert!(has_close(b"Keep-Alive, Close"));
    assert!(!has_close(b"keep-alive"));
}

#[test]
fn heads_and_chunks_are_written_as_http_1_1() {
    let req = http::Request::get("http://ignored/a/b?q=1")
        .header("host", "shop")
        .header("x-one", "1")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let mut out = Vec::new();
    encode_request_head(&mut out, &parts);
    assert_eq!(
        out,
        b"GET /a/b?q=1 HTTP/1.1\r\nhost: shop\r\nx-one: 1\r\n\r\n"
    );

    let mut out = Vec::new();
    push_status_line(&mut out, http::StatusCode::BAD_GATEWAY);
    assert_eq!(out, b"HTTP/1.1 502 Bad Gateway\r\n");

    let mut out = Vec::new();
    push_chunk(&mut out, b"");
    push_chunk(&mut out, &[b'x'; 26]);
    assert_eq!(&out[..4], b"1a\r\n");
    assert_eq!(out.len(), 4 + 26 + 2);

    let mut out = Vec::new();
    push_date(&mut out);
    let text = std::str::from_utf8(&out).unwrap();
    let value = text.strip_prefix("date: ").unwrap().trim_end();
    assert!(httpdate::parse_http_date(value).is_ok(), "{text}");
}
