//! The ciphertext blob: what Encrypt and GenerateDataKey return and Decrypt and ReEncrypt accept.
//!
//! Layout of format version 1 (all lengths in bytes; documented for users in `docs/CIPHERTEXT.md`):
//!
//! ```text
//! version (1) = 0x01
//! account id (12, ASCII digits)
//! key id length (1) | key id (ASCII)
//! key material id (32)
//! derivation nonce (32)
//! sealed data: AES-256-GCM ciphertext of the plaintext, followed by the 16-byte tag
//! ```
//!
//! Format version 2 is for keys in a custom key store, whose backing key never leaves the HSMs
//! (AES-256-GCM in the HSM, with a 96-bit IV the HSM draws):
//!
//! ```text
//! version (1) = 0x02
//! account id (12, ASCII digits)
//! key id length (1) | key id (ASCII)
//! IV (12)
//! sealed data: AES-256-GCM ciphertext of the plaintext, followed by the 16-byte tag
//! ```
//!
//! Its additional authenticated data is the header (version to key id) followed by the canonical
//! encoding of the encryption context; the backing key is found by its label, the key ARN.
//!
//! In version 1, everything before the sealed data is the *header*; the header followed by the canonical encoding of the
//! encryption context is the additional authenticated data, so changing any header byte, or decrypting
//! with another context, fails authentication.

use strongroom_keystore::{DERIVATION_NONCE_LEN, TAG_LEN};
use strongroom_types::{AccountId, KeyId, KeyMaterialId};

/// The only format version this server writes.
const VERSION_1: u8 = 1;
const ACCOUNT_LEN: usize = 12;

/// A parsed ciphertext blob, borrowing the request's bytes.
#[derive(Debug)]
pub(crate) struct Ciphertext<'a> {
    pub(crate) account: AccountId,
    pub(crate) key_id: KeyId,
    pub(crate) material_id: KeyMaterialId,
    pub(crate) nonce: [u8; DERIVATION_NONCE_LEN],
    pub(crate) header: &'a [u8],
    pub(crate) sealed: &'a [u8],
}

/// Writes the header of a blob for `key_id` in `account`, encrypted with `material_id`.
pub(crate) fn header(account: &AccountId, key_id: &KeyId, material_id: &KeyMaterialId) -> Vec<u8> {
    let key_id = key_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(
        1 + ACCOUNT_LEN + 1 + key_id.len() + 32 + DERIVATION_NONCE_LEN + 4096 + TAG_LEN,
    );
    out.push(VERSION_1);
    out.extend_from_slice(account.as_str().as_bytes());
    // Key ids are at most 36 bytes, so their length always fits in one byte.
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id);
    out.extend_from_slice(&material_id.0);
    out
}

/// Parses a blob; `None` for anything that is not a well-formed version 1 blob.
pub(crate) fn parse(blob: &[u8]) -> Option<Ciphertext<'_>> {
    let (&version, rest) = blob.split_first()?;
    if version != VERSION_1 {
        return None;
    }
    let (account, rest) = split(rest, ACCOUNT_LEN)?;
    let account = std::str::from_utf8(account).ok()?.parse().ok()?;
    let (&id_len, rest) = rest.split_first()?;
    let (key_id, rest) = split(rest, usize::from(id_len))?;
    let key_id = std::str::from_utf8(key_id).ok()?.parse().ok()?;
    let (material_id, rest) = split(rest, 32)?;
    let (nonce, sealed) = split(rest, DERIVATION_NONCE_LEN)?;
    if sealed.len() < TAG_LEN {
        return None;
    }
    let header_len = blob.len() - sealed.len();
    Some(Ciphertext {
        account,
        key_id,
        material_id: KeyMaterialId(material_id.try_into().ok()?),
        nonce: nonce.try_into().ok()?,
        header: &blob[..header_len - DERIVATION_NONCE_LEN],
        sealed,
    })
}

/// The version byte of blobs made in a custom key store's HSMs.
pub(crate) const VERSION_2: u8 = 2;
/// The length of a version 2 blob's IV.
const IV_LEN: usize = 12;

/// A parsed version 2 blob.
#[derive(Debug)]
pub(crate) struct HsmCiphertext<'a> {
    pub(crate) account: AccountId,
    pub(crate) key_id: KeyId,
    pub(crate) header: &'a [u8],
    pub(crate) iv: &'a [u8],
    pub(crate) sealed: &'a [u8],
}

/// Writes the header of a version 2 blob.
pub(crate) fn header_v2(account: &AccountId, key_id: &KeyId) -> Vec<u8> {
    let key_id = key_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + ACCOUNT_LEN + 1 + key_id.len() + IV_LEN + 4096 + TAG_LEN);
    out.push(VERSION_2);
    out.extend_from_slice(account.as_str().as_bytes());
    // Key ids are at most 36 bytes, so their length always fits in one byte.
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id);
    out
}

/// Parses a version 2 blob; `None` for anything else.
pub(crate) fn parse_v2(blob: &[u8]) -> Option<HsmCiphertext<'_>> {
    let (&version, rest) = blob.split_first()?;
    if version != VERSION_2 {
        return None;
    }
    let (account, rest) = split(rest, ACCOUNT_LEN)?;
    let account = std::str::from_utf8(account).ok()?.parse().ok()?;
    let (&id_len, rest) = rest.split_first()?;
    let (key_id, rest) = split(rest, usize::from(id_len))?;
    let key_id = std::str::from_utf8(key_id).ok()?.parse().ok()?;
    let (iv, sealed) = split(rest, IV_LEN)?;
    if sealed.len() < TAG_LEN {
        return None;
    }
    let header_len = blob.len() - sealed.len() - IV_LEN;
    Some(HsmCiphertext {
        account,
        key_id,
        header: &blob[..header_len],
        iv,
        sealed,
    })
}

fn split(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    if bytes.len() < at {
        return None;
    }
    Some(bytes.split_at(at))
}
