//! Operations on asymmetric and HMAC keys: Sign, Verify, GetPublicKey, GenerateMac, VerifyMac,
//! DeriveSharedSecret, and the data key pairs (GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext),
//! plus RSA encryption for Encrypt, Decrypt and ReEncrypt.
//!
//! Every operation resolves the key, authorizes it with the request's condition keys, then applies the
//! key-state table, the key usage and the algorithm checks, in that order, as AWS does.

use std::sync::Arc;

use strongroom_keystore::{Material, Message, PrivateKey};
use strongroom_types::{
    DataKeyPairSpec, EncapsulationAlgorithm, EncryptionAlgorithm, EncryptionContext,
    KeyAgreementAlgorithm, KeyMaterialId, KeySpec, KeyUsage, MacAlgorithm, MessageType,
    SigningAlgorithm,
};
use zeroize::Zeroizing;

use crate::authz::RequestFacts;
use crate::crypto::request_alias;
use crate::keyring::{Forms, LiveKey};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// Sign's parameters.
#[derive(Debug)]
pub struct SignRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// The message or its digest, 1 to 4096 bytes.
    pub message: Zeroizing<Vec<u8>>,
    /// RAW by default.
    pub message_type: Option<MessageType>,
    /// One of the key's signing algorithms.
    pub algorithm: SigningAlgorithm,
    /// Check everything, sign nothing.
    pub dry_run: bool,
}

/// Sign's result.
#[derive(Debug)]
pub struct SignResponse {
    /// The key ARN.
    pub key_arn: String,
    /// The signature: DER for ECDSA, the raw signature otherwise.
    pub signature: Vec<u8>,
    /// The algorithm used.
    pub algorithm: SigningAlgorithm,
}

/// Verify's parameters.
#[derive(Debug)]
pub struct VerifyRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// The message or its digest.
    pub message: Zeroizing<Vec<u8>>,
    /// RAW by default.
    pub message_type: Option<MessageType>,
    /// The signature to check.
    pub signature: Vec<u8>,
    /// The algorithm the signature was made with.
    pub algorithm: SigningAlgorithm,
    /// Check everything, verify nothing.
    pub dry_run: bool,
}

/// GetPublicKey's result.
#[derive(Debug)]
pub struct PublicKeyInfo {
    /// The key ARN.
    pub key_arn: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// The key spec.
    pub key_spec: KeySpec,
    /// The key usage.
    pub key_usage: KeyUsage,
    /// Encryption algorithms, for ENCRYPT_DECRYPT keys.
    pub encryption_algorithms: &'static [EncryptionAlgorithm],
    /// Signing algorithms, for SIGN_VERIFY keys.
    pub signing_algorithms: &'static [SigningAlgorithm],
    /// Key agreement algorithms, for KEY_AGREEMENT keys.
    pub key_agreement_algorithms: &'static [KeyAgreementAlgorithm],
    /// Key encapsulation algorithms, for ENCAPSULATE_DECAPSULATE keys.
    pub encapsulation_algorithms: &'static [EncapsulationAlgorithm],
}

/// Encapsulate's result, and Decapsulate's (without the ciphertext).
#[derive(Debug)]
pub struct Encapsulated {
    /// The key ARN.
    pub key_arn: String,
    /// The 32-byte shared secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// The encapsulated secret; empty for Decapsulate.
    pub ciphertext: Vec<u8>,
    /// The algorithm used.
    pub algorithm: EncapsulationAlgorithm,
}

/// GenerateMac's and VerifyMac's parameters.
#[derive(Debug)]
pub struct MacRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// The message, 1 to 4096 bytes.
    pub message: Zeroizing<Vec<u8>>,
    /// The key's MAC algorithm.
    pub algorithm: MacAlgorithm,
    /// For VerifyMac: the MAC to check.
    pub mac: Option<Vec<u8>>,
    /// Check everything, compute nothing.
    pub dry_run: bool,
}

