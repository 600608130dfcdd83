//! Cryptographic operations with symmetric keys: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
//! GenerateDataKeyWithoutPlaintext and GenerateRandom.
//!
//! Plaintexts and data keys travel in `Zeroizing` buffers, wiped when the response is written.

use std::sync::Arc;

use strongroom_types::{
    DataKeySpec, EncryptionAlgorithm, EncryptionContext, KeyMaterialId, KeyUsage,
};
use zeroize::Zeroizing;

use crate::asymmetric;
use crate::authz::RequestFacts;
use crate::ciphertext;
use crate::keyring::{Forms, LiveKey, not_found};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// Encrypt's parameters.
#[derive(Debug)]
pub struct EncryptRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// 1 to 4096 bytes.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Bound to the ciphertext; Decrypt must present the same.
    pub context: EncryptionContext,
    /// Must be SYMMETRIC_DEFAULT for symmetric keys.
    pub algorithm: Option<EncryptionAlgorithm>,
    /// Check everything, encrypt nothing.
    pub dry_run: bool,
}

/// Encrypt's result.
#[derive(Debug)]
pub struct EncryptResponse {
    /// The ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// The key ARN.
    pub key_arn: String,
    /// The algorithm used.
    pub algorithm: EncryptionAlgorithm,
}

/// Decrypt's parameters.
#[derive(Debug, Default)]
pub struct DecryptRequest {
    /// The ciphertext blob; optional only for a dry run that ignores the ciphertext.
    pub ciphertext: Option<Vec<u8>>,
    /// Must equal the context given at encryption.
    pub context: EncryptionContext,
    /// When given, the ciphertext must have been made under this key.
    pub key_id: Option<String>,
    /// Must be SYMMETRIC_DEFAULT for symmetric keys.
    pub algorithm: Option<EncryptionAlgorithm>,
    /// Check everything, decrypt nothing.
    pub dry_run: bool,
    /// With `dry_run`, skip checking the ciphertext (DryRunModifiers IGNORE_CIPHERTEXT).
    pub ignore_ciphertext: bool,
}

/// Decrypt's result.
#[derive(Debug)]
pub struct DecryptResponse {
    /// The key ARN.
    pub key_arn: String,
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The algorithm used.
    pub algorithm: EncryptionAlgorithm,
    /// The material version that decrypted it.
    pub material_id: KeyMaterialId,
}

/// ReEncrypt's parameters.
#[derive(Debug)]
pub struct ReEncryptRequest {
    /// The ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// The context it was encrypted with.
    pub source_context: EncryptionContext,
    /// When given, the ciphertext must have been made under this key.
    pub source_key_id: Option<String>,
    /// The key to re-encrypt under.
    pub destination_key_id: String,
    /// The context to bind to the new ciphertext.
    pub destination_context: EncryptionContext,
    /// Must be SYMMETRIC_DEFAULT for symmetric keys.
    pub source_algorithm: Option<EncryptionAlgorithm>,
    /// Must be SYMMETRIC_DEFAULT for symmetric keys.
    pub destination_algorithm: Option<EncryptionAlgorithm>,
    /// Check everything, re-encrypt nothing.
    pub dry_run: bool,
}

/// ReEncrypt's result.
#[derive(Debug)]
pub struct ReEncryptResponse {
    /// The new ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// The source key ARN.
    pub source_key_arn: String,
    /// The destination key ARN.
    pub key_arn: String,
    /// The source algorithm.
    pub source_algorithm: EncryptionAlgorithm,
    /// The destination algorithm.
    pub destination_algorithm: EncryptionAlgorithm,
    /// The material version that decrypted.
    pub source_material_id: KeyMaterialId,
    /// The material version that encrypted.
    pub destination_material_id: KeyMaterialId,
}

/// GenerateDataKey's and GenerateDataKeyWithoutPlaintext's parameters.
#[derive(Debug)]
pub struct GenerateDataKeyRequest {
    /// The key, in any of the four reference forms.
    pub key_id: String,
    /// Bound to the ciphertext.
    pub context: EncryptionContext,
    /// 1 to 1024 bytes; exactly one of this and `key_spec`.
    pub number_of_bytes: Option<i64>,
    /// AES_128 or AES_256; exactly one of this and `number_of_bytes`.
    pub key_spec: Option<DataKeySpec>,
    /// Check everything, generate nothing.
    pub dry_run: bool,
    /// Whether this is GenerateDataKeyWithoutPlaintext, which policies authorize as its own action.
    pub without_plaintext: bool,
}

