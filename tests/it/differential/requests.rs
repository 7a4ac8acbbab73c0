//! Requests for the differential test: valid ones, and mutations that make them near-valid or hostile.

use proptest::prelude::*;

/// A request to send, before rendering.
#[derive(Debug, Clone)]
pub(super) struct Req {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    eol: &'static str,
}

impl Req {
    fn render(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {}{}",
            self.method, self.target, self.version, self.eol
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(self.eol.as_bytes());
        }
        out.extend_from_slice(self.eol.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.into()));
    }

    /// The body as one chunk and the last chunk, framed by `Transfer-Encoding: te`.
    fn chunk_body(&mut self, te: &str) {
        self.headers.retain(|(n, _)| n != "content-length");
        self.headers.push(("transfer-encoding".into(), te.into()));
        let mut body = Vec::new();
        if !self.body.is_empty() {
            body = format!("{:x}\r\n", self.body.len()).into_bytes();
            body.extend_from_slice(&self.body);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        self.body = body;
    }
}

/// Byte strings shown readably when a case fails.
#[derive(Clone)]
pub(super) struct Shown(pub(super) Vec<u8>);

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

pub(super) fn valid_request() -> impl Strategy<Value = Req> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]);
    let path = "(/[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,8}|/%[0-9A-F]{2}){1,4}/?";
    let query = prop::option::of("[a-zA-Z0-9=&%._~/?-]{0,16}");
    let names = prop::sample::select(vec![
        "accept",
        "user-agent",
        "x-custom",
        "x-trace",
        "cookie",
        "content-type",
        "cache-control",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "forwarded",
        "keep-alive",
        "te",
        "proxy-connection",
        "trailer",
        "via",
        "accept-encoding",
        "X-Mixed-Case",
        "authorization",
        "if-none-match",
        "x-dup",
        "x-dup",
        "connection",
    ]);
    let value = "[!-~]([ -~]{0,20}[!-~])?";
    let headers = prop::collection::vec((names, value), 0..=8);
    let host = prop::sample::select(vec![
        "shop.example",
        "localhost:8080",
        "127.0.0.1",
        "[::1]:80",
    ]);
    let body = prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 0..2048)];
    (method, path, query, headers, host, any::<bool>(), body).prop_map(
        |(method, path, query, headers, host, host_first, body)| {
            let mut headers: Vec<(String, Vec<u8>)> = headers
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.into_bytes()))
                .collect();
            let at = if host_first { 0 } else { headers.len() };
            headers.insert(at, ("host".into(), host.into()));
            if !body.is_empty() || method == "POST" {
                headers.push(("content-length".into(), body.len().to_string().into_bytes()));
            }
            Req {
                method: method.into(),
                target: query.map_or(path.clone(), |q| format!("{path}?{q}")),
                version: "HTTP/1.1".into(),
                headers,
                body,
                eol: "\r\n",
            }
        },
    )
}

