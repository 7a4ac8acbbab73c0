//! A minimal protobuf writer for OTLP spans: fields are written straight from borrowed strings.
//!
//! Why not `opentelemetry-proto`'s structs for spans: building them costs an
//! allocation per attribute key and value (about 45 per request), and prost
//! recomputes nested lengths at every level while encoding. With every request
//! traced, that was a measurable share of the proxy's CPU. Field numbers are
//! those of `opentelemetry/proto/trace/v1/trace.proto`; the unit tests decode
//! the output with the generated prost types.

use prost::encoding::{WireType, encoded_len_varint};

/// `Span.attributes`.
pub const SPAN_ATTRIBUTES: u32 = 9;

pub mod logs;
/// `ScopeSpans.spans`.
pub const SCOPE_SPANS_SPANS: u32 = 2;

/// A varint; most written here (tags, short lengths) fit one byte, which takes one push.
/// (prost's generic `encode_varint` goes through `BufMut` byte by byte, and showed in profiles.)
#[inline]
fn encode_varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

#[inline]
fn key_len(tag: u32) -> usize {
    encoded_len_varint(u64::from(tag << 3))
}

/// Encoded size of a length-delimited field with a body of `len` bytes.
#[inline]
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A `bytes`, `string` or embedded-message field.
#[inline]
pub fn bytes(buf: &mut Vec<u8>, tag: u32, data: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(data.len() as u64, buf);
    buf.extend_from_slice(data);
}