/// A generated data key.
#[derive(Debug)]
pub struct DataKey {
    /// The data key encrypted under the KMS key.
    pub ciphertext: Vec<u8>,
    /// The data key in plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key ARN.
    pub key_arn: String,
    /// The material version that encrypted it.
    pub material_id: KeyMaterialId,
}

/// What [`Kms::open`] recovered from a ciphertext.
struct Opened {
    key: Arc<LiveKey>,
    plaintext: Zeroizing<Vec<u8>>,
    material_id: KeyMaterialId,
    algorithm: EncryptionAlgorithm,
}

fn check_algorithm(
    key: &LiveKey,
    algorithm: Option<EncryptionAlgorithm>,
) -> Result<EncryptionAlgorithm, Error> {
    match algorithm {
        None | Some(EncryptionAlgorithm::SymmetricDefault) => {
            Ok(EncryptionAlgorithm::SymmetricDefault)
        }
        Some(other) => Err(Error::InvalidKeyUsage(format!(
            "{} is a symmetric encryption key: it supports only SYMMETRIC_DEFAULT, not {other}.",
            key.arn()
        ))),
    }
}

fn check_usable(key: &LiveKey) -> Result<(), Error> {
    state::check(&key.record, OpClass::Crypto)?;
    if key.record.key_usage != KeyUsage::EncryptDecrypt {
        return Err(Error::InvalidKeyUsage(format!(
            "{} key usage is {} which is not valid for this operation.",
            key.arn(),
            key.record.key_usage
        )));
    }
    Ok(())
}

fn invalid_ciphertext() -> Error {
    Error::InvalidCiphertext(
        "The ciphertext is not valid: it was changed, truncated, not made by this server, or the encryption \
         context does not match the one used to encrypt."
            .to_owned(),
    )
}