/// What a hostile variant changes.
#[derive(Debug, Clone)]
pub(super) enum Mutation {
    /// Set (replace) a header.
    Header(&'static str, &'static str),
    /// Add one more line of a header.
    Add(&'static str, &'static str),
    Remove(&'static str),
    /// A second `Content-Length` line or value, with this transform of the length.
    Length(&'static str),
    /// Chunked framing with this `Transfer-Encoding` value.
    Te(&'static str),
    Method(&'static str),
    Target(&'static str),
    Version(&'static str),
    BareLf,
    /// A raw header line.
    Line(&'static [u8]),
    BigBody,
    /// 120 more headers.
    ManyHeaders,
    /// A 70 KiB header value.
    HugeHeader,
    /// Chunked, with a chunk extension and a trailer.
    ChunkedExtras,
}

pub(super) fn mutation() -> impl Strategy<Value = Mutation> {
    use Mutation::*;
    prop::sample::select(vec![
        Length("dup"),
        Length("dup-other"),
        Length("list"),
        Length("list-other"),
        Length("plus"),
        Length("minus"),
        Length("hex"),
        Length("space"),
        Length("empty"),
        Length("huge"),
        Length("zeros"),
        Length("20-digits"),
        Te("chunked"),
        Te("Chunked"),
        Te(" chunked "),
        Te("xchunked"),
        Te("chunked, identity"),
        Te("gzip, chunked"),
        Te("identity"),
        Te("gzip"),
        Te(""),
        Te("chunked,"),
        Add("transfer-encoding", "chunked"),
        Add("content-length", "5"),
        Remove("host"),
        Add("host", "shop.example"),
        Add("host", "other.example"),
        Header("host", "bad host"),
        Header("host", "a/b"),
        Header("host", "user@shop"),
        Header("host", "a\\b"),
        Header("host", "shop:http"),
        Header("host", ""),
        Header("host", "shop:8080"),
        Header("host", "[::1]"),
        Header("host", "a\x01b"),
        Header("connection", "content-length"),
        Header("connection", "transfer-encoding"),
        Header("connection", "host"),
        Header("connection", "close, content-length"),
        Header("connection", "x-custom"),
        Header("connection", "close"),
        Header("connection", "keep-alive, te"),
        Header("expect", "100-continue"),
        Header("upgrade", "websocket"),
        Header("x-request-id", "client-id-1"),
        Line(b"x-space : v"),
        Line(b" folded"),
        Line(b"x-nul: a\0b"),
        Line(b"x-cr: a\rb"),
        Line(b"x-del: a\x7fb"),
        Line(b"x-obs: caf\xc3\xa9"),
        Line(b": empty-name"),
        Line(b"x\tname: v"),
        Method("GE(T"),
        Method("get"),
        Method("PATCH"),
        Method("CONNECT"),
        Method("TRACE"),
        Target("http://other.example:8080/abs?q=1"),
        Target("HTTPS://shop.example/abs"),
        Target("ftp://shop.example/"),
        Target("*"),
        Target("shop.example:80"),
        Target("//double"),
        Target("/a b"),
        Target("/caf\u{e9}"),
        Target("http://user@shop.example/"),
        Version("HTTP/1.0"),
        Version("HTTP/1.2"),
        Version("HTTP/2.0"),
        Version("http/1.1"),
        Version(""),
        BareLf,
        BigBody,
        ManyHeaders,
        HugeHeader,
        ChunkedExtras,
        Target("/path#frag"),
        Target("http://shop.example"),
        Target("http://shop.example?q=1"),
        Target("http://[::1]:8080/x"),
        Target("http://a:b/"),
        Header("expect", "foo"),
        Header("upgrade", "h2c"),
        Header("content-length", "0"),
    ])
}

/// Apply `m` to `req`.
pub(super) fn mutate(req: &mut Req, m: &Mutation) {
    let length = req.body.len();
    match m {
        Mutation::Header(n, v) => req.set(n, v.as_bytes()),
        Mutation::Add(n, v) => req.headers.push((n.to_string(), v.as_bytes().to_vec())),
        Mutation::Remove(n) => req.headers.retain(|(name, _)| name != n),
        Mutation::Length(how) => {
            let value = match *how {
                "dup" => {
                    req.headers
                        .push(("content-length".into(), length.to_string().into_bytes()));
                    length.to_string()
                }
                "dup-other" => {
                    req.headers.push((
                        "content-length".into(),
                        (length + 1).to_string().into_bytes(),
                    ));
                    length.to_string()
                }
                "list" => format!("{length}, {length}"),
                "list-other" => format!("{length}, {}", length + 1),
                "plus" => format!("+{length}"),
                "minus" => format!("-{length}"),
                "hex" => format!("0x{length:x}"),
                "space" => format!("{length} {length}"),
                "empty" => String::new(),
                "huge" => "99999999999999999999".into(),
                "zeros" => format!("000{length}"),
                _ => format!("{length:0>20}"),
            };
            req.set("content-length", value.into_bytes());
        }
        Mutation::Te(te) => req.chunk_body(te),
        Mutation::Method(method) => req.method = method.to_string(),
        Mutation::Target(target) => req.target = target.to_string(),
        Mutation::Version(version) => req.version = version.to_string(),
        Mutation::BareLf => req.eol = "\n",
        Mutation::Line(line) => {
            // Rendered as `name: value`; a raw line goes in as a name with an empty value
            // would get ": " appended, so split it at the first ": ".
            let text = line.to_vec();
            let (name, value) = match text.windows(2).position(|w| w == b": ") {
                Some(i) => (text[..i].to_vec(), text[i + 2..].to_vec()),
                None => (text.clone(), Vec::new()),
            };
            req.headers
                .push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        Mutation::ManyHeaders => {
            req.headers
                .extend((0..120).map(|i| (format!("x-many-{i}"), b"v".to_vec())));
        }
        Mutation::HugeHeader => req.set("x-huge", vec![b'h'; 70_000]),
        Mutation::ChunkedExtras => {
            req.chunk_body("chunked");
            let end = req.body.len() - 2;
            req.body
                .splice(end..end, b"x-trailer: t\r\n".iter().copied());
            if let Some(crlf) = req.body.windows(2).position(|w| w == b"\r\n") {
                req.body.splice(crlf..crlf, b";ext=\"v\"".iter().copied());
            }
        }
        Mutation::BigBody => {
            req.body = vec![b'b'; 70_000];
            req.set("content-length", "70000");
        }
    }
}

/// A request: valid, or with one to three mutations.
pub(super) fn request() -> impl Strategy<Value = Shown> {
    let mutations =
        prop_oneof![2 => Just(Vec::new()), 3 => prop::collection::vec(mutation(), 1..=3)];
    (valid_request(), mutations).prop_map(|(mut req, mutations)| {
        for m in &mutations {
            mutate(&mut req, m);
        }
        Shown(req.render())
    })
}
