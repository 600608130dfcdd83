//! Asymmetric key pairs (RSA, ECC, Ed25519, ML-DSA) and HMAC keys: generation, the operations KMS
//! offers on them, and their encodings.
//!
//! Private keys are kept as PKCS#8 DER (RFC 5958) in `Zeroizing` buffers: that is what the root key
//! wraps, what imports and data key pairs carry, and what aws-lc-rs parses. HMAC keys are raw bytes.

use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::kem;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    self, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, PqdsaKeyPair,
    PqdsaSigningAlgorithm, UnparsedPublicKey, VerificationAlgorithm,
};
use ed25519_dalek::{Digest as _, Sha512};
use strongroom_types::{EncryptionAlgorithm, KeySpec, MacAlgorithm, SigningAlgorithm};
use zeroize::Zeroizing;

use crate::{KeyStoreError, pkcs8};

/// What Sign and Verify are given: the message, or its digest made with the algorithm's hash.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// The message; the algorithm hashes it.
    Raw(&'a [u8]),
    /// The digest of the message; it is not hashed again.
    Digest(&'a [u8]),
    /// ML-DSA's 64-byte message representative μ (FIPS 204 section 6.2), computed by the caller as
    /// SHAKE256(SHAKE256(pk, 64) || 0 || 0 || M, 64) for the empty context KMS uses.
    ExternalMu(&'a [u8]),
}

/// An asymmetric private key with its public half.
pub struct PrivateKey {
    spec: KeySpec,
    pkcs8: Zeroizing<Vec<u8>>,
    /// DER SubjectPublicKeyInfo, as GetPublicKey returns it.
    public_der: Vec<u8>,
    /// The public key in the encoding aws-lc-rs verifies with.
    public_raw: Vec<u8>,
    pair: Pair,
}

enum Pair {
    Rsa {
        signing: Box<rsa::KeyPair>,
        decrypting: Box<OaepPrivateDecryptingKey>,
        encrypting: Box<OaepPublicEncryptingKey>,
    },
    Ecdsa(Box<EcdsaKeyPair>),
    Ed25519(Box<Ed25519KeyPair>),
    MlDsa(Box<PqdsaKeyPair>),
    MlKem(Box<kem::DecapsulationKey<kem::AlgorithmId>>),
}

fn unsupported(spec: KeySpec) -> KeyStoreError {
    KeyStoreError::Unsupported(format!("key spec {spec} is not supported"))
}

fn ecdsa_algorithm(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    Some(match spec {
        KeySpec::EccNistP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        KeySpec::EccNistP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeySpec::EccNistP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        KeySpec::EccSecgP256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return None,
    })
}

fn ml_dsa_algorithm(spec: KeySpec) -> Option<&'static PqdsaSigningAlgorithm> {
    Some(match spec {
        KeySpec::MlDsa44 => &signature::ML_DSA_44_SIGNING,
        KeySpec::MlDsa65 => &signature::ML_DSA_65_SIGNING,
        KeySpec::MlDsa87 => &signature::ML_DSA_87_SIGNING,
        _ => return None,
    })
}

/// A public key as DER SubjectPublicKeyInfo (for GetPublicKey) and in the encoding aws-lc-rs verifies with.
fn public_encodings<P>(public: &P) -> Result<(Vec<u8>, Vec<u8>), KeyStoreError>
where
    P: AsDer<PublicKeyX509Der<'static>> + AsRef<[u8]>,
{
    let der = public.as_der().map_err(|_| KeyStoreError::Crypto)?;
    Ok((der.as_ref().to_vec(), public.as_ref().to_vec()))
}

/// An ML-KEM parameter set: the algorithm, the last arc of its OID 2.16.840.1.101.3.4.4.{1,2,3}
/// (FIPS 203), and its encapsulation key and ciphertext lengths.
struct MlKem {
    algorithm: &'static kem::Algorithm<kem::AlgorithmId>,
    oid_arc: u8,
    public_len: usize,
    ciphertext_len: usize,
}

fn ml_kem_parameters(spec: KeySpec) -> Option<MlKem> {
    let (algorithm, oid_arc, public_len, ciphertext_len) = match spec {
        KeySpec::MlKem512 => (&kem::ML_KEM_512, 1, 800, 768),
        KeySpec::MlKem768 => (&kem::ML_KEM_768, 2, 1184, 1088),
        KeySpec::MlKem1024 => (&kem::ML_KEM_1024, 3, 1568, 1568),
        _ => return None,
    };
    Some(MlKem {
        algorithm,
        oid_arc,
        public_len,
        ciphertext_len,
    })
}

/// DER SubjectPublicKeyInfo of an ML-KEM encapsulation key: aws-lc-rs exposes only the raw key, and the
/// structure is fixed (an AlgorithmIdentifier with no parameters and the key as a BIT STRING), so it is
/// written out here rather than pulling in an ASN.1 crate.
fn ml_kem_spki(oid_arc: u8, key: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else if len <= 0xff {
            out.extend_from_slice(&[0x81, len as u8]);
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
    }
    let algorithm = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, oid_arc,
    ];
    let mut bit_string = vec![0x03];
    push_len(&mut bit_string, key.len() + 1);
    bit_string.push(0);
    bit_string.extend_from_slice(key);
    let mut out = vec![0x30];
    push_len(&mut out, algorithm.len() + bit_string.len());
    out.extend_from_slice(&algorithm);
    out.extend_from_slice(&bit_string);
    out
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    Some(match spec {
        KeySpec::Rsa2048 => KeySize::Rsa2048,
        KeySpec::Rsa3072 => KeySize::Rsa3072,
        KeySpec::Rsa4096 => KeySize::Rsa4096,
        _ => return None,
    })
}