/// Seals `plaintext` under the key's current material.
fn seal(
    key: &LiveKey,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<(Vec<u8>, KeyMaterialId), Error> {
    let Some((material_id, material)) = key.current() else {
        return Err(Error::InvalidState(format!(
            "{} has no key material.",
            key.arn()
        )));
    };
    let Some(material) = material.symmetric() else {
        return Err(Error::internal(std::io::Error::other(
            "a symmetric key holds material of another kind",
        )));
    };
    let mut blob = ciphertext::header(
        &key.record.namespace.account,
        &key.record.key_id,
        material_id,
    );
    let header_len = blob.len();
    blob.extend_from_slice(&context.canonical_bytes());
    let (nonce, sealed) = material.seal(&blob, plaintext)?;
    blob.truncate(header_len);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok((blob, *material_id))
}

impl Kms {
    /// Seals under the key's current material, or in its custom key store's HSMs (format version 2).
    pub(crate) async fn seal_any(
        &self,
        key: &LiveKey,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, KeyMaterialId), Error> {
        if key.record.origin != strongroom_types::Origin::AwsCloudhsm {
            return seal(key, context, plaintext);
        }
        let mut blob = ciphertext::header_v2(&key.record.namespace.account, &key.record.key_id);
        let mut aad = blob.clone();
        aad.extend_from_slice(&context.canonical_bytes());
        let (iv, sealed) = self
            .hsm_encrypt(&key.record, aad, Zeroizing::new(plaintext.to_vec()))
            .await?;
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&sealed);
        Ok((blob, crate::custom_key_stores::BACKING_MATERIAL_ID))
    }

    /// Encrypt: up to 4096 bytes under a symmetric key.
    pub async fn encrypt(
        &self,
        caller: &Caller,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, Error> {
        let key = self.resolve(caller, &req.key_id, Forms::AnyForm).await?;
        let facts = RequestFacts {
            encryption_context: Some(&req.context),
            encryption_algorithm: Some(
                req.algorithm
                    .unwrap_or(EncryptionAlgorithm::SymmetricDefault)
                    .as_str(),
            ),
            request_alias: request_alias(&req.key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:Encrypt", &key, facts)?;
        check_usable(&key)?;
        if key.record.key_spec.is_asymmetric() {
            let algorithm = asymmetric::rsa_algorithm(&key, req.algorithm)?;
            asymmetric::no_context(&key, &req.context)?;
            if req.dry_run {
                return Err(Error::DryRunOperation);
            }
            let (ciphertext, _) = asymmetric::rsa_encrypt(&key, algorithm, &req.plaintext)?;
            return Ok(EncryptResponse {
                ciphertext,
                key_arn: key.arn(),
                algorithm,
            });
        }
        let algorithm = check_algorithm(&key, req.algorithm)?;
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let (ciphertext, _) = self.seal_any(&key, &req.context, &req.plaintext).await?;
        Ok(EncryptResponse {
            ciphertext,
            key_arn: key.arn(),
            algorithm,
        })
    }

    /// Decrypt: the key comes from the ciphertext; a given KeyId must match it.
    pub async fn decrypt(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, Error> {
        if req.dry_run && req.ignore_ciphertext {
            let Some(key_id) = &req.key_id else {
                return Err(Error::Validation(
                    "KeyId is required when DryRunModifiers includes IGNORE_CIPHERTEXT.".to_owned(),
                ));
            };
            let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
            let facts = RequestFacts {
                encryption_context: Some(&req.context),
                request_alias: request_alias(key_id),
                ..RequestFacts::default()
            };
            self.authorize(caller, "kms:Decrypt", &key, facts)?;
            check_usable(&key)?;
            if key.record.key_spec.is_asymmetric() {
                asymmetric::rsa_algorithm(&key, req.algorithm)?;
                asymmetric::no_context(&key, &req.context)?;
            } else {
                check_algorithm(&key, req.algorithm)?;
            }
            return Err(Error::DryRunOperation);
        }
        let Some(blob) = &req.ciphertext else {
            return Err(Error::Validation(
                "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: \
                 Member must not be null"
                    .to_owned(),
            ));
        };
        let opened = self
            .open(
                caller,
                "kms:Decrypt",
                blob,
                &req.context,
                req.key_id.as_deref(),
                req.algorithm,
                None,
            )
            .await?;
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        Ok(DecryptResponse {
            key_arn: opened.key.arn(),
            plaintext: opened.plaintext,
            algorithm: opened.algorithm,
            material_id: opened.material_id,
        })
    }

    /// ReEncrypt: decrypts under the source key and encrypts under the destination key, inside the service.
    pub async fn re_encrypt(
        &self,
        caller: &Caller,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, Error> {
        // The destination is found first, so both authorizations know kms:ReEncryptOnSameKey.
        let destination = self
            .resolve(caller, &req.destination_key_id, Forms::AnyForm)
            .await?;
        let Opened {
            key: source,
            plaintext,
            material_id: source_material_id,
            algorithm: source_algorithm,
        } = self
            .open(
                caller,
                "kms:ReEncryptFrom",
                &req.ciphertext,
                &req.source_context,
                req.source_key_id.as_deref(),
                req.source_algorithm,
                Some(destination.arn_str()),
            )
            .await?;
        let facts = RequestFacts {
            reencrypt_on_same_key: Some(source.arn_str() == destination.arn_str()),
            encryption_context: Some(&req.destination_context),
            encryption_algorithm: Some(
                req.destination_algorithm
                    .unwrap_or(EncryptionAlgorithm::SymmetricDefault)
                    .as_str(),
            ),
            request_alias: request_alias(&req.destination_key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:ReEncryptTo", &destination, facts)?;
        check_usable(&destination)?;
        let asymmetric_destination = destination.record.key_spec.is_asymmetric();
        let destination_algorithm = if asymmetric_destination {
            asymmetric::no_context(&destination, &req.destination_context)?;
            asymmetric::rsa_algorithm(&destination, req.destination_algorithm)?
        } else {
            check_algorithm(&destination, req.destination_algorithm)?
        };
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let (ciphertext, destination_material_id) = if asymmetric_destination {
            asymmetric::rsa_encrypt(&destination, destination_algorithm, &plaintext)?
        } else {
            self.seal_any(&destination, &req.destination_context, &plaintext)
                .await?
        };
        Ok(ReEncryptResponse {
            ciphertext,
            source_key_arn: source.arn(),
            key_arn: destination.arn(),
            source_algorithm,
            destination_algorithm,
            source_material_id,
            destination_material_id,
        })
    }

    /// GenerateDataKey: a random data key, in plaintext and encrypted.
    pub async fn generate_data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<DataKey, Error> {
        let len = match (req.number_of_bytes, req.key_spec) {
            (Some(_), Some(_)) => {
                return Err(Error::Validation(
                    "Specify either KeySpec or NumberOfBytes, not both.".to_owned(),
                ));
            }
            (None, None) => {
                return Err(Error::Validation(
                    "Please specify either number of bytes or key spec.".to_owned(),
                ));
            }
            (Some(n @ 1..=1024), None) => n as usize,
            (Some(n), None) => {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: \
                     Member must have value between 1 and 1024"
                )));
            }
            (None, Some(spec)) => spec.byte_len(),
        };
        let key = self.resolve(caller, &req.key_id, Forms::AnyForm).await?;
        let action = if req.without_plaintext {
            "kms:GenerateDataKeyWithoutPlaintext"
        } else {
            "kms:GenerateDataKey"
        };
        let facts = RequestFacts {
            encryption_context: Some(&req.context),
            encryption_algorithm: Some(EncryptionAlgorithm::SymmetricDefault.as_str()),
            request_alias: request_alias(&req.key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        check_usable(&key)?;
        if key.record.key_spec != strongroom_types::KeySpec::SymmetricDefault {
            return Err(Error::InvalidKeyUsage(format!(
                "{} is a {} key: {} needs a symmetric encryption key.",
                key.arn_str(),
                key.record.key_spec,
                action.trim_start_matches("kms:")
            )));
        }
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let plaintext = Zeroizing::new(strongroom_keystore::random_bytes(len));
        let (ciphertext, material_id) = self.seal_any(&key, &req.context, &plaintext).await?;
        Ok(DataKey {
            ciphertext,
            plaintext,
            key_arn: key.arn(),
            material_id,
        })
    }

    /// GenerateRandom: 1 to 1024 random bytes.
    pub async fn generate_random(
        &self,
        caller: &Caller,
        number_of_bytes: Option<i64>,
        custom_key_store_id: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if let (Some(id), Some(n @ 1..=1024)) = (custom_key_store_id, number_of_bytes) {
            return self.cluster_random(caller, id, n as usize).await;
        }
        match number_of_bytes {
            Some(n @ 1..=1024) => {
                // Without a custom key store: identity policies on `*` decide.
                self.authorize_account(caller, "kms:GenerateRandom")?;
                Ok(Zeroizing::new(strongroom_keystore::random_bytes(
                    n as usize,
                )))
            }
            Some(n) => Err(Error::Validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: \
                 Member must have value between 1 and 1024"
            ))),
            None => Err(Error::Validation(
                "NumberOfBytes is required: ask for 1 to 1024 bytes.".to_owned(),
            )),
        }
    }

    /// Authenticates and decrypts a blob, checking the key named in the request if any. For ReEncrypt,
    /// `destination_arn` is the destination key's ARN (for `kms:ReEncryptOnSameKey`).
    #[expect(
        clippy::too_many_arguments,
        reason = "Decrypt and ReEncrypt's source half share it; a struct would only rename the parameters"
    )]
    async fn open(
        &self,
        caller: &Caller,
        action: &str,
        blob: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        algorithm: Option<EncryptionAlgorithm>,
        destination_arn: Option<&str>,
    ) -> Result<Opened, Error> {
        // An asymmetric key's ciphertext is the bare RSA-OAEP output, found only through the KeyId.
        if let Some(key_id) = key_id {
            let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
            if key.record.key_spec.is_asymmetric() {
                let facts = RequestFacts {
                    encryption_context: Some(context),
                    encryption_algorithm: algorithm.map(EncryptionAlgorithm::as_str),
                    request_alias: request_alias(key_id),
                    reencrypt_on_same_key: destination_arn.map(|arn| arn == key.arn_str()),
                    ..RequestFacts::default()
                };
                self.authorize(caller, action, &key, facts)?;
                check_usable(&key)?;
                let algorithm = asymmetric::rsa_algorithm(&key, algorithm)?;
                asymmetric::no_context(&key, context)?;
                let (plaintext, material_id) = asymmetric::rsa_decrypt(&key, algorithm, blob)?;
                return Ok(Opened {
                    key,
                    plaintext,
                    material_id,
                    algorithm,
                });
            }
        }
        let hsm_parsed = ciphertext::parse_v2(blob);
        let parsed = match &hsm_parsed {
            Some(_) => None,
            None => Some(ciphertext::parse(blob).ok_or_else(invalid_ciphertext)?),
        };
        let (blob_account, blob_key_id) = match (&parsed, &hsm_parsed) {
            (Some(p), _) => (p.account.clone(), p.key_id.clone()),
            (None, Some(p)) => (p.account.clone(), p.key_id.clone()),
            (None, None) => return Err(invalid_ciphertext()),
        };
        let key = match key_id {
            Some(key_id) => {
                let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
                if key.record.key_id != blob_key_id || key.record.namespace.account != blob_account
                {
                    return Err(Error::IncorrectKey(format!(
                        "The ciphertext was not encrypted under {}: the KeyId in the request does not identify \
                         the KMS key that encrypted it.",
                        key.arn()
                    )));
                }
                key
            }
            None => {
                let namespace = strongroom_types::Namespace {
                    account: blob_account.clone(),
                    region: caller.namespace.region.clone(),
                };
                // A key of another account is found here too; its key policy decides below.
                self.key(&namespace, &blob_key_id)
                    .await?
                    .ok_or_else(|| not_found(&namespace, &blob_key_id))?
            }
        };
        let facts = RequestFacts {
            encryption_context: Some(context),
            encryption_algorithm: Some(
                algorithm
                    .unwrap_or(EncryptionAlgorithm::SymmetricDefault)
                    .as_str(),
            ),
            request_alias: key_id.and_then(request_alias),
            reencrypt_on_same_key: destination_arn.map(|arn| arn == key.arn_str()),
            ..RequestFacts::default()
        };
        self.authorize(caller, action, &key, facts)?;
        check_usable(&key)?;
        check_algorithm(&key, algorithm)?;
        if let Some(hsm) = hsm_parsed {
            if key.record.origin != strongroom_types::Origin::AwsCloudhsm {
                return Err(invalid_ciphertext());
            }
            let mut aad = Vec::with_capacity(hsm.header.len() + 64);
            aad.extend_from_slice(hsm.header);
            aad.extend_from_slice(&context.canonical_bytes());
            let plaintext = self
                .hsm_decrypt(&key.record, aad, hsm.iv.to_vec(), hsm.sealed.to_vec())
                .await?
                .ok_or_else(invalid_ciphertext)?;
            return Ok(Opened {
                key,
                plaintext,
                material_id: crate::custom_key_stores::BACKING_MATERIAL_ID,
                algorithm: EncryptionAlgorithm::SymmetricDefault,
            });
        }
        let Some(parsed) = parsed else {
            return Err(invalid_ciphertext());
        };
        let material = key
            .material(&parsed.material_id)
            .and_then(strongroom_keystore::Material::symmetric)
            .ok_or_else(invalid_ciphertext)?;
        let mut aad = Vec::with_capacity(parsed.header.len() + 64);
        aad.extend_from_slice(parsed.header);
        aad.extend_from_slice(&context.canonical_bytes());
        let plaintext = material
            .open(&aad, &parsed.nonce, parsed.sealed)
            .map_err(|_| invalid_ciphertext())?;
        Ok(Opened {
            key,
            plaintext,
            material_id: parsed.material_id,
            algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }
}

/// The alias a request named its key by, for `kms:RequestAlias`.
pub(crate) fn request_alias(key_id: &str) -> Option<&str> {
    if key_id.starts_with("alias/") {
        return Some(key_id);
    }
    key_id
        .split_once(":alias/")
        .map(|(_, name)| &key_id[key_id.len() - name.len() - "alias/".len()..])
}