/// GenerateMac's result (VerifyMac returns the same fields without the MAC).
#[derive(Debug)]
pub struct MacResponse {
    /// The key ARN.
    pub key_arn: String,
    /// The MAC; empty for VerifyMac.
    pub mac: Vec<u8>,
    /// The algorithm used.
    pub algorithm: MacAlgorithm,
}

/// DeriveSharedSecret's parameters.
#[derive(Debug)]
pub struct DeriveSharedSecretRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// ECDH.
    pub algorithm: KeyAgreementAlgorithm,
    /// The peer's public key, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// Check everything, derive nothing.
    pub dry_run: bool,
}

/// DeriveSharedSecret's result.
#[derive(Debug)]
pub struct SharedSecret {
    /// The key ARN.
    pub key_arn: String,
    /// The raw ECDH shared secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// The algorithm used.
    pub algorithm: KeyAgreementAlgorithm,
    /// The key's origin.
    pub key_origin: strongroom_types::Origin,
}

/// GenerateDataKeyPair's and GenerateDataKeyPairWithoutPlaintext's parameters.
#[derive(Debug)]
pub struct GenerateDataKeyPairRequest {
    /// The symmetric encryption key that encrypts the private key.
    pub key_id: String,
    /// Bound to the encrypted private key.
    pub context: EncryptionContext,
    /// The kind of key pair.
    pub spec: DataKeyPairSpec,
    /// Whether the plaintext private key is withheld.
    pub without_plaintext: bool,
    /// Check everything, generate nothing.
    pub dry_run: bool,
}

/// A generated data key pair.
#[derive(Debug)]
pub struct DataKeyPair {
    /// The private key (PKCS#8 DER) encrypted under the KMS key.
    pub private_key_ciphertext: Vec<u8>,
    /// The private key, PKCS#8 DER; `None` for the WithoutPlaintext operation.
    pub private_key_plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The public key, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// The KMS key ARN.
    pub key_arn: String,
    /// The key pair spec.
    pub spec: DataKeyPairSpec,
    /// The material version that encrypted the private key.
    pub material_id: KeyMaterialId,
}

/// Whether generating a key pair of `spec` takes long: RSA key generation searches for primes, which takes
/// from tens of milliseconds (RSA 2048) to seconds (RSA 4096), with a long tail.
fn slow_to_generate(spec: KeySpec) -> bool {
    matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
}

/// Fresh material for a new key of `spec` (CreateKey).
///
/// RSA generation runs on tokio's blocking pool: on an async worker it would stall every other request
/// scheduled on that worker (all of them, on a single-threaded runtime) until the primes are found. The
/// other specs take microseconds and run in place, where a hop to the pool would cost more than it saves.
pub(crate) async fn generate_material(spec: KeySpec) -> Result<Material, Error> {
    if !slow_to_generate(spec) {
        return Ok(Material::generate(spec)?);
    }
    Ok(
        tokio::task::spawn_blocking(move || Material::generate(spec))
            .await
            .map_err(Error::internal)??,
    )
}

/// A fresh key pair of `spec` (GenerateDataKeyPair), generated off the async workers when that is slow;
/// see [`generate_material`].
async fn generate_key_pair(spec: KeySpec) -> Result<PrivateKey, Error> {
    if !slow_to_generate(spec) {
        return Ok(PrivateKey::generate(spec)?);
    }
    Ok(
        tokio::task::spawn_blocking(move || PrivateKey::generate(spec))
            .await
            .map_err(Error::internal)??,
    )
}

fn wrong_usage(key: &LiveKey, operation: &str) -> Error {
    Error::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {operation}.",
        key.arn_str(),
        key.record.key_usage
    ))
}

/// The state check every operation here starts with, then the usage check.
fn check_usage(key: &LiveKey, usage: KeyUsage, operation: &str) -> Result<(), Error> {
    state::check(&key.record, OpClass::Crypto)?;
    if key.record.key_usage != usage {
        return Err(wrong_usage(key, operation));
    }
    Ok(())
}

