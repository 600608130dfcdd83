//! The digest signing key, hashing and hex: the cryptography of log file integrity validation.
//!
//! Digests are signed SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) with a 2048-bit key kept in a
//! 0600 file, as CloudTrail signs its own.
//! PKCS#1 v1.5 signatures are deterministic, which lets an interrupted digest delivery be redone
//! byte for byte.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};

use crate::error::Error;

/// The algorithm name written into digests and their signature metadata.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// The hash algorithm name written into digests.
pub(crate) const HASH_ALGORITHM: &str = "SHA-256";

/// The RSA key that signs digest files.
///
/// Only the audit log holds one; verifiers get the public half through
/// [`crate::AuditLog::public_key_der`].
pub(crate) struct SigningKey {
    key_pair: KeyPair,
    fingerprint: String,
}

impl SigningKey {
    /// Loads the key at `path`, creating a fresh RSA-2048 key with mode 0600 if there is none.
    ///
    /// Refuses a key file that other users can read: whoever has it can forge digests.
    pub(crate) fn open_or_create(path: &Path) -> Result<SigningKey, Error> {
        let der = match fs::read(path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(Error::io("read the digest signing key", path, e)),
        };
        let mode = fs::metadata(path)
            .map_err(|e| Error::io("inspect the digest signing key", path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::SigningKey(format!(
                "{} has permissions {:o}, which let other users read it; run `chmod 600` on it",
                path.display(),
                mode & 0o777
            )));
        }
        let key_pair = KeyPair::from_pkcs8(&der)
            .map_err(|e| Error::SigningKey(format!("{}: {e}", path.display())))?;
        let fingerprint = fingerprint(key_pair.public_key().as_ref());
        Ok(SigningKey {
            key_pair,
            fingerprint,
        })
    }

    /// The public key as a DER `RSAPublicKey` (PKCS#1), the form CloudTrail publishes.
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        self.key_pair.public_key().as_ref().to_vec()
    }

    /// The fingerprint written into digests as `digestPublicKeyFingerprint`.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs `message` and returns the signature in hex.
    pub(crate) fn sign_hex(&self, message: &[u8]) -> Result<String, Error> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| Error::SigningKey("signing failed".to_owned()))?;
        Ok(to_hex(&signature))
    }
}

/// Identifies a public key in digests, so a verifier can pick the right one.
///
/// CloudTrail uses a 32-hex-digit fingerprint; this is the first 16 bytes of the SHA-256 of the
/// PKCS#1 public key, which has the same shape and needs no MD5.
pub fn fingerprint(public_key_der: &[u8]) -> String {
    to_hex(&digest(&SHA256, public_key_der).as_ref()[..16])
}

/// Whether `signature_hex` is a valid SHA256withRSA signature of `message` under `public_key_der`.
pub(crate) fn verify_signature(public_key_der: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let signature = match from_hex(signature_hex) {
        Some(signature) => signature,
        None => return false,
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(message, &signature)
        .is_ok()
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(digest(&SHA256, bytes).as_ref())
}

/// The SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn create(path: &Path) -> Result<Vec<u8>, Error> {
    let key_pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| Error::SigningKey("RSA key generation failed".to_owned()))?;
    let der = key_pair
        .as_der()
        .map_err(|_| Error::SigningKey("PKCS#8 encoding failed".to_owned()))?
        .as_ref()
        .to_vec();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io("create the signing key directory", dir, e))?;
    }
    // Write to a temporary name and rename, so a crash never leaves a truncated key behind.
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&der)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        match path.parent() {
            Some(dir) => fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    };
    write().map_err(|e| Error::io("create the digest signing key", path, e))?;
    Ok(der)
}
