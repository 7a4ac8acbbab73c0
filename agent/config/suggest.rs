//! "Did you mean …?" for a misspelt key or value: the nearest valid name by edit distance.
//!
//! serde reports an unknown key as "unknown field `timout`, expected one of `service`, …";
//! [`improve`] rewrites that into "unknown key `timout`; did you mean `timeout`? …" so the
//! fix is on the first screen, and keeps the list of valid names after it.

/// Rewrite serde's unknown field/variant message, if `message` is one; else return it as is.
pub(super) fn improve(message: &str) -> String {
    if let Some(better) = unknown("field", "key", message) {
        return better;
    }
    unknown("variant", "value", message).unwrap_or_else(|| message.to_string())
}

/// `prefix` + "unknown {serde_word} `x`, expected …" → "unknown {our_word} `x`; did you mean …".
fn unknown(serde_word: &str, our_word: &str, message: &str) -> Option<String> {
    let marker = format!("unknown {serde_word} `");
    let (prefix, rest) = message.split_once(&marker)?;
    let (given, tail) = rest.split_once('`')?;
    let expected = tail.strip_prefix(", expected ")?;
    let valid = quoted(expected);
    let hint = match nearest(given, valid.iter().copied()) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => String::new(),
    };
    Some(format!(
        "{prefix}unknown {our_word} `{given}`{hint} (expected {expected})"
    ))
}

/// The backtick-quoted names in serde's "one of `a`, `b`" list.
fn quoted(list: &str) -> Vec<&str> {
    list.split('`').skip(1).step_by(2).collect()
}

/// The candidate closest to `given`, if it is close enough to be a likely typo: at most one
/// edit per three characters (at least one), compared case-insensitively. Failing that, a
/// candidate that `given` (three characters or more) begins, as `http` for `http/protobuf`.
pub(super) fn nearest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    let allowed = (given.chars().count() / 3).max(1);
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let closest = candidates
        .iter()
        .map(|c| (edit_distance(&given, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    closest.or_else(|| {
        let begun = |c: &&str| given.len() >= 3 && c.to_ascii_lowercase().starts_with(&given);
        candidates.iter().copied().find(begun)
    })
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// adjacent characters each cost one, so `timout`, `tiemout` and `timeoutt` are all one
/// edit from `timeout`.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), one back, and the current one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_typos_as_one() {
        assert_eq!(edit_distance("timeout", "timeout"), 0);
        assert_eq!(edit_distance("timout", "timeout"), 1);
        assert_eq!(edit_distance("timeoutt", "timeout"), 1);
        assert_eq!(edit_distance("tiemout", "timeout"), 1, "swap");
        assert_eq!(edit_distance("timeeut", "timeout"), 1, "substitution");
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ca", "abc"), 3, "OSA: no edit after a swap");
    }

    #[test]
    fn nearest_picks_the_closest_likely_typo() {
        let keys = ["service", "listen", "upstream", "timeout", "admin", "flows"];
        assert_eq!(nearest("timout", keys), Some("timeout"));
        assert_eq!(nearest("listn", keys), Some("listen"));
        assert_eq!(nearest("Upstream", keys), Some("upstream"));
        assert_eq!(nearest("flow", keys), Some("flows"));
        assert_eq!(nearest("colour", keys), None, "too far from anything");
        assert_eq!(nearest("x", ["y", "xy"]), Some("y"), "first of the closest");
        assert_eq!(nearest("abc", []), None);
        assert_eq!(
            nearest("http", ["grpc", "http/protobuf"]),
            Some("http/protobuf")
        );
        assert_eq!(
            nearest("to", ["token_file"]),
            None,
            "too short to be a prefix"
        );
    }

    #[test]
    fn serde_messages_gain_a_suggestion() {
        let serde = "unknown field `timout`, expected one of `service`, `listen`, `timeout`";
        assert_eq!(
            improve(serde),
            "unknown key `timout`; did you mean `timeout`? \
             (expected one of `service`, `listen`, `timeout`)"
        );
        let nested = "flows[0]: unknown field `ownr`, expected `owner` or `name`";
        assert!(
            improve(nested).starts_with("flows[0]: unknown key `ownr`; did you mean `owner`?"),
            "{}",
            improve(nested)
        );
        let variant = "unknown variant `jsn`, expected one of `json`, `text`, `off`";
        assert!(improve(variant).starts_with("unknown value `jsn`; did you mean `json`?"));
        let far = "unknown field `colour`, expected `name`";
        assert_eq!(improve(far), "unknown key `colour` (expected `name`)");
        assert_eq!(improve("invalid type: string"), "invalid type: string");
    }
}
