//! Secrets at rest: Fernet tokens, as the reference writes them (spec §1.2).
//!
//! The 32-byte key is `sha256(secret_key)`: its first half signs (HMAC-SHA256), its second
//! half encrypts (AES-128-CBC, PKCS#7). A token is URL-safe base64 of
//! `0x80 ‖ timestamp (u64 BE) ‖ IV ‖ ciphertext ‖ HMAC`, so tokens written by the Python server
//! with the same secret key decrypt here and the other way round.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

const VERSION: u8 = 0x80;

/// Encrypts secret values with the server's secret key, and decrypts them with it or with
/// one of its previous keys (`previous_secret_keys`, for a rotation: values saved under an
/// old key stay readable and are written under the current one when next saved).
#[derive(Clone)]
pub(crate) struct Cipher {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    #[cfg(test)]
    pub(crate) fn new(secret_key: &str) -> Self {
        Self::with_previous(secret_key, &[])
    }

    /// A cipher for `secret_key` that also decrypts tokens of `previous` keys.
    pub(crate) fn with_previous(secret_key: &str, previous: &[&str]) -> Self {
        Self {
            current: Key::new(secret_key),
            previous: previous.iter().map(|key| Key::new(key)).collect(),
        }
    }

    /// A fresh token for `plain`, under the current key.
    pub(crate) fn encrypt(&self, plain: &str) -> String {
        self.current.encrypt(plain)
    }

    /// The plain text of `token`, or `None` when it is not a token of this key or of a
    /// previous one.
    pub(crate) fn decrypt(&self, token: &str) -> Option<String> {
        self.current
            .decrypt(token)
            .or_else(|| self.previous.iter().find_map(|key| key.decrypt(token)))
    }

    /// Whether `token` was made with the current key (else it should be written again).
    pub(crate) fn is_current(&self, token: &str) -> bool {
        self.current.decrypt(token).is_some()
    }
}

/// The key material of one secret key.
#[derive(Clone)]
struct Key {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl Key {
    fn new(secret_key: &str) -> Self {
        let key: [u8; 32] = Sha256::digest(secret_key.as_bytes()).into();
        let mut signing = [0; 16];
        let mut encryption = [0; 16];
        signing.copy_from_slice(&key[..16]);
        encryption.copy_from_slice(&key[16..]);
        Self {
            signing,
            encryption,
        }
    }

    fn encrypt(&self, plain: &str) -> String {
        let mut iv = [0u8; 16];
        if getrandom::fill(&mut iv).is_err() {
            // No entropy source: fall back to a UUID's random bits rather than fail a write.
            iv = uuid::Uuid::new_v4().into_bytes();
        }
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.encrypt_with(plain, seconds, iv)
    }

    fn encrypt_with(&self, plain: &str, seconds: u64, iv: [u8; 16]) -> String {
        let ciphertext = Encryptor::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        let mut token = Vec::with_capacity(1 + 8 + 16 + ciphertext.len() + 32);
        token.push(VERSION);
        token.extend_from_slice(&seconds.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&ciphertext);
        let tag = self.mac().chain_update(&token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE.encode(token)
    }

    fn decrypt(&self, token: &str) -> Option<String> {
        let bytes = URL_SAFE.decode(token.trim()).ok()?;
        if bytes.len() < 1 + 8 + 16 + 16 + 32 || bytes[0] != VERSION {
            return None;
        }
        let (body, tag) = bytes.split_at(bytes.len() - 32);
        self.mac().chain_update(body).verify_slice(tag).ok()?;
        let iv: [u8; 16] = body[9..25].try_into().ok()?;
        let plain = Decryptor::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&body[25..])
            .ok()?;
        String::from_utf8(plain).ok()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.signing)
            .unwrap_or_else(|_| unreachable!("HMAC accepts 16-byte keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let cipher = Cipher::new("s3cret");
        let token = cipher.encrypt("sk-live-123");
        assert!(token.starts_with("gAAAAA"));
        assert_eq!(cipher.decrypt(&token).as_deref(), Some("sk-live-123"));
        assert_eq!(Cipher::new("other").decrypt(&token), None);
        assert_eq!(cipher.decrypt("not a token"), None);
        let mut tampered = token.into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(cipher.decrypt(&String::from_utf8_lossy(&tampered)), None);
    }

    /// A token made by Python's `cryptography` Fernet with key
    /// `urlsafe_b64encode(sha256(b"s3cret").digest())` for the text `sk-live-123`.
    #[test]
    fn decrypts_a_python_token() {
        let cipher = Cipher::new("s3cret");
        let token = cipher
            .current
            .encrypt_with("sk-live-123", 1_700_000_000, [7; 16]);
        assert_eq!(cipher.decrypt(&token).as_deref(), Some("sk-live-123"));
        assert_eq!(token, PYTHON_TOKEN);
    }

    #[test]
    fn previous_keys_decrypt_only() {
        let old = Cipher::new("old-key");
        let token = old.encrypt("sk-live-123");
        let rotated = Cipher::with_previous("new-key", &["other", "old-key"]);
        assert_eq!(rotated.decrypt(&token).as_deref(), Some("sk-live-123"));
        assert!(!rotated.is_current(&token));
        let fresh = rotated.encrypt("sk-live-123");
        assert!(rotated.is_current(&fresh));
        assert_eq!(old.decrypt(&fresh), None);
        assert_eq!(Cipher::new("new-key").decrypt(&token), None);
    }

    const PYTHON_TOKEN: &str = "gAAAAABlU_EABwcHBwcHBwcHBwcHBwcHBxfATK0Qk2yJQUZTRZigaNuGT9X9q7iw5XwrY_H6fuTZHORGoyMWqhAZ3p_PcJ_pPg==";
}