/// A `string` field made of several pieces, without joining them first.
#[inline]
pub fn string_parts(buf: &mut Vec<u8>, tag: u32, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

/// A `fixed64` field.
pub fn fixed64(buf: &mut Vec<u8>, tag: u32, v: u64) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `fixed32` field.
pub fn fixed32(buf: &mut Vec<u8>, tag: u32, v: u32) {
    encode_key(tag, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A varint field (`uint*`, non-negative `int*`, enums).
pub fn varint(buf: &mut Vec<u8>, tag: u32, v: u64) {
    encode_key(tag, WireType::Varint, buf);
    encode_varint(v, buf);
}

/// Longest attribute key a [`Key`] holds (so its length is one varint byte).
const KEY_MAX: usize = 64;

/// An attribute key, encoded once at compile time: `KeyValue.key` (field 1) and the tag
/// of `KeyValue.value` (field 2). Writing an attribute then copies this prefix instead of
/// working out and writing two tags and the key's length for every attribute of every span.
///
/// ```
/// use redline::telemetry::wire::{Key, attr_str};
/// static ROUTE: Key = Key::new("http.route");
/// let mut span = Vec::new();
/// attr_str(&mut span, &ROUTE, "/orders/{id}");
/// assert_eq!(&span[..4], b"\x4a\x1c\x0a\x0a"); // Span.attributes, 28 bytes, key, 10 bytes
/// ```
#[derive(Debug)]
pub struct Key {
    prefix: [u8; KEY_MAX + 3],
    len: u8,
}

impl Key {
    /// The encoded prefix of `key`. A key longer than 64 bytes panics, which in a `static`
    /// (as [`Key`]s are meant to be) fails the build.
    pub const fn new(key: &str) -> Key {
        let k = key.as_bytes();
        assert!(k.len() <= KEY_MAX, "attribute key too long");
        let mut prefix = [0u8; KEY_MAX + 3];
        prefix[0] = 1 << 3 | WireType::LengthDelimited as u8;
        prefix[1] = k.len() as u8;
        let mut i = 0;
        while i < k.len() {
            prefix[2 + i] = k[i];
            i += 1;
        }
        prefix[2 + k.len()] = 2 << 3 | WireType::LengthDelimited as u8;
        Key {
            prefix,
            len: (k.len() + 3) as u8,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.prefix[..usize::from(self.len)]
    }
}

/// `KeyValue { key, value: AnyValue { string_value } }` as a `Span.attributes` entry.
#[inline]
pub fn attr_str(buf: &mut Vec<u8>, key: &Key, value: &str) {
    key_value_head(buf, SPAN_ATTRIBUTES, key, field_len(1, value.len()));
    bytes(buf, 1, value.as_bytes());
}

/// [`attr_str`] with a value made of several pieces, without joining them first.
#[inline]
pub fn attr_str_parts(buf: &mut Vec<u8>, key: &Key, parts: &[&str]) {
    let value_len: usize = parts.iter().map(|p| p.len()).sum();
    key_value_head(buf, SPAN_ATTRIBUTES, key, field_len(1, value_len));
    string_parts(buf, 1, parts);
}

/// The head of a `KeyValue` attribute in field `tag` (below 16, so one byte): its tag and
/// length, the key, and the tag and length of an `AnyValue` of `any` bytes.
#[inline]
fn key_value_head(buf: &mut Vec<u8>, tag: u32, key: &Key, any: usize) {
    let kv = usize::from(key.len) + encoded_len_varint(any as u64) + any;
    buf.push((tag << 3) as u8 | WireType::LengthDelimited as u8);
    encode_varint(kv as u64, buf);
    buf.extend_from_slice(key.bytes());
    encode_varint(any as u64, buf);
}

/// `KeyValue { key, value: AnyValue { int_value } }` as a `Span.attributes` entry.
#[inline]
pub fn attr_int(buf: &mut Vec<u8>, key: &Key, value: i64) {
    // Two's complement, as protobuf encodes a negative int64.
    let raw = value as u64;
    key_value_head(
        buf,
        SPAN_ATTRIBUTES,
        key,
        key_len(3) + encoded_len_varint(raw),
    );
    varint(buf, 3, raw);
}

/// `KeyValue { key, value: AnyValue { bool_value } }` as a `Span.attributes` entry.
#[inline]
pub fn attr_bool(buf: &mut Vec<u8>, key: &Key, value: bool) {
    key_value_head(buf, SPAN_ATTRIBUTES, key, key_len(2) + 1);
    varint(buf, 2, u64::from(value));
}

/// `KeyValue { key, value: AnyValue { array_value: [string_value] } }` as a `Span.attributes` entry.
pub fn attr_str_array(buf: &mut Vec<u8>, key: &Key, value: &str) {
    let item = field_len(1, value.len());
    let array = field_len(1, item);
    key_value_head(buf, SPAN_ATTRIBUTES, key, field_len(5, array));
    encode_key(5, WireType::LengthDelimited, buf);
    encode_varint(array as u64, buf);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(item as u64, buf);
    bytes(buf, 1, value.as_bytes());
}

/// A length-delimited field `tag` whose body `write` appends in place; its length is
/// filled in afterwards. Room for a two-byte length is kept, which fits any body of
/// 128 bytes to 16 KiB (every ordinary span); others move the body once.
pub fn nested(buf: &mut Vec<u8>, tag: u32, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    write(buf);
    let len = buf.len() - at - 2;
    if (128..16_384).contains(&len) {
        buf[at] = len as u8 | 0x80;
        buf[at + 1] = (len >> 7) as u8;
    } else {
        let mut head = Vec::with_capacity(10);
        encode_varint(len as u64, &mut head);
        buf.splice(at..at + 2, head);
    }
}

/// `Span.status` (field 15): `Status { message, code }`; code 0 (unset) writes an empty status.
pub fn status(buf: &mut Vec<u8>, code: i32, message: &str) {
    let body = if code == 0 {
        0
    } else {
        field_len(2, message.len()) + key_len(3) + encoded_len_varint(code as u64)
    };
    encode_key(15, WireType::LengthDelimited, buf);
    encode_varint(body as u64, buf);
    if code != 0 {
        bytes(buf, 2, message.as_bytes());
        varint(buf, 3, code as u64);
    }
}

/// `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource, scope_spans: [ScopeSpans { scope, spans }] }] }`,
/// from the encoded resource and scope and the already encoded `ScopeSpans.spans` entries, copying `spans` once.
///
/// `ExportLogsServiceRequest` has the same shape and field numbers (`resource_logs`,
/// `resource`, `scope_logs`, `scope`, `log_records`), so this head serves logs too.
///
/// Only the head, up to where the spans start: `spans` bytes of encoded
/// `ScopeSpans.spans` entries are sent after it, as they are.
pub fn trace_request_head(resource: &[u8], scope: &[u8], spans: usize) -> Vec<u8> {
    let scope_spans = field_len(1, scope.len()) + spans;
    let resource_spans = field_len(1, resource.len()) + field_len(2, scope_spans);
    let mut out = Vec::with_capacity(field_len(1, resource_spans) - spans);
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(resource_spans as u64, &mut out);
    bytes(&mut out, 1, resource);
    encode_key(2, WireType::LengthDelimited, &mut out);
    encode_varint(scope_spans as u64, &mut out);
    bytes(&mut out, 1, scope);
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
    use prost::Message;

    use super::*;

    #[test]
    fn varints_match_prost_at_every_length() {
        let mut values = vec![0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX];
        values.extend((0..64).map(|shift| 1u64 << shift));
        values.extend((1..64).map(|shift| (1u64 << shift) - 1));
        for v in values {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            encode_varint(v, &mut ours);
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(ours.len(), encoded_len_varint(v), "{v}");
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        encode_key(SPAN_ATTRIBUTES, WireType::LengthDelimited, &mut ours);
        prost::encoding::encode_key(SPAN_ATTRIBUTES, WireType::LengthDelimited, &mut theirs);
        assert_eq!(ours, theirs);
    }

    fn span_bytes() -> Vec<u8> {
        let mut span = Vec::new();
        bytes(&mut span, 1, &[1; 16]);
        bytes(&mut span, 2, &[2; 8]);
        string_parts(&mut span, 5, &["GET", " ", "/x"]);
        varint(&mut span, 6, 2);
        fixed64(&mut span, 7, 10);
        fixed64(&mut span, 8, 20);
        attr_str(&mut span, &Key::new("k"), "v");
        attr_str(&mut span, &Key::new("empty"), "");
        attr_int(&mut span, &Key::new("n"), 300);
        attr_int(&mut span, &Key::new("neg"), -2);
        attr_str_array(&mut span, &Key::new("a"), &"long".repeat(40));
        attr_str_parts(&mut span, &Key::new(&"k".repeat(64)), &["a", "", "bc"]);
        status(&mut span, 2, "timeout");
        fixed32(&mut span, 16, 0x301);
        span
    }

    #[test]
    fn prost_decodes_what_the_writer_wrote() {
        let s = Span::decode(span_bytes().as_slice()).unwrap();
        assert_eq!((s.trace_id, s.span_id), (vec![1; 16], vec![2; 8]));
        assert_eq!((s.name.as_str(), s.kind), ("GET /x", 2));
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano, s.flags),
            (10, 20, 0x301)
        );
        let values: Vec<(String, Option<Value>)> = s
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
            .collect();
        assert_eq!(
            values[0],
            ("k".into(), Some(Value::StringValue("v".into())))
        );
        assert_eq!(
            values[1],
            ("empty".into(), Some(Value::StringValue(String::new())))
        );
        assert_eq!(values[2], ("n".into(), Some(Value::IntValue(300))));
        assert_eq!(values[3], ("neg".into(), Some(Value::IntValue(-2))));
        assert_eq!(
            values[5],
            ("k".repeat(64), Some(Value::StringValue("abc".into())))
        );
        let Some(Value::ArrayValue(a)) = &values[4].1 else {
            panic!("{values:?}")
        };
        assert_eq!(
            a.values[0].value,
            Some(Value::StringValue("long".repeat(40)))
        );
        let st = s.status.unwrap();
        assert_eq!(
            (st.code, st.message.as_str()),
            (StatusCode::Error as i32, "timeout")
        );
        let mut unset = Vec::new();
        status(&mut unset, 0, "ignored");
        let s = Span::decode(unset.as_slice()).unwrap();
        assert_eq!(s.status.unwrap().code, 0);
    }

    #[test]
    fn nested_fields_get_their_length_whatever_it_is() {
        // Bodies around the one- and two-byte varint limits, where the kept room is too
        // big, fits, or is too small.
        for len in [0, 125, 126, 127, 16_380, 16_381, 16_382, 70_000] {
            let name = "n".repeat(len);
            let mut buf = vec![7];
            nested(&mut buf, SCOPE_SPANS_SPANS, |b| {
                bytes(b, 5, name.as_bytes())
            });
            let (mut expected, mut span) = (vec![7], Vec::new());
            bytes(&mut span, 5, name.as_bytes());
            bytes(&mut expected, SCOPE_SPANS_SPANS, &span);
            assert_eq!(buf, expected, "body of {} bytes", span.len());
        }
    }

    #[test]
    fn the_request_wraps_resource_scope_and_spans() {
        let resource = Resource {
            attributes: vec![super::super::spans::kv("service.name", "shop")],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "redline".into(),
            ..Default::default()
        };
        let mut spans = Vec::new();
        for _ in 0..3 {
            bytes(&mut spans, SCOPE_SPANS_SPANS, &span_bytes());
        }
        let mut body = trace_request_head(
            &resource.encode_to_vec(),
            &scope.encode_to_vec(),
            spans.len(),
        );
        body.extend_from_slice(&spans);
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let rs = &req.resource_spans[0];
        assert_eq!(rs.resource.as_ref(), Some(&resource));
        assert_eq!(rs.scope_spans[0].scope.as_ref(), Some(&scope));
        assert_eq!(rs.scope_spans[0].spans.len(), 3);
        assert_eq!(rs.scope_spans[0].spans[2].name, "GET /x");
    }
}

#[cfg(test)]
mod oracle;
