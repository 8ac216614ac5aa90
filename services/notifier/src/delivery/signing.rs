//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! keyed with the base64-decoded part of a `whsec_` secret, one signature per valid secret.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and 32 random bytes in base64 (the spec asks for 24 to 64).
pub(crate) fn new_secret() -> SecretString {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    SecretString::from(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The signature of one message under one secret, `v1,<base64>`; `None` for a secret that is
/// not `whsec_<base64>` (none we minted).
pub(crate) fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.expose_secret().strip_prefix(PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: the signatures under every secret given, space-separated
/// (during a rotation the receiver may still hold the previous secret).
pub(crate) fn signature_header(
    secrets: &[&SecretString],
    id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    secrets.iter().filter_map(|s| sign(s, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specifications_published_example() {
        // The example in the Standard Webhooks specification (and its libraries' tests).
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn two_secrets_give_two_signatures_and_a_malformed_one_none() {
        let (a, b) = (new_secret(), new_secret());
        let header = signature_header(&[&a, &b], "id", 1, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_ne!(parts[0], parts[1]);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(sign(&SecretString::from("nope".to_owned()), "id", 1, "{}"), None);
    }

    #[test]
    fn new_secrets_are_whsec_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.expose_secret().starts_with("whsec_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
