//! Import of key material: the RSA wrapping keys that GetParametersForImport hands out, and the unwrapping
//! of what a customer encrypted under them.
//!
//! Two families of wrapping algorithm exist. `RSAES_OAEP_SHA_*` encrypt the material itself with RSA-OAEP.
//! `RSA_AES_KEY_WRAP_SHA_*` (PKCS #11 `CKM_RSA_AES_KEY_WRAP`) carry an ephemeral AES key encrypted with
//! RSA-OAEP, followed by the material wrapped under that AES key with AES key wrap with padding
//! (RFC 5649); they are how material larger than one RSA block, such as an RSA private key, travels.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use strongroom_types::{WrappingAlgorithm, WrappingKeySpec};
use zeroize::Zeroizing;

use crate::KeyStoreError;

/// An RSA key pair whose public half wraps key material in transit to the server.
pub struct WrappingKey {
    spec: WrappingKeySpec,
    pkcs8: Zeroizing<Vec<u8>>,
    public_der: Vec<u8>,
    decrypting: OaepPrivateDecryptingKey,
}

fn key_size(spec: WrappingKeySpec) -> Result<KeySize, KeyStoreError> {
    match spec {
        WrappingKeySpec::Rsa2048 => Ok(KeySize::Rsa2048),
        WrappingKeySpec::Rsa3072 => Ok(KeySize::Rsa3072),
        WrappingKeySpec::Rsa4096 => Ok(KeySize::Rsa4096),
        WrappingKeySpec::Sm2 => Err(KeyStoreError::Unsupported(
            "WrappingKeySpec SM2 is not supported: Strongroom has no SM2 implementation (AWS offers SM2 only \
             in its China Regions)."
                .to_owned(),
        )),
    }
}

/// The RSA-OAEP padding a wrapping algorithm uses, for the RSA step.
fn oaep(algorithm: WrappingAlgorithm) -> Result<&'static OaepAlgorithm, KeyStoreError> {
    match algorithm {
        WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => {
            Ok(&OAEP_SHA1_MGF1SHA1)
        }
        WrappingAlgorithm::RsaesOaepSha256 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
            Ok(&OAEP_SHA256_MGF1SHA256)
        }
        other => Err(KeyStoreError::Unsupported(format!(
            "WrappingAlgorithm {other} is not supported"
        ))),
    }
}

impl WrappingKey {
    /// Generates a fresh wrapping key pair of `spec`; RSA 4096 takes a noticeable fraction of a second.
    pub fn generate(spec: WrappingKeySpec) -> Result<WrappingKey, KeyStoreError> {
        let private =
            PrivateDecryptingKey::generate(key_size(spec)?).map_err(|_| KeyStoreError::Crypto)?;
        let der: Pkcs8V1Der<'static> = private.as_der().map_err(|_| KeyStoreError::Crypto)?;
        WrappingKey::from_pkcs8(spec, der.as_ref())
    }

    /// Rebuilds a wrapping key from [`WrappingKey::pkcs8`], checking it is of `spec`.
    pub fn from_pkcs8(spec: WrappingKeySpec, der: &[u8]) -> Result<WrappingKey, KeyStoreError> {
        let invalid = || KeyStoreError::InvalidMaterial("the wrapping key does not parse");
        let private = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| invalid())?;
        if private.key_size_bytes() != key_size(spec)?.len() {
            return Err(invalid());
        }
        let public: PublicKeyX509Der<'static> = private
            .public_key()
            .as_der()
            .map_err(|_| KeyStoreError::Crypto)?;
        let public_der = public.as_ref().to_vec();
        let decrypting =
            OaepPrivateDecryptingKey::new(private).map_err(|_| KeyStoreError::Crypto)?;
        Ok(WrappingKey {
            spec,
            pkcs8: Zeroizing::new(der.to_vec()),
            public_der,
            decrypting,
        })
    }

    /// The key spec.
    pub fn spec(&self) -> WrappingKeySpec {
        self.spec
    }

    /// The private key as PKCS#8 DER, to seal into an import token.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as DER SubjectPublicKeyInfo, as GetParametersForImport returns it.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Recovers key material wrapped under the public key with `algorithm`.
    ///
    /// Any failure (wrong padding, wrong algorithm, another public key, tampered bytes) is
    /// [`KeyStoreError::Unauthentic`], with no detail that could serve as a padding oracle.
    pub fn unwrap(
        &self,
        algorithm: WrappingAlgorithm,
        encrypted: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let padding = oaep(algorithm)?;
        match algorithm {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaesOaepSha256 => {
                self.rsa_decrypt(padding, encrypted)
            }
            _ => {
                let rsa_len = self.decrypting.key_size_bytes();
                if encrypted.len() <= rsa_len {
                    return Err(KeyStoreError::Unauthentic);
                }
                let (wrapped_aes_key, wrapped_material) = encrypted.split_at(rsa_len);
                let aes_key = self.rsa_decrypt(padding, wrapped_aes_key)?;
                aes_key_unwrap_padded(&aes_key, wrapped_material)
            }
        }
    }

    fn rsa_decrypt(
        &self,
        padding: &'static OaepAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let mut out = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let len = self
            .decrypting
            .decrypt(padding, ciphertext, &mut out, None)
            .map_err(|_| KeyStoreError::Unauthentic)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// Undoes AES key wrap with padding (RFC 5649) under a 128- or 256-bit key encryption key.
fn aes_key_unwrap_padded(key: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let cipher = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(KeyStoreError::Unauthentic),
    };
    let kek = AesKek::new(cipher, key).map_err(|_| KeyStoreError::Unauthentic)?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = kek
        .unwrap_with_padding(wrapped, &mut out)
        .map_err(|_| KeyStoreError::Unauthentic)?
        .len();
    out.truncate(len);
    Ok(out)
}
