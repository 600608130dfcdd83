//! Key stores: where key material is protected at rest, and the cryptography done with it.
//!
//! The default key store keeps every key-material version wrapped by a 256-bit *root key* (see
//! [`RootKey`]); [`FileRootKey`] keeps that root key in a 0600 file in the data directory.
//! An HSM can hold the root key instead by implementing the same trait.
//!
//! **Invariant:** plaintext key material exists only in memory, inside [`SymmetricKey`] or `Zeroizing`
//! buffers, which are wiped on drop.

mod asymmetric;
mod import;
mod material;
mod pkcs8;
mod root;
mod symmetric;

pub use crate::asymmetric::{HmacKey, Message, PrivateKey, verify_public};
pub use crate::import::WrappingKey;
pub use crate::material::Material;
pub use crate::root::{FileRootKey, RootKey};
pub use crate::symmetric::{
    DERIVATION_NONCE_LEN, SymmetricKey, TAG_LEN, material_id, random_bytes,
};

/// What can go wrong in a key store.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// Authenticated decryption failed: wrong key, wrong additional data, or tampered bytes.
    #[error("authenticated decryption failed")]
    Unauthentic,
    /// Key material has the wrong length or shape.
    #[error("invalid key material: {0}")]
    InvalidMaterial(&'static str),
    /// Reading or creating the root key failed.
    #[error("root key file {path}: {source}")]
    RootKeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key store does not offer this key spec or algorithm.
    #[error("{0}")]
    Unsupported(String),
    /// The input does not fit the operation (a digest of the wrong length, a plaintext too long, a public
    /// key that does not parse).
    #[error("{0}")]
    InvalidInput(String),
    /// The cryptographic library refused an operation that should not fail.
    #[error("cryptographic library failure")]
    Crypto,
}

#[cfg(test)]
mod tests;
