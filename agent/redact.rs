//! Redaction of secrets (query parameter values, header values, URL credentials) before anything is logged or exported.

use std::borrow::Cow;

/// The replacement for every redacted value.
pub const REDACTED: &str = "REDACTED";

/// Which query parameters and headers carry secrets (names compared case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    query_params: Vec<String>,
    headers: Vec<String>,
}

impl Redactor {
    /// A redactor for these query parameter and header names.
    pub fn new(query_params: &[String], headers: &[String]) -> Self {
        Redactor {
            query_params: query_params
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            headers: headers.iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a header's value must never leave the process.
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// The header value to record: `REDACTED` for secret headers, else the value itself.
    pub fn header_value<'a>(&self, name: &str, value: &'a str) -> &'a str {
        if self.is_secret_header(name) {
            REDACTED
        } else {
            value
        }
    }

    /// The query string with the values of secret parameters replaced by `REDACTED`.
    ///
    /// Pairs are split on `&` and on `;` (which some servers also accept), and names are
    /// compared after percent-decoding, trimming and dropping a `[...]` suffix, so
    /// `%74oken=x`, `a=1;token=x` and `token[]=x` are all caught.
    pub fn query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        if !pairs(query).any(|pair| self.is_secret_param(pair)) {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let pair = &rest[..end];
            if self.is_secret_param(pair) {
                out.push_str(pair.split_once('=').map_or(pair, |(n, _)| n));
                out.push('=');
                out.push_str(REDACTED);
            } else {
                out.push_str(pair);
            }
            let Some(sep) = rest[end..].chars().next() else {
                break;
            };
            out.push(sep);
            rest = &rest[end + 1..];
        }
        Cow::Owned(out)
    }

    /// `path?query` with the query redacted.
    pub fn path_and_query<'a>(&self, path: &'a str, query: Option<&'a str>) -> Cow<'a, str> {
        match query {
            None => Cow::Borrowed(path),
            Some(q) => Cow::Owned(format!("{path}?{}", self.query(q))),
        }
    }

    /// A full URL (e.g. `url.full`) with user credentials and secret query values redacted;
    /// the fragment is dropped, since browsers never send one and it can hold tokens.
    pub fn url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let base = hide_userinfo(base);
        match (base, query.map(|q| self.query(q))) {
            (Cow::Borrowed(_), None | Some(Cow::Borrowed(_))) => Cow::Borrowed(url),
            (base, None) => Cow::Owned(base.into_owned()),
            (base, Some(q)) => Cow::Owned(format!("{base}?{q}")),
        }
    }

    /// Free text (an error message, say) with URL credentials and `name=value` pairs of
    /// secret parameters redacted wherever they appear.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = hide_userinfo(text);
        if let Some(redacted) = self.hide_queries(&out) {
            out = Cow::Owned(redacted);
        }
        for name in &self.query_params {
            if let Some(redacted) = hide_param_values(&out, name) {
                out = Cow::Owned(redacted);
            }
        }
        out
    }

    /// Every `?query` run in `text` (up to whitespace, a quote or `#`) through [`Self::query`].
    fn hide_queries(&self, text: &str) -> Option<String> {
        if !text.contains('?') {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(q) = rest.find('?') {
            out.push_str(&rest[..=q]);
            let tail = &rest[q + 1..];
            let end = tail
                .find(|c: char| matches!(c, '"' | '\'' | '`' | '#') || c.is_whitespace())
                .unwrap_or(tail.len());
            let redacted = self.query(&tail[..end]);
            changed |= matches!(redacted, Cow::Owned(_));
            out.push_str(&redacted);
            rest = &tail[end..];
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// Whether a query parameter (`name` or `name=value`) or a body field named so is secret.
    pub fn is_secret_param(&self, pair: &str) -> bool {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let decoded = percent_decode(name);
        let name = decoded.split('[').next().unwrap_or_default().trim();
        self.query_params
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
    }
}

fn pairs(query: &str) -> impl Iterator<Item = &str> {
    query.split(['&', ';'])
}

/// `scheme://user:pass@host` → `scheme://REDACTED@host`, for every URL in `text`.
fn hide_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str(REDACTED);
                out.push_str(&authority[i..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Replace the value after every `name=` that starts a parameter (at the start, or after
/// `?`, `&`, `;`, a quote or whitespace). `None` when nothing matched.
fn hide_param_values(text: &str, name: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let needle = format!("{name}=");
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let start = from + found;
        let value = start + needle.len();
        from = value;
        let starts_param = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, '?' | '&' | ';' | '"' | '\'' | '`') || c.is_whitespace());
        if !starts_param {
            continue;
        }
        let end = text[value..]
            .find(|c: char| {
                matches!(c, '&' | ';' | '#' | '"' | '\'' | '`' | ',' | ')' | ']')
                    || c.is_whitespace()
            })
            .map_or(text.len(), |i| value + i);
        out.push_str(&text[copied..value]);
        out.push_str(REDACTED);
        copied = end;
        from = end.max(value);
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex_byte(bytes.get(i + 1..i + 3))) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The byte two hex digits spell; `None` unless both are hex digits (no sign, unlike
/// `from_str_radix`).
fn hex_byte(pair: Option<&[u8]>) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match pair? {
        [h, l] => Some((digit(*h)? * 16 + digit(*l)?) as u8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new(
            &["token".into(), "api_key".into()],
            &["authorization".into()],
        )
    }

    #[test]
    fn secret_values_are_replaced_and_others_kept() {
        assert_eq!(r().query("a=1&token=s3cret&b=2"), "a=1&token=REDACTED&b=2");
        assert_eq!(r().query("TOKEN=x"), "TOKEN=REDACTED");
        assert_eq!(r().query("%74oken=x"), "%74oken=REDACTED");
        assert_eq!(r().query("token"), "token=REDACTED");
        assert!(matches!(r().query("a=1"), Cow::Borrowed("a=1")));
        assert_eq!(
            r().path_and_query("/p", Some("api_key=k")),
            "/p?api_key=REDACTED"
        );
    }

    #[test]
    fn semicolons_arrays_and_spaces_are_caught() {
        assert_eq!(r().query("a=1;token=x&b=2"), "a=1;token=REDACTED&b=2");
        assert_eq!(
            r().query("token[]=x&token[0]=y"),
            "token[]=REDACTED&token[0]=REDACTED"
        );
        assert_eq!(r().query("token%5B%5D=x"), "token%5B%5D=REDACTED");
        assert_eq!(r().query("+token=x"), "+token=REDACTED");
        assert_eq!(r().query("tokens=x"), "tokens=x");
    }

    #[test]
    fn odd_percent_sequences_do_not_panic() {
        for q in [
            "%", "%4", "%zz=1", "a=%", "token%=1", "=&&=", "%+1=2", "%é", "é%",
        ] {
            let _ = r().query(q);
        }
        assert_eq!(r().query("%+1=2"), "%+1=2", "a sign is not a hex digit");
    }

    #[test]
    fn headers_are_case_insensitive() {
        assert!(r().is_secret_header("Authorization"));
        assert!(!r().is_secret_header("accept"));
        assert_eq!(r().header_value("AUTHORIZATION", "Bearer x"), REDACTED);
        assert_eq!(r().header_value("accept", "*/*"), "*/*");
    }

    #[test]
    fn urls_lose_credentials_secret_params_and_fragments() {
        assert_eq!(
            r().url("http://u:pw@h:1/p?a=1&token=t#frag"),
            "http://REDACTED@h:1/p?a=1&token=REDACTED"
        );
        assert!(matches!(r().url("http://h/p?a=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn free_text_is_scrubbed() {
        let msg =
            r#"invalid upstream URL "http://me:pw@h/x?token=abc&b=1" (bad); token=zzz, TOKEN=yyy"#;
        let out = r().text(msg);
        for secret in ["pw", "abc", "zzz", "yyy"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("b=1") && out.contains("REDACTED@h"), "{out}");
        assert_eq!(r().text("mytoken=1"), "mytoken=1");
        assert!(matches!(r().text("nothing here"), Cow::Borrowed(_)));
    }
}
