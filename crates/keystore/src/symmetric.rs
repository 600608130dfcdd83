//! Symmetric encryption with a KMS key's 256-bit material.
//!
//! Each message is sealed under its own key, derived with HKDF-SHA256 from the key material and a fresh
//! 256-bit random nonce, then AES-256-GCM. Deriving per message (as AWS KMS does) removes the 2^32-message
//! limit of random 96-bit GCM nonces under one key: the derived key is unique per message, so the GCM
//! nonce can be fixed.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::KeyStoreError;

/// Length of the per-message derivation nonce carried in each ciphertext.
pub const DERIVATION_NONCE_LEN: usize = 32;
/// Length of the GCM tag appended to each ciphertext.
pub const TAG_LEN: usize = 16;
const MATERIAL_LEN: usize = 32;
const DERIVATION_INFO: &[u8] = b"strongroom/v1/message-key";

/// The plaintext material of one key-material version, wiped when dropped.
pub struct SymmetricKey {
    material: Zeroizing<[u8; MATERIAL_LEN]>,
    salt_key: hkdf::Prk,
}

impl SymmetricKey {
    /// Generates fresh random material.
    pub fn generate() -> SymmetricKey {
        let bytes = Zeroizing::new(random_bytes(MATERIAL_LEN));
        // 32 random bytes always convert.
        SymmetricKey::from_bytes(&bytes).unwrap_or_else(|_| unreachable!("32 bytes is a valid key"))
    }

    /// Takes material from bytes, which must be exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Result<SymmetricKey, KeyStoreError> {
        let mut material = Zeroizing::new([0u8; MATERIAL_LEN]);
        if bytes.len() != MATERIAL_LEN {
            return Err(KeyStoreError::InvalidMaterial(
                "symmetric key material must be 256 bits",
            ));
        }
        material.copy_from_slice(bytes);
        // HKDF-Extract is keyed by the material here; the per-message nonce goes into Expand's info, so the
        // expensive extract step runs once per key rather than once per message.
        let salt_key = hkdf::Salt::new(hkdf::HKDF_SHA256, &material[..]).extract(b"strongroom/v1");
        Ok(SymmetricKey { material, salt_key })
    }

    /// The raw material, for wrapping by the root key.
    pub fn material(&self) -> &[u8] {
        &self.material[..]
    }

    /// Seals `plaintext` with `aad` bound; returns the derivation nonce and ciphertext-with-tag.
    pub fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<([u8; DERIVATION_NONCE_LEN], Vec<u8>), KeyStoreError> {
        let mut nonce = [0u8; DERIVATION_NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyStoreError::Crypto)?;
        let key = self.message_key(&nonce)?;
        let mut buffer = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buffer.extend_from_slice(plaintext);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::from(aad),
            &mut buffer,
        )
        .map_err(|_| KeyStoreError::Crypto)?;
        Ok((nonce, buffer))
    }

    /// Opens what [`SymmetricKey::seal`] produced, with the same nonce and `aad`.
    pub fn open(
        &self,
        aad: &[u8],
        nonce: &[u8; DERIVATION_NONCE_LEN],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let key = self.message_key(nonce)?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| KeyStoreError::Unauthentic)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }

    fn message_key(
        &self,
        nonce: &[u8; DERIVATION_NONCE_LEN],
    ) -> Result<LessSafeKey, KeyStoreError> {
        let info = [DERIVATION_INFO, &nonce[..]];
        let okm = self
            .salt_key
            .expand(&info, &AES_256_GCM)
            .map_err(|_| KeyStoreError::Crypto)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// `len` bytes from the system's cryptographically secure generator.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // aws-lc-rs's generator does not fail on supported platforms; a failure here would be a broken system.
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        panic!("the system random number generator failed");
    }
    out
}

/// The public identifier of a key-material version: SHA-256 over a label, the key's ARN and the material.
///
/// Deterministic, as AWS derives `KeyMaterialId` from the key and its material, and one-way, so it
/// reveals nothing of the material.
pub fn material_id(key_arn: &str, material: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"strongroom/v1/key-material-id\0");
    ctx.update(key_arn.as_bytes());
    ctx.update(b"\0");
    ctx.update(material);
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
