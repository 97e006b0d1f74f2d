//! The shape of an API key (issue 22). Keys Ringback issues now prove themselves: `rbk_` and the
//! base64url (no padding) of 40 bytes — 16 random id bytes, 16 random secret bytes and the first
//! 8 bytes of HMAC-SHA256 over those 32 under the deployment's signing secret. A forged or random
//! key fails the tag and is refused without a database lookup, as GitHub's and Stripe's token
//! checksums let a scanner's guesses be refused offline. Keys issued before (`rb_` and 32
//! base64url characters) are recognised by shape; `coord::key_cache` knows which of them exist.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SIGNED_PREFIX: &str = "rbk_";
pub const LEGACY_PREFIX: &str = "rb_";
const RANDOM_LEN: usize = 32;
const TAG_LEN: usize = 8;
const BODY_LEN: usize = RANDOM_LEN + TAG_LEN;
/// 40 bytes are 54 base64url characters without padding.
pub const SIGNED_LEN: usize = SIGNED_PREFIX.len() + 54;
/// 24 bytes are 32 base64url characters.
pub const LEGACY_LEN: usize = LEGACY_PREFIX.len() + 32;
/// A signing secret shorter than this is refused: it is an HMAC key, not a password.
pub const MIN_SECRET_LEN: usize = 32;

/// What a presented key is, before any lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyShape {
    /// A new-format key whose tag verifies under one of the signing secrets.
    Signed,
    /// A new-format key whose tag does not verify: forged, mistyped or from another deployment.
    Forged,
    /// Shaped like a key issued before signed keys.
    Legacy,
    /// Not shaped like any key Ringback issues.
    Malformed,
}

/// The deployment's signing secrets: the first signs, every one verifies (rotation).
#[derive(Clone)]
pub struct KeySigner {
    secrets: Vec<Vec<u8>>,
}

fn is_base64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeySigner {
    /// `None` when there is no secret to sign with.
    pub fn new(secrets: Vec<Vec<u8>>) -> Option<KeySigner> {
        (!secrets.is_empty()).then_some(KeySigner { secrets })
    }

    fn mac(secret: &[u8], random: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(random);
        mac
    }

    /// A new key, signed with the first secret.
    pub fn issue(&self) -> String {
        let mut body = [0u8; BODY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut body[..RANDOM_LEN]);
        let tag = Self::mac(&self.secrets[0], &body[..RANDOM_LEN]).finalize().into_bytes();
        body[RANDOM_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        format!("{SIGNED_PREFIX}{}", URL_SAFE_NO_PAD.encode(body))
    }

    /// Classify `plaintext` without any lookup.
    pub fn shape(&self, plaintext: &str) -> KeyShape {
        if let Some(encoded) = plaintext.strip_prefix(SIGNED_PREFIX) {
            if plaintext.len() != SIGNED_LEN {
                return KeyShape::Malformed;
            }
            let Ok(body) = URL_SAFE_NO_PAD.decode(encoded) else { return KeyShape::Malformed };
            if body.len() != BODY_LEN {
                return KeyShape::Malformed;
            }
            let (random, tag) = body.split_at(RANDOM_LEN);
            // `verify_truncated_left` compares in constant time.
            let verifies = self.secrets.iter().any(|s| Self::mac(s, random).verify_truncated_left(tag).is_ok());
            return if verifies { KeyShape::Signed } else { KeyShape::Forged };
        }
        let legacy = plaintext.len() == LEGACY_LEN
            && plaintext.starts_with(LEGACY_PREFIX)
            && is_base64url(&plaintext[LEGACY_PREFIX.len()..]);
        if legacy {
            KeyShape::Legacy
        } else {
            KeyShape::Malformed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secrets: &[&str]) -> KeySigner {
        KeySigner::new(secrets.iter().map(|s| s.as_bytes().to_vec()).collect()).unwrap()
    }

    #[test]
    fn issued_keys_have_the_documented_shape_and_verify() {
        let s = signer(&["a-secret-of-at-least-thirty-two-bytes!"]);
        let key = s.issue();
        assert!(key.starts_with("rbk_"));
        assert_eq!(key.len() - 4, 54, "{key}");
        assert_eq!(s.shape(&key), KeyShape::Signed);
        assert_ne!(key, s.issue(), "each key is random");
    }

    #[test]
    fn a_changed_character_or_another_deployment_fails_the_tag() {
        let ours = signer(&["ours-ours-ours-ours-ours-ours-ours-ours"]);
        let theirs = signer(&["theirs-theirs-theirs-theirs-theirs-theirs"]);
        let key = ours.issue();
        assert_eq!(theirs.shape(&key), KeyShape::Forged);
        let mut tampered: Vec<char> = key.chars().collect();
        tampered[10] = if tampered[10] == 'A' { 'B' } else { 'A' };
        assert_eq!(ours.shape(&tampered.into_iter().collect::<String>()), KeyShape::Forged);
    }

    #[test]
    fn every_secret_verifies_and_the_first_signs() {
        let old = signer(&["old-secret-old-secret-old-secret-old"]);
        let rotated = signer(&["new-secret-new-secret-new-secret-new", "old-secret-old-secret-old-secret-old"]);
        assert_eq!(rotated.shape(&old.issue()), KeyShape::Signed, "keys signed before the rotation still work");
        assert_eq!(old.shape(&rotated.issue()), KeyShape::Forged, "new keys are signed with the new secret");
    }

    #[test]
    fn legacy_and_malformed_shapes() {
        let s = signer(&["any-secret-any-secret-any-secret-any"]);
        assert_eq!(s.shape("rb_abcdefghijklmnopqrstuvwxyzAB-_01"), KeyShape::Legacy);
        assert_eq!(s.shape("rb_not_a_key"), KeyShape::Malformed);
        assert_eq!(s.shape("xx_abcdefghijklmnopqrstuvwxyzAB-_01"), KeyShape::Malformed);
        assert_eq!(s.shape("rb_abcdefghijklmnopqrstuvwxyzAB-_0!"), KeyShape::Malformed);
        assert_eq!(s.shape("rb_abcdefghijklmnopqrstuvwxyzAB-_0é"), KeyShape::Malformed);
        assert_eq!(s.shape("rbk_short"), KeyShape::Malformed);
        assert_eq!(s.shape(&format!("rbk_{}", "!".repeat(54))), KeyShape::Malformed);
    }
}
