//! Alertmanager's alert fingerprint: FNV-64a over the sorted label set, as `model.LabelSet.Fingerprint()`.

use std::collections::BTreeMap;

/// FNV-1a 64-bit offset basis; also the fingerprint of an empty label set.
const OFFSET: u64 = 14_695_981_039_346_656_037;
/// FNV-1a 64-bit prime.
const PRIME: u64 = 1_099_511_628_211;
/// Byte between names and values; it never occurs in UTF-8, so `a=bc` and `ab=c` differ.
const SEPARATOR: u8 = 0xff;

fn add(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The fingerprint as a number; a `BTreeMap` is already sorted by label name.
pub fn fingerprint_u64(labels: &BTreeMap<String, String>) -> u64 {
    labels.iter().fold(OFFSET, |hash, (name, value)| {
        let hash = add(hash, name.as_bytes());
        let hash = add(hash, &[SEPARATOR]);
        let hash = add(hash, value.as_bytes());
        add(hash, &[SEPARATOR])
    })
}

/// The fingerprint as Alertmanager prints it: 16 lowercase hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    format!("{:016x}", fingerprint_u64(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_prometheus_common_test_vectors() {
        // prometheus/common model/signature_test.go, TestMetricToFingerprint.
        assert_eq!(fingerprint_u64(&labels(&[])), 14_695_981_039_346_656_037);
        let ls = labels(&[("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(fingerprint_u64(&ls), 5_799_056_148_416_392_346);
        assert_eq!(
            fingerprint(&ls),
            format!("{:016x}", 5_799_056_148_416_392_346u64)
        );
        assert_eq!(fingerprint(&ls), "507a62d79ee76c9a");
    }

    #[test]
    fn is_sixteen_hex_digits_even_for_small_values_and_separates_fields() {
        let a = fingerprint(&labels(&[("a", "bc")]));
        let b = fingerprint(&labels(&[("ab", "c")]));
        assert_ne!(a, b);
        for f in [a, b] {
            assert_eq!(f.len(), 16);
            assert!(
                f.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
