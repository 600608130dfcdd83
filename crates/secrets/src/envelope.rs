//! Envelope encryption of secret values through the in-process KMS.
//!
//! Each version gets its own data key from GenerateDataKey, bound to the secret's ARN and the version id in
//! the encryption context (as AWS Secrets Manager binds them); the value is sealed under the data key with
//! AES-256-GCM (`strongroom_keystore::SymmetricKey`, which derives a key per message), with the ARN, the
//! version and the kind of value as additional data. The plaintext data key is wiped as soon as it is used.

use std::collections::BTreeMap;

use strongroom_keystore::{DERIVATION_NONCE_LEN, SymmetricKey};
use strongroom_service::Caller;
use strongroom_service::crypto::{DecryptRequest, GenerateDataKeyRequest};
use strongroom_service::on_behalf::{CallParameter, OnBehalfCall};
use strongroom_storage::secrets::{SecretKind, SecretValueRecord};
use strongroom_types::{DataKeySpec, EncryptionContext};
use zeroize::Zeroizing;

use crate::{Error, SecretValue, SecretsManager};

/// How the audit trail names Secrets Manager when it calls KMS for a caller (`invokedBy`).
const SECRETS_MANAGER_PRINCIPAL: &str = "secretsmanager.amazonaws.com";

/// The caller as the KMS sees it when Secrets Manager acts for it: `kms:ViaService` names Secrets
/// Manager in the caller's Region, which also lets the AWS managed key be created on first use.
fn through_secrets_manager(caller: &Caller) -> Caller {
    let mut acting = caller.clone();
    acting.via_service = Some(format!(
        "secretsmanager.{}.amazonaws.com",
        caller.namespace.region
    ));
    acting
}

fn encryption_context(arn: &str, version_id: &str) -> EncryptionContext {
    let mut pairs = BTreeMap::new();
    pairs.insert("SecretARN".to_owned(), arn.to_owned());
    pairs.insert("SecretVersionId".to_owned(), version_id.to_owned());
    EncryptionContext::new(pairs)
}

fn additional_data(arn: &str, version_id: &str, kind: SecretKind) -> Vec<u8> {
    let mut out = b"strongroom/v1/secret-value\0".to_vec();
    out.extend_from_slice(arn.as_bytes());
    out.push(0);
    out.extend_from_slice(version_id.as_bytes());
    out.push(0);
    out.extend_from_slice(kind.as_str().as_bytes());
    out
}

/// What a KMS refusal means to a Secrets Manager caller: access denials stay access denials, anything
/// else about the key is an encryption or decryption failure that names the cause.
fn kms_failure(error: strongroom_service::Error, encrypting: bool) -> Error {
    use strongroom_service::Error as Kms;
    match error {
        Kms::AccessDenied(message) => {
            tracing::debug!("KMS refused Secrets Manager: {message}");
            Error::AccessDenied(format!("Access to KMS is not allowed: {message}"))
        }
        Kms::Internal(source) => Error::Internal(source),
        other => {
            let code = other.code();
            match encrypting {
                true => Error::EncryptionFailure(format!(
                    "Secrets Manager can't encrypt the protected secret text using the provided KMS key \
                     ({code}: {other})."
                )),
                false => Error::DecryptionFailure(format!(
                    "Secrets Manager can't decrypt the protected secret text using the provided KMS key \
                     ({code}: {other})."
                )),
            }
        }
    }
}