/// The private key of an asymmetric KMS key.
fn private_key(key: &LiveKey) -> Result<&PrivateKey, Error> {
    current_private(key).map(|(_, private)| private)
}

/// The private key of an asymmetric KMS key, with its material id.
fn current_private(key: &LiveKey) -> Result<(KeyMaterialId, &PrivateKey), Error> {
    match key.current() {
        Some((id, Material::Private(private))) => Ok((*id, private)),
        Some(_) => Err(Error::internal(std::io::Error::other(
            "an asymmetric key holds material of another kind",
        ))),
        None => Err(Error::InvalidState(format!(
            "{} is pending import.",
            key.arn_str()
        ))),
    }
}

/// Checks the algorithm against the key spec and the message against its type; returns what to sign.
fn signable<'m>(
    key: &LiveKey,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &'m [u8],
) -> Result<Message<'m>, Error> {
    let spec = key.record.key_spec;
    if !spec
        .signing_algorithms(key.record.key_usage)
        .contains(&algorithm)
    {
        let supported: Vec<&str> = spec
            .signing_algorithms(key.record.key_usage)
            .iter()
            .map(|a| a.as_str())
            .collect();
        return Err(Error::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {spec}. {} supports {}.",
            key.arn_str(),
            supported.join(", ")
        )));
    }
    match message_type {
        MessageType::Raw => {
            // AWS signs Ed25519ph only over a SHA-512 digest the caller made (which it hashes once more,
            // as Ed25519ph does), and refuses RAW with this wording.
            if algorithm == SigningAlgorithm::Ed25519PhSha512 {
                return Err(Error::Validation(
                    "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512: send the message's \
                     64-byte SHA-512 digest with MessageType DIGEST."
                        .to_owned(),
                ));
            }
            Ok(Message::Raw(message))
        }
        MessageType::Digest => {
            if algorithm == SigningAlgorithm::Ed25519Sha512 {
                return Err(Error::Validation(
                    "Message type DIGEST is incompatible with algorithm ED25519_SHA_512: it signs the message \
                     itself. Send MessageType RAW, or use ED25519_PH_SHA_512 for a SHA-512 digest."
                        .to_owned(),
                ));
            }
            let Some(len) = algorithm.digest_len() else {
                return Err(Error::Validation(format!(
                    "Message type DIGEST is incompatible with algorithm {algorithm}: send the message itself \
                     with MessageType RAW, or its 64-byte mu with MessageType EXTERNAL_MU."
                )));
            };
            if message.len() != len {
                return Err(Error::Validation(format!(
                    "Digest is invalid length for algorithm {algorithm}: a DIGEST message must be the {len}-byte \
                     hash of the message, not {} bytes.",
                    message.len()
                )));
            }
            Ok(Message::Digest(message))
        }
        MessageType::ExternalMu => {
            if algorithm != SigningAlgorithm::MlDsaShake256 {
                return Err(Error::Validation(format!(
                    "Message type EXTERNAL_MU is incompatible with algorithm {algorithm}: it is the \
                     message representative of ML_DSA_SHAKE_256 only."
                )));
            }
            if message.len() != 64 {
                return Err(Error::Validation(format!(
                    "External mu is invalid length for algorithm {algorithm}: an EXTERNAL_MU message must \
                     be the 64-byte mu of FIPS 204 section 6.2, not {} bytes.",
                    message.len()
                )));
            }
            Ok(Message::ExternalMu(message))
        }
    }
}

/// The RSA encryption algorithm a request names, checked against the key.
pub(crate) fn rsa_algorithm(
    key: &LiveKey,
    algorithm: Option<EncryptionAlgorithm>,
) -> Result<EncryptionAlgorithm, Error> {
    let supported = key
        .record
        .key_spec
        .encryption_algorithms(key.record.key_usage);
    match algorithm {
        Some(algorithm) if supported.contains(&algorithm) => Ok(algorithm),
        Some(algorithm) => Err(Error::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}: use RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256.",
            key.record.key_spec
        ))),
        None => Err(Error::InvalidKeyUsage(format!(
            "{} is an asymmetric key: EncryptionAlgorithm is required (RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256).",
            key.arn_str()
        ))),
    }
}