fn ecdh_algorithm(spec: KeySpec) -> Option<&'static agreement::Algorithm> {
    Some(match spec {
        KeySpec::EccNistP256 => &agreement::ECDH_P256,
        KeySpec::EccNistP384 => &agreement::ECDH_P384,
        KeySpec::EccNistP521 => &agreement::ECDH_P521,
        _ => return None,
    })
}

fn oaep(algorithm: EncryptionAlgorithm) -> Result<&'static OaepAlgorithm, KeyStoreError> {
    match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        other => Err(KeyStoreError::Unsupported(format!(
            "{other} is not an RSA encryption algorithm"
        ))),
    }
}

fn pkcs8_of<D: AsRef<[u8]>>(
    der: Result<D, aws_lc_rs::error::Unspecified>,
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let der = der.map_err(|_| KeyStoreError::Crypto)?;
    Ok(Zeroizing::new(der.as_ref().to_vec()))
}

impl PrivateKey {
    /// Generates a fresh key pair of `spec`.
    pub fn generate(spec: KeySpec) -> Result<PrivateKey, KeyStoreError> {
        let pkcs8 = if let Some(size) = rsa_size(spec) {
            let pair = rsa::KeyPair::generate(size).map_err(|_| KeyStoreError::Crypto)?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyStoreError::Crypto)?;
            Zeroizing::new(der.as_ref().to_vec())
        } else if let Some(algorithm) = ecdsa_algorithm(spec) {
            let pair = EcdsaKeyPair::generate(algorithm).map_err(|_| KeyStoreError::Crypto)?;
            pkcs8_of(pair.to_pkcs8v1())?
        } else if spec == KeySpec::EccNistEdwards25519 {
            let pair = Ed25519KeyPair::generate().map_err(|_| KeyStoreError::Crypto)?;
            pkcs8_of(pair.to_pkcs8v1())?
        } else if let Some(algorithm) = ml_dsa_algorithm(spec) {
            let pair = PqdsaKeyPair::generate(algorithm).map_err(|_| KeyStoreError::Crypto)?;
            pkcs8_of(pair.to_pkcs8v1())?
        } else if let Some(ml_kem) = ml_kem_parameters(spec) {
            let key = kem::DecapsulationKey::generate(ml_kem.algorithm)
                .map_err(|_| KeyStoreError::Crypto)?;
            let bytes = key.key_bytes().map_err(|_| KeyStoreError::Crypto)?;
            Zeroizing::new(bytes.as_ref().to_vec())
        } else {
            return Err(unsupported(spec));
        };
        PrivateKey::from_pkcs8(spec, &pkcs8)
    }

    /// Parses a PKCS#8 private key that must be of `spec`.
    pub fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<PrivateKey, KeyStoreError> {
        let wrong = || {
            KeyStoreError::InvalidMaterial("the private key is not a valid key of this key spec")
        };
        let (pair, public_der, public_raw) = if let Some(size) = rsa_size(spec) {
            let signing = rsa::KeyPair::from_pkcs8(der).map_err(|_| wrong())?;
            if signing.public_modulus_len() != size.len() {
                return Err(wrong());
            }
            let decrypting = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| wrong())?;
            let encrypting =
                OaepPublicEncryptingKey::new(decrypting.public_key()).map_err(|_| wrong())?;
            let decrypting = OaepPrivateDecryptingKey::new(decrypting).map_err(|_| wrong())?;
            let (public_der, public_raw) = public_encodings(signing.public_key())?;
            (
                Pair::Rsa {
                    signing: Box::new(signing),
                    decrypting: Box::new(decrypting),
                    encrypting: Box::new(encrypting),
                },
                public_der,
                public_raw,
            )
        } else if let Some(algorithm) = ecdsa_algorithm(spec) {
            let pair = EcdsaKeyPair::from_pkcs8(algorithm, der)
                .or_else(|_| EcdsaKeyPair::from_private_key_der(algorithm, der))
                .map_err(|_| wrong())?;
            let (public_der, public_raw) = public_encodings(pair.public_key())?;
            (Pair::Ecdsa(Box::new(pair)), public_der, public_raw)
        } else if spec == KeySpec::EccNistEdwards25519 {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| wrong())?;
            let (public_der, public_raw) = public_encodings(pair.public_key())?;
            (Pair::Ed25519(Box::new(pair)), public_der, public_raw)
        } else if let Some(algorithm) = ml_dsa_algorithm(spec) {
            let pair = PqdsaKeyPair::from_pkcs8(algorithm, der).map_err(|_| wrong())?;
            let (public_der, public_raw) = public_encodings(pair.public_key())?;
            (Pair::MlDsa(Box::new(pair)), public_der, public_raw)
        } else if let Some(MlKem {
            algorithm,
            oid_arc,
            public_len,
            ..
        }) = ml_kem_parameters(spec)
        {
            // ML-KEM keys are kept as the raw FIPS 203 decapsulation key, not PKCS#8. That key embeds
            // the encapsulation key ek after the 384·k-byte decryption key, followed by H(ek) = SHA3-256(ek),
            // which is checked here.
            let key = kem::DecapsulationKey::new(algorithm, der).map_err(|_| wrong())?;
            let start = public_len - 32;
            let public = der
                .get(start..start + public_len)
                .ok_or_else(wrong)?
                .to_vec();
            let hash = der
                .get(start + public_len..start + public_len + 32)
                .ok_or_else(wrong)?;
            if digest::digest(&digest::SHA3_256, &public).as_ref() != hash {
                return Err(wrong());
            }
            kem::EncapsulationKey::new(algorithm, &public).map_err(|_| wrong())?;
            (
                Pair::MlKem(Box::new(key)),
                ml_kem_spki(oid_arc, &public),
                public,
            )
        } else {
            return Err(unsupported(spec));
        };
        Ok(PrivateKey {
            spec,
            pkcs8: Zeroizing::new(der.to_vec()),
            public_der,
            public_raw,
            pair,
        })
    }

    /// The key spec.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The private key as PKCS#8 DER, for wrapping.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Signs `message` with `algorithm`, which the caller has checked the key spec supports.
    pub fn sign(
        &self,
        algorithm: SigningAlgorithm,
        message: Message<'_>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let rng = SystemRandom::new();
        match (&self.pair, message) {
            (Pair::MlDsa(_), Message::ExternalMu(mu)) => {
                ml_dsa_mu::sign(self.spec, &self.pkcs8, &self.public_raw, mu)
            }
            (_, Message::ExternalMu(_)) => Err(KeyStoreError::Unsupported(format!(
                "{algorithm} does not sign an external mu: only ML-DSA does"
            ))),
            (Pair::Rsa { signing, .. }, Message::Raw(bytes)) => {
                let padding = rsa_padding(algorithm)?;
                let mut out = vec![0u8; signing.public_modulus_len()];
                signing
                    .sign(padding, &rng, bytes, &mut out)
                    .map_err(|_| KeyStoreError::Crypto)?;
                Ok(out)
            }
            (Pair::Rsa { signing, .. }, Message::Digest(bytes)) => {
                let padding = rsa_padding(algorithm)?;
                let digest = import_digest(algorithm, bytes)?;
                let mut out = vec![0u8; signing.public_modulus_len()];
                signing
                    .sign_digest(padding, &digest, &mut out)
                    .map_err(|_| KeyStoreError::Crypto)?;
                Ok(out)
            }
            (Pair::Ecdsa(pair), Message::Raw(bytes)) => Ok(pair
                .sign(&rng, bytes)
                .map_err(|_| KeyStoreError::Crypto)?
                .as_ref()
                .to_vec()),
            (Pair::Ecdsa(pair), Message::Digest(bytes)) => {
                let digest = import_digest(algorithm, bytes)?;
                Ok(pair
                    .sign_digest(&digest)
                    .map_err(|_| KeyStoreError::Crypto)?
                    .as_ref()
                    .to_vec())
            }
            (Pair::Ed25519(_), Message::Raw(bytes) | Message::Digest(bytes))
                if algorithm == SigningAlgorithm::Ed25519PhSha512 =>
            {
                ed25519ph_sign(&self.pkcs8, &self.public_raw, bytes)
            }
            (Pair::Ed25519(pair), Message::Raw(bytes)) => Ok(pair
                .try_sign(bytes)
                .map_err(|_| KeyStoreError::Crypto)?
                .as_ref()
                .to_vec()),
            (Pair::MlDsa(pair), Message::Raw(bytes)) => {
                let mut out = vec![0u8; pair.algorithm().signature_len()];
                let len = pair
                    .sign(bytes, &mut out)
                    .map_err(|_| KeyStoreError::Crypto)?;
                out.truncate(len);
                Ok(out)
            }
            (Pair::Ed25519(_) | Pair::MlDsa(_), Message::Digest(_)) => Err(
                KeyStoreError::Unsupported(format!("{algorithm} cannot sign a precomputed digest")),
            ),
            (Pair::MlKem(_), _) => Err(KeyStoreError::Unsupported(format!(
                "{} keys cannot sign",
                self.spec
            ))),
        }
    }

    /// Whether `signature` is a valid signature of `message` with `algorithm`.
    pub fn verify(
        &self,
        algorithm: SigningAlgorithm,
        message: Message<'_>,
        signature: &[u8],
    ) -> Result<bool, KeyStoreError> {
        verify_with(self.spec, &self.public_raw, algorithm, message, signature)
    }

    /// RSA-OAEP encryption with the public key.
    pub fn encrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let Pair::Rsa {
            encrypting: public, ..
        } = &self.pair
        else {
            return Err(KeyStoreError::Unsupported(format!(
                "{} keys cannot encrypt",
                self.spec
            )));
        };
        let algorithm = oaep(algorithm)?;
        if plaintext.len() > public.max_plaintext_size(algorithm) {
            return Err(KeyStoreError::InvalidInput(format!(
                "the plaintext is {} bytes; {} with {} takes at most {}",
                plaintext.len(),
                self.spec,
                encryption_name(algorithm),
                public.max_plaintext_size(algorithm)
            )));
        }
        let mut out = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(algorithm, plaintext, &mut out, None)
            .map_err(|_| KeyStoreError::Crypto)?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// RSA-OAEP decryption with the private key.
    pub fn decrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let Pair::Rsa { decrypting, .. } = &self.pair else {
            return Err(KeyStoreError::Unsupported(format!(
                "{} keys cannot decrypt",
                self.spec
            )));
        };
        let algorithm = oaep(algorithm)?;
        let mut out = Zeroizing::new(vec![0u8; decrypting.min_output_size()]);
        let len = decrypting
            .decrypt(algorithm, ciphertext, &mut out, None)
            .map_err(|_| KeyStoreError::Unauthentic)?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// The largest plaintext RSA-OAEP with `algorithm` can encrypt under this key.
    pub fn max_plaintext_len(&self, algorithm: EncryptionAlgorithm) -> Option<usize> {
        let Pair::Rsa { encrypting, .. } = &self.pair else {
            return None;
        };
        Some(encrypting.max_plaintext_size(oaep(algorithm).ok()?))
    }

    /// ML-KEM encapsulation with the public key: the ciphertext and the 32-byte shared secret.
    pub fn encapsulate(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), KeyStoreError> {
        let Pair::MlKem(key) = &self.pair else {
            return Err(KeyStoreError::Unsupported(format!(
                "{} keys cannot encapsulate",
                self.spec
            )));
        };
        let public = kem::EncapsulationKey::new(key.algorithm(), &self.public_raw)
            .map_err(|_| KeyStoreError::Crypto)?;
        let (ciphertext, secret) = public.encapsulate().map_err(|_| KeyStoreError::Crypto)?;
        Ok((
            ciphertext.as_ref().to_vec(),
            Zeroizing::new(secret.as_ref().to_vec()),
        ))
    }

    /// ML-KEM decapsulation. A ciphertext of the right length always yields a secret (implicit
    /// rejection); only a wrong length is an error.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let Pair::MlKem(key) = &self.pair else {
            return Err(KeyStoreError::Unsupported(format!(
                "{} keys cannot decapsulate",
                self.spec
            )));
        };
        let expected = ml_kem_parameters(self.spec).map_or(0, |ml_kem| ml_kem.ciphertext_len);
        if ciphertext.len() != expected {
            return Err(KeyStoreError::Unauthentic);
        }
        let secret = key
            .decapsulate(kem::Ciphertext::from(ciphertext))
            .map_err(|_| KeyStoreError::Unauthentic)?;
        Ok(Zeroizing::new(secret.as_ref().to_vec()))
    }

    /// ECDH with a peer's public key (DER SubjectPublicKeyInfo on the same curve): the raw shared secret.
    pub fn derive_shared_secret(
        &self,
        peer_der: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let algorithm = ecdh_algorithm(self.spec).ok_or_else(|| {
            KeyStoreError::Unsupported(format!("{} keys cannot do key agreement", self.spec))
        })?;
        let private = agreement::PrivateKey::from_private_key_der(algorithm, &self.pkcs8)
            .map_err(|_| KeyStoreError::Crypto)?;
        let peer = agreement::UnparsedPublicKey::new(algorithm, peer_der);
        agreement::agree(
            &private,
            peer,
            KeyStoreError::InvalidInput(format!(
                "the public key is not a DER-encoded {} public key (SubjectPublicKeyInfo)",
                self.spec
            )),
            |secret| Ok(Zeroizing::new(secret.to_vec())),
        )
    }
}