impl SecretsManager {
    /// Encrypts `value` as version `version_id` of the secret `arn` under the KMS key `key_ref`.
    pub(crate) async fn seal(
        &self,
        caller: &Caller,
        key_ref: &str,
        arn: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<SecretValueRecord, Error> {
        let request = GenerateDataKeyRequest {
            key_id: key_ref.to_owned(),
            context: encryption_context(arn, version_id),
            number_of_bytes: None,
            key_spec: Some(DataKeySpec::Aes256),
            dry_run: false,
            without_plaintext: false,
        };
        let parameters = vec![
            ("keyId", CallParameter::Text(key_ref.to_owned())),
            (
                "encryptionContext",
                CallParameter::Context(request.context.clone()),
            ),
            ("keySpec", CallParameter::Text("AES_256".to_owned())),
        ];
        let outcome = self
            .kms
            .generate_data_key(&through_secrets_manager(caller), request)
            .await;
        let resources = match &outcome {
            Ok(data_key) => vec![data_key.key_arn.clone()],
            Err(_) => Vec::new(),
        };
        self.kms
            .record_on_behalf(OnBehalfCall::kms(
                caller,
                SECRETS_MANAGER_PRINCIPAL,
                "GenerateDataKey",
                parameters,
                resources,
                &outcome,
            ))
            .await;
        let data_key = outcome.map_err(|e| kms_failure(e, true))?;
        let sealer = SymmetricKey::from_bytes(&data_key.plaintext).map_err(Error::internal)?;
        let kind = value.kind();
        let (nonce, ciphertext) = sealer
            .seal(&additional_data(arn, version_id, kind), value.bytes())
            .map_err(Error::internal)?;
        let mut sealed = Vec::with_capacity(nonce.len() + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(SecretValueRecord {
            version_id: version_id.to_owned(),
            kind,
            key_arn: data_key.key_arn,
            encrypted_data_key: data_key.ciphertext,
            sealed,
        })
    }

    /// Decrypts a stored version of the secret `arn`.
    pub(crate) async fn open(
        &self,
        caller: &Caller,
        arn: &str,
        record: &SecretValueRecord,
    ) -> Result<SecretValue, Error> {
        let request = DecryptRequest {
            ciphertext: Some(record.encrypted_data_key.clone()),
            context: encryption_context(arn, &record.version_id),
            key_id: Some(record.key_arn.clone()),
            ..DecryptRequest::default()
        };
        let parameters = vec![
            (
                "encryptionContext",
                CallParameter::Context(request.context.clone()),
            ),
            (
                "encryptionAlgorithm",
                CallParameter::Text("SYMMETRIC_DEFAULT".to_owned()),
            ),
        ];
        let outcome = self
            .kms
            .decrypt(&through_secrets_manager(caller), request)
            .await;
        self.kms
            .record_on_behalf(OnBehalfCall::kms(
                caller,
                SECRETS_MANAGER_PRINCIPAL,
                "Decrypt",
                parameters,
                vec![record.key_arn.clone()],
                &outcome,
            ))
            .await;
        let data_key = outcome.map_err(|e| kms_failure(e, false))?;
        let opener = SymmetricKey::from_bytes(&data_key.plaintext).map_err(Error::internal)?;
        let Some((nonce, ciphertext)) = record.sealed.split_first_chunk::<DERIVATION_NONCE_LEN>()
        else {
            return Err(Error::DecryptionFailure(
                "Secrets Manager can't decrypt the protected secret text: the stored value is damaged."
                    .to_owned(),
            ));
        };
        let additional = additional_data(arn, &record.version_id, record.kind);
        let mut plaintext = match opener.open(&additional, nonce, ciphertext) {
            Ok(plaintext) => plaintext,
            Err(_) => {
                return Err(Error::DecryptionFailure(
                    "Secrets Manager can't decrypt the protected secret text: the stored value does not \
                     authenticate."
                        .to_owned(),
                ));
            }
        };
        match record.kind {
            SecretKind::Binary => Ok(SecretValue::Binary(plaintext)),
            SecretKind::String => {
                let bytes = std::mem::take(&mut *plaintext);
                match String::from_utf8(bytes) {
                    Ok(text) => Ok(SecretValue::String(Zeroizing::new(text))),
                    Err(error) => {
                        drop(Zeroizing::new(error.into_bytes()));
                        Err(Error::DecryptionFailure(
                            "Secrets Manager can't decrypt the protected secret text: it is not UTF-8."
                                .to_owned(),
                        ))
                    }
                }
            }
        }
    }
}