/// Refuses an encryption context with an asymmetric key, which cannot bind one.
pub(crate) fn no_context(key: &LiveKey, context: &EncryptionContext) -> Result<(), Error> {
    if context.is_empty() {
        return Ok(());
    }
    Err(Error::Validation(format!(
        "EncryptionContext is not supported with asymmetric keys such as {}: RSA encryption cannot bind it. \
         Leave it out.",
        key.arn_str()
    )))
}

/// RSA-OAEP encryption with an asymmetric key's public key.
pub(crate) fn rsa_encrypt(
    key: &LiveKey,
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<(Vec<u8>, KeyMaterialId), Error> {
    let (material_id, private) = current_private(key)?;
    let max = private.max_plaintext_len(algorithm).unwrap_or(0);
    if plaintext.len() > max {
        return Err(Error::Validation(format!(
            "The plaintext is {} bytes; {} keys encrypt at most {max} bytes with {algorithm}.",
            plaintext.len(),
            key.record.key_spec
        )));
    }
    let ciphertext = private.encrypt(algorithm, plaintext)?;
    Ok((ciphertext, material_id))
}

/// RSA-OAEP decryption with an asymmetric key's private key.
pub(crate) fn rsa_decrypt(
    key: &LiveKey,
    algorithm: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, KeyMaterialId), Error> {
    let (material_id, private) = current_private(key)?;
    let plaintext = private.decrypt(algorithm, ciphertext).map_err(|_| {
        Error::InvalidCiphertext(format!(
            "The ciphertext is not valid for {} with {algorithm}: it was changed, made with another key or \
             another algorithm.",
            key.arn_str()
        ))
    })?;
    Ok((plaintext, material_id))
}

impl Kms {
    /// What Sign and Verify share: resolve, authorize with the signing condition keys, then the state,
    /// usage, algorithm and message checks.
    async fn signing_key<'m>(
        &self,
        caller: &Caller,
        key_id: &str,
        algorithm: SigningAlgorithm,
        message_type: Option<MessageType>,
        message: &'m [u8],
        action: &str,
    ) -> Result<(Arc<LiveKey>, Message<'m>), Error> {
        let operation = action.trim_start_matches("kms:");
        let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
        let message_type = message_type.unwrap_or(MessageType::Raw);
        let facts = RequestFacts {
            signing_algorithm: Some(algorithm.as_str()),
            message_type: Some(message_type.as_str()),
            request_alias: request_alias(key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        check_usage(&key, KeyUsage::SignVerify, operation)?;
        let message = signable(&key, algorithm, message_type, message)?;
        Ok((key, message))
    }

    /// Sign: a signature over a message or its digest, with an asymmetric SIGN_VERIFY key.
    pub async fn sign(&self, caller: &Caller, req: SignRequest) -> Result<SignResponse, Error> {
        let (key, message) = self
            .signing_key(
                caller,
                &req.key_id,
                req.algorithm,
                req.message_type,
                &req.message,
                "kms:Sign",
            )
            .await?;
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let signature = private_key(&key)?.sign(req.algorithm, message)?;
        Ok(SignResponse {
            key_arn: key.arn(),
            signature,
            algorithm: req.algorithm,
        })
    }

    /// Verify: whether a signature is valid; an invalid one is `KMSInvalidSignatureException`.
    pub async fn verify(&self, caller: &Caller, req: VerifyRequest) -> Result<SignResponse, Error> {
        let (key, message) = self
            .signing_key(
                caller,
                &req.key_id,
                req.algorithm,
                req.message_type,
                &req.message,
                "kms:Verify",
            )
            .await?;
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        if !private_key(&key)?.verify(req.algorithm, message, &req.signature)? {
            return Err(Error::InvalidSignature(format!(
                "The signature is not valid for this message under {} with {}.",
                key.arn_str(),
                req.algorithm
            )));
        }
        Ok(SignResponse {
            key_arn: key.arn(),
            signature: Vec::new(),
            algorithm: req.algorithm,
        })
    }

    /// GetPublicKey: the public half of an asymmetric key, with what it may be used for.
    pub async fn get_public_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<PublicKeyInfo, Error> {
        let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
        let facts = RequestFacts {
            request_alias: request_alias(key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:GetPublicKey", &key, facts)?;
        state::check(&key.record, OpClass::Crypto)?;
        let spec = key.record.key_spec;
        if !spec.is_asymmetric() {
            return Err(Error::UnsupportedOperation(format!(
                "{} is a {spec} key, which has no public key: GetPublicKey works only on asymmetric keys.",
                key.arn_str()
            )));
        }
        let usage = key.record.key_usage;
        Ok(PublicKeyInfo {
            key_arn: key.arn(),
            public_key: private_key(&key)?.public_key_der().to_vec(),
            key_spec: spec,
            key_usage: usage,
            encryption_algorithms: spec.encryption_algorithms(usage),
            signing_algorithms: spec.signing_algorithms(usage),
            key_agreement_algorithms: spec.key_agreement_algorithms(usage),
            encapsulation_algorithms: spec.encapsulation_algorithms(usage),
        })
    }

    /// GenerateMac (when `req.mac` is `None`) and VerifyMac (when it is given).
    pub async fn mac(&self, caller: &Caller, req: MacRequest) -> Result<MacResponse, Error> {
        let key = self.resolve(caller, &req.key_id, Forms::AnyForm).await?;
        let (action, operation) = match req.mac {
            Some(_) => ("kms:VerifyMac", "VerifyMac"),
            None => ("kms:GenerateMac", "GenerateMac"),
        };
        let facts = RequestFacts {
            mac_algorithm: Some(req.algorithm.as_str()),
            request_alias: request_alias(&req.key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        check_usage(&key, KeyUsage::GenerateVerifyMac, operation)?;
        let spec = key.record.key_spec;
        if !spec.mac_algorithms().contains(&req.algorithm) {
            return Err(Error::InvalidKeyUsage(format!(
                "Algorithm {} is incompatible with key spec {spec}: {} computes {}.",
                req.algorithm,
                key.arn_str(),
                spec.mac_algorithms()
                    .first()
                    .map_or("no MAC", |a| a.as_str())
            )));
        }
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let hmac = match key.current() {
            Some((_, Material::Hmac(hmac))) => hmac,
            Some(_) => {
                return Err(Error::internal(std::io::Error::other(
                    "an HMAC key holds material of another kind",
                )));
            }
            None => {
                return Err(Error::InvalidState(format!(
                    "{} is pending import.",
                    key.arn_str()
                )));
            }
        };
        let mac = match &req.mac {
            None => hmac.sign(&req.message),
            Some(tag) => {
                if !hmac.verify(&req.message, tag) {
                    return Err(Error::InvalidMac(format!(
                        "The MAC is not valid for this message under {} with {}.",
                        key.arn_str(),
                        req.algorithm
                    )));
                }
                Vec::new()
            }
        };
        Ok(MacResponse {
            key_arn: key.arn(),
            mac,
            algorithm: req.algorithm,
        })
    }

    /// DeriveSharedSecret: ECDH between the key's private key and a peer's public key.
    pub async fn derive_shared_secret(
        &self,
        caller: &Caller,
        req: DeriveSharedSecretRequest,
    ) -> Result<SharedSecret, Error> {
        let key = self.resolve(caller, &req.key_id, Forms::AnyForm).await?;
        let facts = RequestFacts {
            key_agreement_algorithm: Some(req.algorithm.as_str()),
            request_alias: request_alias(&req.key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:DeriveSharedSecret", &key, facts)?;
        check_usage(&key, KeyUsage::KeyAgreement, "DeriveSharedSecret")?;
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let secret = private_key(&key)?.derive_shared_secret(&req.public_key)?;
        Ok(SharedSecret {
            key_arn: key.arn(),
            secret,
            algorithm: req.algorithm,
            key_origin: key.record.origin,
        })
    }

    /// Encapsulate (when `ciphertext` is `None`): a fresh shared secret and its encapsulation under the
    /// key's ML-KEM public key. Decapsulate (when it is given): the secret back from an encapsulation.
    pub async fn encapsulation(
        &self,
        caller: &Caller,
        key_id: &str,
        algorithm: EncapsulationAlgorithm,
        ciphertext: Option<&[u8]>,
        dry_run: bool,
    ) -> Result<Encapsulated, Error> {
        let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
        let (action, operation) = match ciphertext {
            Some(_) => ("kms:Decapsulate", "Decapsulate"),
            None => ("kms:Encapsulate", "Encapsulate"),
        };
        let facts = RequestFacts {
            request_alias: request_alias(key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        check_usage(&key, KeyUsage::EncapsulateDecapsulate, operation)?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let private = private_key(&key)?;
        let (secret, ciphertext) = match ciphertext {
            None => {
                let (ciphertext, secret) = private.encapsulate()?;
                (secret, ciphertext)
            }
            Some(ciphertext) => {
                let secret = private.decapsulate(ciphertext).map_err(|_| {
                    Error::InvalidCiphertext(format!(
                        "The encapsulated secret is {} bytes, which is not the ciphertext length of {} keys.",
                        ciphertext.len(),
                        key.record.key_spec
                    ))
                })?;
                (secret, Vec::new())
            }
        };
        Ok(Encapsulated {
            key_arn: key.arn(),
            secret,
            ciphertext,
            algorithm,
        })
    }

    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair whose private key is
    /// encrypted under a symmetric KMS key.
    pub async fn generate_data_key_pair(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
    ) -> Result<DataKeyPair, Error> {
        let key = self.resolve(caller, &req.key_id, Forms::AnyForm).await?;
        let action = if req.without_plaintext {
            "kms:GenerateDataKeyPairWithoutPlaintext"
        } else {
            "kms:GenerateDataKeyPair"
        };
        let facts = RequestFacts {
            encryption_context: Some(&req.context),
            encryption_algorithm: Some(EncryptionAlgorithm::SymmetricDefault.as_str()),
            data_key_pair_spec: Some(req.spec.as_str()),
            request_alias: request_alias(&req.key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        let operation = action.trim_start_matches("kms:");
        check_usage(&key, KeyUsage::EncryptDecrypt, operation)?;
        if key.record.key_spec != KeySpec::SymmetricDefault {
            return Err(Error::InvalidKeyUsage(format!(
                "{} is a {} key: {operation} needs a symmetric encryption key to encrypt the private key.",
                key.arn_str(),
                key.record.key_spec
            )));
        }
        if key.record.origin == strongroom_types::Origin::AwsCloudhsm {
            return Err(Error::UnsupportedOperation(format!(
                "{} is in a custom key store, which does not support {operation}.",
                key.arn_str()
            )));
        }
        let pair_spec = req.spec.key_spec();
        if !pair_spec.is_supported() {
            return Err(Error::UnsupportedOperation(format!(
                "KeyPairSpec {} is not supported: Strongroom has no SM2 implementation.",
                req.spec
            )));
        }
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let pair = generate_key_pair(pair_spec).await?;
        let (private_key_ciphertext, material_id) =
            self.seal_any(&key, &req.context, pair.pkcs8()).await?;
        let private_key_plaintext =
            (!req.without_plaintext).then(|| Zeroizing::new(pair.pkcs8().to_vec()));
        Ok(DataKeyPair {
            private_key_ciphertext,
            private_key_plaintext,
            public_key: pair.public_key_der().to_vec(),
            key_arn: key.arn(),
            spec: req.spec,
            material_id,
        })
    }
}
