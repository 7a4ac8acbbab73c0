//! Generators of valid and hostile HTTP/1.1 framing: chunked bodies, response heads, lengths.

use proptest::prelude::*;
use proptest::sample::Index;
pub(super) fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(options).prop_map(|s| s.as_bytes().to_vec())
}

/// `valid`, or (in a hostile case, now and then) one of `bad`.
pub(super) fn or_bad(
    hostile: bool,
    valid: BoxedStrategy<Vec<u8>>,
    bad: BoxedStrategy<Vec<u8>>,
) -> BoxedStrategy<Vec<u8>> {
    if hostile {
        prop_oneof![6 => valid, 1 => bad].boxed()
    } else {
        valid
    }
}

/// A line end: CRLF, or a broken one.
pub(super) fn eol(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let crlf = Just(b"\r\n".to_vec()).boxed();
    or_bad(
        hostile,
        crlf,
        pick(&["\n", "\r", "", "\r\r\n", " \r\n"]).boxed(),
    )
}

/// How a chunk size is written: hex in either case, maybe with leading zeros, or broken.
pub(super) fn size_form(size: usize, hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let hex = format!("{size:x}");
    let upper = hex.to_uppercase();
    let zeros = hex.clone();
    let valid = prop_oneof![
        6 => Just(hex.clone().into_bytes()),
        2 => Just(upper.into_bytes()),
        2 => (1..18usize).prop_map(move |n| format!("{}{zeros}", "0".repeat(n)).into_bytes()),
    ];
    let bad = [
        format!("+{hex}"),
        format!("-{hex}"),
        format!("0x{hex}"),
        format!(" {hex}"),
        format!("{hex} "),
        format!("{hex}\t"),
        String::new(),
        format!("{:x}", size + 1),
        format!("{:x}", size.saturating_sub(1)),
        format!("{:0>17}", hex),
    ];
    let bad = prop::sample::select(bad.to_vec()).prop_map(String::into_bytes);
    or_bad(hostile, valid.boxed(), bad.boxed())
}

/// A chunk extension (with its `;`), or none; hostile ones have bad bytes or are long.
pub(super) fn extension(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let token = "[a-z0-9!#$%&'*+.^_`|~-]{1,8}";
    let quoted = "[ !#-\\[\\]-~\t]{0,12}";
    let valid = prop_oneof![
        6 => Just(Vec::new()),
        2 => (token, prop::option::of(token)).prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}").into_bytes(),
            None => format!(";{n}").into_bytes(),
        }),
        1 => (token, quoted).prop_map(|(n, q)| format!(";{n}=\"{q}\"").into_bytes()),
        1 => pick(&[";a=b;c", ";a=\"x\\\"y\"", ";a=\t b"]),
    ];
    let long = |r: std::ops::Range<usize>| {
        r.prop_map(|n| {
            let mut e = b";x=".to_vec();
            e.resize(n, b'e');
            e
        })
    };
    let bad = prop_oneof![
        3 => pick(&[" ;a=b", ";a\nb", ";a\rb", ";a\0b", ";a\x7fb", ";a=b ", ";\n", ";\r", ";", ";a=\"b"]),
        1 => Just(vec![b';', b'a', b'=', 0x80, 0xff]),
        2 => long(4070..4110),
        1 => long(5000..17000),
    ];
    or_bad(hostile, valid.boxed(), bad.boxed())
}

/// One data chunk: size line, data, and what follows the data.
pub(super) fn chunk(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let data = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..48),
        1 => prop::collection::vec(any::<u8>(), 1..2500)
    ];
    let crlf = Just(b"\r\n".to_vec()).boxed();
    let after = or_bad(
        hostile,
        crlf,
        pick(&["", "\n", "\r", "x\r\n", "\r\n\r\n"]).boxed(),
    );
    data.prop_flat_map(move |data| {
        let size = size_form(data.len(), hostile);
        (
            size,
            extension(hostile),
            eol(hostile),
            Just(data),
            after.clone(),
        )
    })
    .prop_map(|(size, ext, eol, data, after)| [size, ext, eol, data, after].concat())
    .boxed()
}