/// Ed25519ph (RFC 8032 section 5.1, HashEdDSA with SHA-512 and the empty context) over `message`, which
/// it hashes with SHA-512 first.
///
/// KMS's `ED25519_PH_SHA_512` takes a 64-byte DIGEST message and still applies this prehash to it (the
/// API reference says so of `MessageType`), so both message kinds are signed the same way here: the bytes
/// given are Ed25519ph's message M.
///
/// aws-lc-rs, our one crypto library, has Ed25519ph only in its raw C bindings, which would take `unsafe`
/// code (forbidden here). ed25519-dalek (audited, maintained by the dalek-cryptography project) signs it
/// instead, with the very same private key: the 32-byte seed inside the PKCS#8 the key store already keeps,
/// so stored keys need no new format. The seed lives only in a `Zeroizing` buffer and in dalek's
/// `SigningKey`, which wipes itself on drop.
fn ed25519ph_sign(
    pkcs8: &[u8],
    public_raw: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, KeyStoreError> {
    let seed = pkcs8::ed25519_seed(pkcs8).ok_or(KeyStoreError::Crypto)?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    // The two libraries must agree on the key before dalek signs with it.
    if signing.verifying_key().as_bytes().as_slice() != public_raw {
        return Err(KeyStoreError::Crypto);
    }
    let signature = signing
        .sign_prehashed(Sha512::new().chain_update(message), None)
        .map_err(|_| KeyStoreError::Crypto)?;
    Ok(signature.to_bytes().to_vec())
}

/// Whether `signature` is a valid Ed25519ph signature of `message` (see [`ed25519ph_sign`]) under a public
/// key given raw (32 bytes) or as DER SubjectPublicKeyInfo. dalek's strict check also refuses small-order
/// keys and commitments, which honest signers never produce.
fn ed25519ph_verify(
    public: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<bool, KeyStoreError> {
    const SPKI_PREFIX: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let raw = public.strip_prefix(SPKI_PREFIX).unwrap_or(public);
    let raw: &[u8; 32] = raw.try_into().map_err(|_| {
        KeyStoreError::InvalidInput("the public key is not an Ed25519 public key".to_owned())
    })?;
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(raw) else {
        return Ok(false);
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return Ok(false);
    };
    Ok(key
        .verify_prehashed_strict(Sha512::new().chain_update(message), None, &signature)
        .is_ok())
}

/// ML-DSA over an external μ (FIPS 204 Algorithms 2 and 3 with μ given), which aws-lc-rs 1.19 does not
/// expose: it signs and verifies whole messages only. RustCrypto's `ml-dsa` (0.1.2, which fixes the
/// crate's four published advisories; not independently audited) does this one thing, with the very same
/// key: the 32-byte seed ξ that aws-lc-rs writes into the stored PKCS#8, so stored keys need no new
/// format. Signing is hedged (fresh randomness from aws-lc-rs's generator), as AWS signs ML-DSA. The seed
/// and the expanded key live only in `Zeroizing` buffers and in `ml-dsa` keys that wipe themselves on
/// drop. A signature made here is an ordinary ML-DSA signature of the message behind μ, and the other
/// way round (the keystore's tests check both against aws-lc-rs).
mod ml_dsa_mu {
    use aws_lc_rs::error::Unspecified;
    use ml_dsa::common::array::Array;
    use ml_dsa::common::typenum::U64;
    use ml_dsa::signature::rand_core::{TryCryptoRng, TryRng};
    use ml_dsa::{
        EncodedVerifyingKey, ExpandedSigningKey, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Seed,
        Signature, VerifyingKey,
    };
    use strongroom_types::KeySpec;
    use zeroize::Zeroizing;

    use crate::{KeyStoreError, pkcs8};

    /// aws-lc-rs's random generator, for `ml-dsa`'s hedged signing.
    struct SystemRng;

    impl TryRng for SystemRng {
        type Error = Unspecified;

        fn try_next_u32(&mut self) -> Result<u32, Unspecified> {
            let mut bytes = [0u8; 4];
            aws_lc_rs::rand::fill(&mut bytes)?;
            Ok(u32::from_le_bytes(bytes))
        }

        fn try_next_u64(&mut self) -> Result<u64, Unspecified> {
            let mut bytes = [0u8; 8];
            aws_lc_rs::rand::fill(&mut bytes)?;
            Ok(u64::from_le_bytes(bytes))
        }

        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Unspecified> {
            aws_lc_rs::rand::fill(dst)
        }
    }

    impl TryCryptoRng for SystemRng {}

    /// The last arc of the parameter set's OID and its public key length.
    fn parameters(spec: KeySpec) -> Result<(u8, usize), KeyStoreError> {
        match spec {
            KeySpec::MlDsa44 => Ok((17, 1312)),
            KeySpec::MlDsa65 => Ok((18, 1952)),
            KeySpec::MlDsa87 => Ok((19, 2592)),
            other => Err(KeyStoreError::Unsupported(format!(
                "{other} keys do not sign an external mu"
            ))),
        }
    }

    fn mu_of(mu: &[u8]) -> Result<Array<u8, U64>, KeyStoreError> {
        Array::try_from(mu).map_err(|_| {
            KeyStoreError::InvalidInput(format!(
                "an EXTERNAL_MU message must be the 64-byte mu, not {} bytes",
                mu.len()
            ))
        })
    }

    /// A hedged signature over `mu` with the key stored as `pkcs8`, whose public key is `public_raw`.
    pub(super) fn sign(
        spec: KeySpec,
        pkcs8: &[u8],
        public_raw: &[u8],
        mu: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let (oid_arc, _) = parameters(spec)?;
        let mu = mu_of(mu)?;
        let seed = pkcs8::ml_dsa_seed(pkcs8, oid_arc).ok_or_else(|| {
            KeyStoreError::Unsupported(
                "this ML-DSA key is stored without its seed, so it cannot sign an external mu"
                    .to_owned(),
            )
        })?;
        let mut xi = Zeroizing::new(Seed::default());
        xi.copy_from_slice(seed.as_slice());
        match spec {
            KeySpec::MlDsa44 => sign_with::<MlDsa44>(&xi, public_raw, &mu),
            KeySpec::MlDsa65 => sign_with::<MlDsa65>(&xi, public_raw, &mu),
            _ => sign_with::<MlDsa87>(&xi, public_raw, &mu),
        }
    }

    fn sign_with<P: MlDsaParams>(
        xi: &Seed,
        public_raw: &[u8],
        mu: &Array<u8, U64>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        let key = ExpandedSigningKey::<P>::from_seed(xi);
        // The two libraries must agree on the key before `ml-dsa` signs with it.
        if key.verifying_key().encode().as_slice() != public_raw {
            return Err(KeyStoreError::Crypto);
        }
        let signature = key
            .sign_mu_randomized(mu, &mut SystemRng)
            .map_err(|_| KeyStoreError::Crypto)?;
        Ok(signature.encode().to_vec())
    }

    /// Whether `signature` is valid over `mu` under a public key given raw or as DER
    /// SubjectPublicKeyInfo (whose last bytes are the raw key; `verify_public` has checked its form).
    pub(super) fn verify(
        spec: KeySpec,
        public: &[u8],
        mu: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyStoreError> {
        let (_, public_len) = parameters(spec)?;
        let mu = mu_of(mu)?;
        let raw = public
            .len()
            .checked_sub(public_len)
            .map(|start| &public[start..])
            .ok_or_else(|| {
                KeyStoreError::InvalidInput(format!("the public key is not an {spec} public key"))
            })?;
        Ok(match spec {
            KeySpec::MlDsa44 => verify_with::<MlDsa44>(raw, &mu, signature),
            KeySpec::MlDsa65 => verify_with::<MlDsa65>(raw, &mu, signature),
            _ => verify_with::<MlDsa87>(raw, &mu, signature),
        })
    }

    fn verify_with<P: MlDsaParams>(raw: &[u8], mu: &Array<u8, U64>, signature: &[u8]) -> bool {
        let Ok(encoded) = EncodedVerifyingKey::<P>::try_from(raw) else {
            return false;
        };
        let Ok(signature) = Signature::<P>::try_from(signature) else {
            return false;
        };
        VerifyingKey::<P>::decode(&encoded).verify_mu(mu, &signature)
    }
}

/// Checks a signature with a public key in aws-lc-rs's verification encoding.
fn verify_with(
    spec: KeySpec,
    public_raw: &[u8],
    algorithm: SigningAlgorithm,
    message: Message<'_>,
    signature: &[u8],
) -> Result<bool, KeyStoreError> {
    match (spec, algorithm, message) {
        (
            KeySpec::EccNistEdwards25519,
            SigningAlgorithm::Ed25519PhSha512,
            Message::Raw(bytes) | Message::Digest(bytes),
        ) => return ed25519ph_verify(public_raw, bytes, signature),
        (
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87,
            SigningAlgorithm::MlDsaShake256,
            Message::ExternalMu(mu),
        ) => return ml_dsa_mu::verify(spec, public_raw, mu, signature),
        (_, _, Message::ExternalMu(_)) => {
            return Err(KeyStoreError::Unsupported(format!(
                "{algorithm} does not verify an external mu: only ML-DSA does"
            )));
        }
        _ => {}
    }
    let verifier: &'static dyn VerificationAlgorithm = match (spec, algorithm) {
        (_, SigningAlgorithm::RsassaPssSha256) => &signature::RSA_PSS_2048_8192_SHA256,
        (_, SigningAlgorithm::RsassaPssSha384) => &signature::RSA_PSS_2048_8192_SHA384,
        (_, SigningAlgorithm::RsassaPssSha512) => &signature::RSA_PSS_2048_8192_SHA512,
        (_, SigningAlgorithm::RsassaPkcs1V15Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (_, SigningAlgorithm::RsassaPkcs1V15Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (_, SigningAlgorithm::RsassaPkcs1V15Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (KeySpec::EccNistP256, SigningAlgorithm::EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeySpec::EccSecgP256k1, SigningAlgorithm::EcdsaSha256) => {
            &signature::ECDSA_P256K1_SHA256_ASN1
        }
        (KeySpec::EccNistP384, SigningAlgorithm::EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeySpec::EccNistP521, SigningAlgorithm::EcdsaSha512) => &signature::ECDSA_P521_SHA512_ASN1,
        (KeySpec::EccNistEdwards25519, SigningAlgorithm::Ed25519Sha512) => &signature::ED25519,
        (KeySpec::MlDsa44, SigningAlgorithm::MlDsaShake256) => &signature::ML_DSA_44,
        (KeySpec::MlDsa65, SigningAlgorithm::MlDsaShake256) => &signature::ML_DSA_65,
        (KeySpec::MlDsa87, SigningAlgorithm::MlDsaShake256) => &signature::ML_DSA_87,
        _ => {
            return Err(KeyStoreError::Unsupported(format!(
                "{algorithm} does not apply to {spec} keys"
            )));
        }
    };
    let key = UnparsedPublicKey::new(verifier, public_raw);
    let ok = match message {
        Message::Raw(bytes) => key.verify(bytes, signature).is_ok(),
        Message::ExternalMu(_) => {
            return Err(KeyStoreError::Unsupported(format!(
                "{algorithm} does not verify an external mu"
            )));
        }
        Message::Digest(bytes) => {
            if matches!(
                algorithm,
                SigningAlgorithm::Ed25519Sha512 | SigningAlgorithm::MlDsaShake256
            ) {
                return Err(KeyStoreError::Unsupported(format!(
                    "{algorithm} cannot verify a precomputed digest"
                )));
            }
            let digest = import_digest(algorithm, bytes)?;
            key.verify_digest(&digest, signature).is_ok()
        }
    };
    Ok(ok)
}

fn rsa_padding(
    algorithm: SigningAlgorithm,
) -> Result<&'static signature::RsaSignatureEncoding, KeyStoreError> {
    Ok(match algorithm {
        SigningAlgorithm::RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        SigningAlgorithm::RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        SigningAlgorithm::RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        SigningAlgorithm::RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        SigningAlgorithm::RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        SigningAlgorithm::RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        other => {
            return Err(KeyStoreError::Unsupported(format!(
                "{other} is not an RSA signing algorithm"
            )));
        }
    })
}

fn hash_of(algorithm: SigningAlgorithm) -> Option<&'static digest::Algorithm> {
    match algorithm.digest_len()? {
        32 => Some(&digest::SHA256),
        48 => Some(&digest::SHA384),
        64 => Some(&digest::SHA512),
        _ => None,
    }
}

fn import_digest(algorithm: SigningAlgorithm, bytes: &[u8]) -> Result<Digest, KeyStoreError> {
    let hash = hash_of(algorithm).ok_or_else(|| {
        KeyStoreError::Unsupported(format!("{algorithm} cannot sign a precomputed digest"))
    })?;
    Digest::import_less_safe(bytes, hash).map_err(|_| {
        KeyStoreError::InvalidInput(format!(
            "a DIGEST message for {algorithm} must be {} bytes, not {}",
            hash.output_len(),
            bytes.len()
        ))
    })
}

fn encryption_name(algorithm: &'static OaepAlgorithm) -> &'static str {
    if std::ptr::eq(algorithm, &OAEP_SHA1_MGF1SHA1) {
        "RSAES_OAEP_SHA_1"
    } else {
        "RSAES_OAEP_SHA_256"
    }
}

/// An HMAC key.
pub struct HmacKey {
    spec: KeySpec,
    bytes: Zeroizing<Vec<u8>>,
    key: hmac::Key,
}

impl HmacKey {
    /// The length AWS KMS generates for each HMAC spec: the hash's output length.
    pub fn generated_len(spec: KeySpec) -> Option<usize> {
        Some(match spec {
            KeySpec::Hmac224 => 28,
            KeySpec::Hmac256 => 32,
            KeySpec::Hmac384 => 48,
            KeySpec::Hmac512 => 64,
            _ => return None,
        })
    }

    /// The lengths an imported HMAC key may have: from the hash's output length to its block length.
    pub fn allowed_lens(spec: KeySpec) -> Option<std::ops::RangeInclusive<usize>> {
        Some(match spec {
            KeySpec::Hmac224 => 28..=64,
            KeySpec::Hmac256 => 32..=64,
            KeySpec::Hmac384 => 48..=128,
            KeySpec::Hmac512 => 64..=128,
            _ => return None,
        })
    }

    /// Generates a fresh key of `spec`.
    pub fn generate(spec: KeySpec) -> Result<HmacKey, KeyStoreError> {
        let len = HmacKey::generated_len(spec).ok_or_else(|| unsupported(spec))?;
        let bytes = Zeroizing::new(crate::random_bytes(len));
        HmacKey::from_bytes(spec, &bytes)
    }

    /// Takes key bytes of an allowed length for `spec`.
    pub fn from_bytes(spec: KeySpec, bytes: &[u8]) -> Result<HmacKey, KeyStoreError> {
        let range = HmacKey::allowed_lens(spec).ok_or_else(|| unsupported(spec))?;
        if !range.contains(&bytes.len()) {
            return Err(KeyStoreError::InvalidMaterial(
                "HMAC key material has the wrong length for its key spec",
            ));
        }
        let algorithm = match spec {
            KeySpec::Hmac224 => hmac::HMAC_SHA224,
            KeySpec::Hmac256 => hmac::HMAC_SHA256,
            KeySpec::Hmac384 => hmac::HMAC_SHA384,
            _ => hmac::HMAC_SHA512,
        };
        Ok(HmacKey {
            spec,
            bytes: Zeroizing::new(bytes.to_vec()),
            key: hmac::Key::new(algorithm, bytes),
        })
    }

    /// The key spec.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The raw key, for wrapping.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The MAC algorithm this key computes.
    pub fn algorithm(&self) -> MacAlgorithm {
        match self.spec {
            KeySpec::Hmac224 => MacAlgorithm::HmacSha224,
            KeySpec::Hmac256 => MacAlgorithm::HmacSha256,
            KeySpec::Hmac384 => MacAlgorithm::HmacSha384,
            _ => MacAlgorithm::HmacSha512,
        }
    }

    /// The MAC of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, message).as_ref().to_vec()
    }

    /// Whether `tag` is the MAC of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, message, tag).is_ok()
    }
}

/// Checks a signature with a public key alone, given as DER SubjectPublicKeyInfo (what GetPublicKey
/// returns), the way anyone outside KMS verifies; known-answer vectors that come without a private key
/// are checked through it. A key that is not a canonical SubjectPublicKeyInfo of `spec` is refused.
pub fn verify_public(
    spec: KeySpec,
    public_der: &[u8],
    algorithm: SigningAlgorithm,
    message: Message<'_>,
    signature: &[u8],
) -> Result<bool, KeyStoreError> {
    // aws-lc-rs also takes raw points and PKCS#1 keys; parsing with one verifier of the key's family and
    // re-encoding proves the bytes are exactly a SubjectPublicKeyInfo on the right curve or of the right size.
    let probe: &'static dyn VerificationAlgorithm = match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        KeySpec::EccNistP256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeySpec::EccNistP384 => &signature::ECDSA_P384_SHA384_ASN1,
        KeySpec::EccNistP521 => &signature::ECDSA_P521_SHA512_ASN1,
        KeySpec::EccSecgP256k1 => &signature::ECDSA_P256K1_SHA256_ASN1,
        KeySpec::EccNistEdwards25519 => &signature::ED25519,
        KeySpec::MlDsa44 => &signature::ML_DSA_44,
        KeySpec::MlDsa65 => &signature::ML_DSA_65,
        KeySpec::MlDsa87 => &signature::ML_DSA_87,
        other => return Err(unsupported(other)),
    };
    let not_spki = || {
        KeyStoreError::InvalidInput(format!(
            "the public key is not a DER-encoded {spec} public key (SubjectPublicKeyInfo)"
        ))
    };
    let parsed = signature::ParsedPublicKey::new(probe, public_der).map_err(|_| not_spki())?;
    let canonical: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
        parsed.as_der().map_err(|_| not_spki())?;
    if canonical.as_ref() != public_der {
        return Err(not_spki());
    }
    verify_with(spec, public_der, algorithm, message, signature)
}
