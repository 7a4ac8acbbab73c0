//! Redaction of secrets (query parameter values, header values) before anything is logged or exported.

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

    /// The query string with the values of secret parameters replaced by `REDACTED`.
    ///
    /// Names are compared after percent-decoding, so `%74oken=x` is caught too.
    pub fn query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        if !query.split('&').any(|pair| self.is_secret_param(pair)) {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            if self.is_secret_param(pair) {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            } else {
                out.push_str(pair);
            }
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

    fn is_secret_param(&self, pair: &str) -> bool {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let decoded = percent_decode(name);
        self.query_params
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&decoded))
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
    fn odd_percent_sequences_do_not_panic() {
        for q in ["%", "%4", "%zz=1", "a=%", "token%=1", "=&&="] {
            let _ = r().query(q);
        }
    }

    #[test]
    fn headers_are_case_insensitive() {
        assert!(r().is_secret_header("Authorization"));
        assert!(!r().is_secret_header("accept"));
    }
}
