//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Prefix Standard Webhooks puts in front of the base64 key.
const SECRET_PREFIX: &str = "whsec_";

/// Why a signing secret is unusable. Never carries the secret itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The secret is empty once whitespace is trimmed.
    #[error("the signing secret is empty")]
    Empty,
    /// What follows `whsec_` is not base64.
    #[error("the signing secret is not `whsec_` followed by base64")]
    NotBase64,
}

/// A decoded signing key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(REDACTED)")
    }
}

impl Signer {
    /// Decode a `whsec_<base64>` secret; the prefix is optional, as in the reference libraries.
    pub fn from_secret(secret: &str) -> Result<Signer, SecretError> {
        let trimmed = secret.trim();
        let encoded = trimmed.strip_prefix(SECRET_PREFIX).unwrap_or(trimmed);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        Ok(Signer { key })
    }

    /// The `webhook-signature` header value for this message id, unix timestamp and exact body.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this constructor cannot fail; keep it total anyway.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vector of the Standard Webhooks reference libraries (`test_sign`).
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let signer = Signer::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = signer.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn prefix_is_optional_and_garbage_is_rejected_without_echoing_it() {
        let with = Signer::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let without = Signer::from_secret("C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
        assert_eq!(with.sign("a", 1, b"x"), without.sign("a", 1, b"x"));
        let err = Signer::from_secret("whsec_not*base64!").unwrap_err();
        assert_eq!(err, SecretError::NotBase64);
        assert!(!err.to_string().contains("not*base64"));
        assert_eq!(
            Signer::from_secret("whsec_ ").unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(format!("{with:?}"), "Signer(REDACTED)");
    }
}
