//! The gateway's single-use secrets (OAuth `state` and binding values, confirmation tokens, page
//! links, page sessions): 32 random bytes, URL-safe base64, stored only as a SHA-256 hash.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new secret: 32 random bytes, URL-safe base64 without padding (43 characters).
pub(crate) fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The hash a secret is stored and looked up by: SHA-256, lowercase hex.
pub(crate) fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_distinct() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_sha256_in_hex() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
