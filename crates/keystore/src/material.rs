//! [`Material`]: one version of a KMS key's material, of whichever kind its key spec calls for.

use strongroom_types::KeySpec;
use zeroize::Zeroizing;

use crate::asymmetric::{HmacKey, PrivateKey};
use crate::{KeyStoreError, SymmetricKey};

/// Unwrapped key material: symmetric, HMAC or an asymmetric private key.
pub enum Material {
    /// A SYMMETRIC_DEFAULT key.
    Symmetric(SymmetricKey),
    /// An HMAC_* key.
    Hmac(Box<HmacKey>),
    /// An RSA, ECC, Ed25519 or ML-DSA key pair.
    Private(Box<PrivateKey>),
}

impl Material {
    /// Generates fresh material for a key of `spec`.
    pub fn generate(spec: KeySpec) -> Result<Material, KeyStoreError> {
        if spec == KeySpec::SymmetricDefault {
            Ok(Material::Symmetric(SymmetricKey::generate()))
        } else if spec.is_hmac() {
            Ok(Material::Hmac(Box::new(HmacKey::generate(spec)?)))
        } else {
            Ok(Material::Private(Box::new(PrivateKey::generate(spec)?)))
        }
    }

    /// Rebuilds material from the bytes [`Material::secret_bytes`] gave: 32 bytes for symmetric keys, the
    /// raw key for HMAC keys, PKCS#8 DER for key pairs.
    pub fn from_bytes(spec: KeySpec, bytes: &[u8]) -> Result<Material, KeyStoreError> {
        if spec == KeySpec::SymmetricDefault {
            Ok(Material::Symmetric(SymmetricKey::from_bytes(bytes)?))
        } else if spec.is_hmac() {
            Ok(Material::Hmac(Box::new(HmacKey::from_bytes(spec, bytes)?)))
        } else {
            Ok(Material::Private(Box::new(PrivateKey::from_pkcs8(
                spec, bytes,
            )?)))
        }
    }

    /// The secret bytes, for wrapping under the root key and for the material id.
    pub fn secret_bytes(&self) -> &[u8] {
        match self {
            Material::Symmetric(key) => key.material(),
            Material::Hmac(key) => key.bytes(),
            Material::Private(key) => key.pkcs8(),
        }
    }

    /// A copy of the secret bytes that is wiped on drop.
    pub fn secret_copy(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.secret_bytes().to_vec())
    }

    /// The symmetric key, if this is one.
    pub fn symmetric(&self) -> Option<&SymmetricKey> {
        match self {
            Material::Symmetric(key) => Some(key),
            _ => None,
        }
    }

    /// The HMAC key, if this is one.
    pub fn hmac(&self) -> Option<&HmacKey> {
        match self {
            Material::Hmac(key) => Some(key),
            _ => None,
        }
    }

    /// The private key, if this is a key pair.
    pub fn private(&self) -> Option<&PrivateKey> {
        match self {
            Material::Private(key) => Some(key),
            _ => None,
        }
    }
}