/// A trailer field line with its line end.
pub(super) fn trailer(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let valid = (
        "[a-zA-Z][a-z0-9-]{0,8}",
        "[ -~]{0,12}",
        pick(&[": ", ":", ":\t"]),
    )
        .prop_map(|(n, v, colon)| [n.into_bytes(), colon, v.trim().as_bytes().to_vec()].concat());
    let bad = pick(&[
        "no-colon",
        "bad name: v",
        "x-t :v",
        " ",
        "\t",
        " folded",
        ": v",
        "x-t: a\0b",
        "x-t: a\rb",
        "x-\x01: v",
        "x-t: \u{e9}",
        "x-t: a\nb",
    ]);
    (or_bad(hostile, valid.boxed(), bad.boxed()), eol(hostile))
        .prop_map(|(l, e)| [l, e].concat())
        .boxed()
}

/// A damage done to a whole body.
#[derive(Debug, Clone)]
pub(super) enum Damage {
    None,
    Truncate(Index),
    Flip(Index, u8),
    Insert(Index, u8),
}

pub(super) fn damage(hostile: bool) -> BoxedStrategy<Damage> {
    if !hostile {
        return Just(Damage::None).boxed();
    }
    prop_oneof![
        9 => Just(Damage::None),
        1 => any::<Index>().prop_map(Damage::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
    .boxed()
}

/// Bytes shown as a byte string literal when a case fails.
#[derive(Clone)]
pub(super) struct Wire(pub(super) Vec<u8>);

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A chunked body: valid, or (half the cases) hostile in a few places.
pub(super) fn chunked_body() -> impl Strategy<Value = Wire> {
    prop_oneof![12 => structured_body(), 1 => at_hyper_caps()]
}

/// A valid body at hyper's buffer caps, every line within Redline's 4 KiB: extensions
/// adding up to over 16 KiB, about 100 trailer fields, or trailers of over 16 KiB.
fn at_hyper_caps() -> impl Strategy<Value = Wire> {
    let line = |start: &str, n: usize| {
        let mut l = start.as_bytes().to_vec();
        l.resize(n, b'v');
        l.extend_from_slice(b"\r\n");
        l
    };
    (0..3u8, 2..8usize, 3000..4050usize, 90..110usize).prop_map(move |(kind, k, n, many)| {
        let body = match kind {
            0 => {
                let chunk = [line("1;x=", n), b"a\r\n".to_vec()].concat();
                [chunk.repeat(k), b"0\r\n\r\n".to_vec()].concat()
            }
            1 => [
                b"0\r\n".to_vec(),
                b"x-t: v\r\n".repeat(many),
                b"\r\n".to_vec(),
            ]
            .concat(),
            _ => [
                b"0\r\n".to_vec(),
                line("x-t: ", n).repeat(k),
                b"\r\n".to_vec(),
            ]
            .concat(),
        };
        Wire(body)
    })
}

fn structured_body() -> impl Strategy<Value = Wire> {
    any::<bool>()
        .prop_flat_map(|hostile| {
            let zero = pick(&[
                "00",
                "000",
                "00000000000000000",
                "0 ",
                "+0",
                "-0",
                "0x0",
                " 0",
                "",
            ]);
            let last = (
                or_bad(hostile, Just(b"0".to_vec()).boxed(), zero.boxed()),
                extension(hostile),
                eol(hostile),
            );
            (
                prop::collection::vec(chunk(hostile), 0..6),
                last,
                prop::collection::vec(trailer(hostile), 0..3),
                eol(hostile),
                damage(hostile),
            )
        })
        .prop_map(|(chunks, (size, ext, eol), trailers, end, damage)| {
            let mut body = [chunks.concat(), size, ext, eol, trailers.concat(), end].concat();
            match damage {
                Damage::None => {}
                Damage::Truncate(i) => body.truncate(i.index(body.len() + 1)),
                Damage::Flip(i, b) if !body.is_empty() => {
                    let at = i.index(body.len());
                    body[at] ^= b.max(1);
                }
                Damage::Flip(..) => {}
                Damage::Insert(i, b) => body.insert(i.index(body.len() + 1), b),
            }
            Wire(body)
        })
}

/// A response for the framing property: its head, the body bytes after it (a chunked
/// encoding of `data`, then `extra` stray bytes), and whether it answers a HEAD.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub(super) head: Wire,
    pub(super) status: u16,
    pub(super) http10: bool,
    pub(super) head_request: bool,
    pub(super) data: Wire,
    pub(super) extra: Wire,
}

/// A `Content-Length` value, near `n` or broken.
pub(super) fn content_length(n: u64) -> BoxedStrategy<String> {
    let m = n + 1 + n % 3;
    let forms = vec![
        format!("{n}, {n}"),
        format!("{n},{n}"),
        format!("{n},{m}"),
        format!("{n}, "),
        format!("+{n}"),
        format!("-{n}"),
        format!("0x{n}"),
        format!("{n} {n}"),
        format!("{n:0>20}"),
        format!("{n:0>19}"),
        format!("{n}e0"),
        String::new(),
        "18446744073709551615".into(),
        "18446744073709551613".into(),
        "99999999999999999999".into(),
    ];
    prop_oneof![8 => Just(n.to_string()), 2 => Just(m.to_string()), 3 => prop::sample::select(forms)].boxed()
}

pub(super) fn response() -> impl Strategy<Value = Response> {
    let te = prop::sample::select(vec![
        "chunked",
        "Chunked",
        "CHUNKED",
        "gzip",
        "xchunked",
        "chunked, identity",
        "gzip, chunked",
        "gzip,chunked",
        "identity",
        "",
        " , chunked",
        "chunked,",
        "chunked;q=1",
    ]);
    let filler = prop::sample::select(vec!["content-type: text/plain", "x-a: b", "date: x"]);
    let statuses = vec![100, 102, 103, 200, 201, 204, 206, 301, 304, 404, 500, 503];
    (
        (
            prop::sample::select(statuses),
            any::<bool>(),
            prop::bool::weighted(0.25),
        ),
        (0..48u64).prop_flat_map(|n| prop::collection::vec(content_length(n), 0..=3)),
        prop::collection::vec(te, 0..=2),
        prop::collection::vec(filler, 0..=2),
        prop::collection::vec(any::<u8>(), 0..20),
        prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), 1..10)],
    )
        .prop_flat_map(
            |((status, head_request, http10), cls, tes, filler, data, extra)| {
                let mut lines: Vec<String> =
                    cls.iter().map(|v| format!("content-length: {v}")).collect();
                lines.extend(tes.iter().map(|v| format!("transfer-encoding: {v}")));
                lines.extend(filler.iter().map(|f| f.to_string()));
                (
                    Just((status, head_request, http10, data, extra)),
                    Just(lines).prop_shuffle(),
                )
            },
        )
        .prop_map(|((status, head_request, http10, data, extra), lines)| {
            let version = if http10 { "1.0" } else { "1.1" };
            let mut head = format!("HTTP/{version} {status} Whatever\r\n");
            for line in lines {
                head.push_str(&line);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            Response {
                head: Wire(head.into_bytes()),
                status,
                http10,
                head_request,
                data: Wire(data),
                extra: Wire(extra),
            }
        })
}

/// A `Content-Length` request header value, valid or not.
pub(super) fn request_length() -> impl Strategy<Value = Wire> {
    let forms = prop::sample::select(vec![
        "+5",
        "-1",
        "0x10",
        "5 5",
        "5, 5",
        "5,5",
        "",
        "1e3",
        "1_0",
        "\u{663}",
        "\u{ff15}",
        "5;",
        "18446744073709551613",
        "18446744073709551614",
        "18446744073709551615",
        "18446744073709551616",
        "9999999999999999999",
        "10000000000000000000",
    ]);
    prop_oneof![
        4 => "[0-9]{1,25}".prop_map(String::into_bytes),
        2 => ("0{1,22}", "[0-9]{1,4}").prop_map(|(z, d)| (z + &d).into_bytes()),
        2 => forms.prop_map(|s| s.as_bytes().to_vec()),
        1 => ("[ \t]{0,2}", "[0-9]{1,3}", "[ \t]{0,2}").prop_map(|(a, d, b)| (a + &d + &b).into_bytes()),
        1 => prop::collection::vec(prop::sample::select(b"0123456789 ,+-x\t\x0b\x0c\x80".to_vec()), 0..6),
    ]
    .prop_map(Wire)
}
