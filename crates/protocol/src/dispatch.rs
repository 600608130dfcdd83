//! The dispatch table: one `match` from `TrentService.<Operation>` to the service, the API's table of
//! contents. Each arm reads the request's fields, calls the service, and renders the response.

use serde_json::{Map, Value, json};
use strongroom_service::asymmetric::{
    DeriveSharedSecretRequest, GenerateDataKeyPairRequest, MacRequest, SignRequest, VerifyRequest,
};
use strongroom_service::crypto::{
    DecryptRequest, EncryptRequest, GenerateDataKeyRequest, ReEncryptRequest,
};
use strongroom_service::grants::{CreateGrantRequest, RetireTarget};
use strongroom_service::import::{ImportKeyMaterialRequest, MaterialOutcome};
use strongroom_service::keys::CreateKeyRequest;
use strongroom_service::multi_region::ReplicateKeyRequest;
use strongroom_service::rotation::IncludeKeyMaterial;
use strongroom_service::{Caller, Kms};

use crate::error::ProtocolError;
use crate::wire::{Fields, b64, key_metadata, paginate, spec_fields, timestamp, with_multi_region};

/// Runs one KMS operation. `operation` is a name the KMS model defines; the body has passed validation.
pub(crate) async fn dispatch(
    kms: &Kms,
    caller: &Caller,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, ProtocolError> {
    let f = Fields(body);
    if body.contains_key("GrantTokens") {
        strongroom_service::grants::check_grant_tokens(&f.strings("GrantTokens"))?;
    }
    let response = match operation {
        // Keys.
        "CreateKey" => {
            let req = CreateKeyRequest {
                policy: f.str("Policy").map(str::to_owned),
                description: f.str("Description").map(str::to_owned),
                key_usage: f.enumeration("KeyUsage")?,
                customer_master_key_spec: f.enumeration("CustomerMasterKeySpec")?,
                key_spec: f.enumeration("KeySpec")?,
                origin: f.enumeration("Origin")?,
                custom_key_store_id: f.str("CustomKeyStoreId").map(str::to_owned),
                bypass_policy_lockout_safety_check: f.bool("BypassPolicyLockoutSafetyCheck"),
                tags: f.tags("Tags"),
                multi_region: f.bool("MultiRegion"),
                xks_key_id: f.str("XksKeyId").map(str::to_owned),
            };
            let key = kms.create_key(caller, req).await?;
            let location = kms.key_store_location(&key).await?;
            json!({ "KeyMetadata": with_key_store(key_metadata(&key), location) })
        }
        "DescribeKey" => {
            let key = kms.describe_key(caller, f.required_str("KeyId")?).await?;
            let location = kms.key_store_location(&key).await?;
            let multi_region = kms.multi_region_view(&key).await?;
            let metadata = with_multi_region(key_metadata(&key), multi_region.as_ref());
            json!({ "KeyMetadata": with_key_store(metadata, location) })
        }
        "ListKeys" => {
            let page = kms
                .list_keys(caller, f.int("Limit"), f.str("Marker"))
                .await?;
            let keys: Vec<Value> = page
                .items
                .iter()
                .map(|k| json!({ "KeyId": k.key_id.as_str(), "KeyArn": k.key_arn }))
                .collect();
            paginate(json!({ "Keys": keys }), page.next_marker)
        }
        "EnableKey" => {
            kms.enable_key(caller, f.required_str("KeyId")?).await?;
            json!({})
        }
        "DisableKey" => {
            kms.disable_key(caller, f.required_str("KeyId")?).await?;
            json!({})
        }
        "UpdateKeyDescription" => {
            let description = f.required_str("Description")?.to_owned();
            kms.update_key_description(caller, f.required_str("KeyId")?, description)
                .await?;
            json!({})
        }
        "ScheduleKeyDeletion" => {
            let scheduled = kms
                .schedule_key_deletion(
                    caller,
                    f.required_str("KeyId")?,
                    f.int("PendingWindowInDays"),
                )
                .await?;
            let mut out = json!({
                "KeyId": scheduled.key_arn,
                "KeyState": scheduled.key_state.as_str(),
                "PendingWindowInDays": scheduled.pending_window_days,
            });
            // A multi-Region primary waiting for its replicas' deletion has no date yet.
            if let (Some(date), Value::Object(fields)) = (scheduled.deletion_date, &mut out) {
                fields.insert("DeletionDate".to_owned(), timestamp(date));
            }
            out
        }
        "CancelKeyDeletion" => {
            let key_arn = kms
                .cancel_key_deletion(caller, f.required_str("KeyId")?)
                .await?;
            json!({ "KeyId": key_arn })
        }

        // Multi-Region keys.
        "ReplicateKey" => {
            let req = ReplicateKeyRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                replica_region: f.required_str("ReplicaRegion")?.to_owned(),
                policy: f.str("Policy").map(str::to_owned),
                bypass_policy_lockout_safety_check: f.bool("BypassPolicyLockoutSafetyCheck"),
                description: f.str("Description").map(str::to_owned),
                tags: f.tags("Tags"),
            };
            let replica = kms.replicate_key(caller, req).await?;
            let key = &replica.record;
            let tags: Vec<Value> = key
                .tags
                .iter()
                .map(|tag| json!({ "TagKey": tag.key, "TagValue": tag.value }))
                .collect();
            json!({
                "ReplicaKeyMetadata": with_multi_region(key_metadata(key), Some(&replica.view)),
                "ReplicaPolicy": key.policy,
                "ReplicaTags": tags,
            })
        }
        "UpdatePrimaryRegion" => {
            kms.update_primary_region(
                caller,
                f.required_str("KeyId")?,
                f.required_str("PrimaryRegion")?,
            )
            .await?;
            json!({})
        }
        "GetKeyLastUsage" => {
            let usage = kms.key_last_usage(caller, f.required_str("KeyId")?).await?;
            let mut last = serde_json::Map::new();
            if let Some(used) = &usage.last {
                last.insert("Operation".to_owned(), json!(used.operation));
                last.insert("Timestamp".to_owned(), timestamp(used.used));
                if let Some(event_id) = &used.event_id {
                    last.insert("CloudTrailEventId".to_owned(), json!(event_id));
                }
                last.insert("KmsRequestId".to_owned(), json!(used.request_id));
            }
            json!({
                "KeyId": usage.key_id.as_str(),
                "KeyLastUsage": Value::Object(last),
                "TrackingStartDate": timestamp(usage.tracking_start),
                "KeyCreationDate": timestamp(usage.key_created),
            })
        }

        // Cryptography.
        "Encrypt" => {
            let req = EncryptRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                plaintext: f.secret_blob("Plaintext")?,
                context: f.context("EncryptionContext"),
                algorithm: f.enumeration("EncryptionAlgorithm")?,
                dry_run: f.bool("DryRun"),
            };
            let res = kms.encrypt(caller, req).await?;
            json!({
                "CiphertextBlob": b64(&res.ciphertext),
                "KeyId": res.key_arn,
                "EncryptionAlgorithm": res.algorithm.as_str(),
            })
        }
        "Decrypt" => {
            let req = DecryptRequest {
                ciphertext: f.blob("CiphertextBlob")?,
                context: f.context("EncryptionContext"),
                key_id: f.str("KeyId").map(str::to_owned),
                algorithm: f.enumeration("EncryptionAlgorithm")?,
                dry_run: f.bool("DryRun"),
                ignore_ciphertext: f
                    .strings("DryRunModifiers")
                    .iter()
                    .any(|m| m == "IGNORE_CIPHERTEXT"),
            };
            if f.0.contains_key("Recipient") {
                return Err(unsupported_recipient());
            }
            let res = kms.decrypt(caller, req).await?;
            json!({
                "KeyId": res.key_arn,
                "Plaintext": b64(&res.plaintext),
                "EncryptionAlgorithm": res.algorithm.as_str(),
                "KeyMaterialId": res.material_id.to_hex(),
            })
        }
        "ReEncrypt" => {
            let req = ReEncryptRequest {
                ciphertext: f.blob("CiphertextBlob")?.unwrap_or_default(),
                source_context: f.context("SourceEncryptionContext"),
                source_key_id: f.str("SourceKeyId").map(str::to_owned),
                destination_key_id: f.required_str("DestinationKeyId")?.to_owned(),
                destination_context: f.context("DestinationEncryptionContext"),
                source_algorithm: f.enumeration("SourceEncryptionAlgorithm")?,
                destination_algorithm: f.enumeration("DestinationEncryptionAlgorithm")?,
                dry_run: f.bool("DryRun"),
            };
            let res = kms.re_encrypt(caller, req).await?;
            json!({
                "CiphertextBlob": b64(&res.ciphertext),
                "SourceKeyId": res.source_key_arn,
                "KeyId": res.key_arn,
                "SourceEncryptionAlgorithm": res.source_algorithm.as_str(),
                "DestinationEncryptionAlgorithm": res.destination_algorithm.as_str(),
                "SourceKeyMaterialId": res.source_material_id.to_hex(),
                "DestinationKeyMaterialId": res.destination_material_id.to_hex(),
            })
        }
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
            if f.0.contains_key("Recipient") {
                return Err(unsupported_recipient());
            }
            let req = GenerateDataKeyRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                context: f.context("EncryptionContext"),
                number_of_bytes: f.int("NumberOfBytes"),
                key_spec: f.enumeration("KeySpec")?,
                dry_run: f.bool("DryRun"),
                without_plaintext: operation == "GenerateDataKeyWithoutPlaintext",
            };
            let key = kms.generate_data_key(caller, req).await?;
            let mut out = json!({
                "CiphertextBlob": b64(&key.ciphertext),
                "KeyId": key.key_arn,
                "KeyMaterialId": key.material_id.to_hex(),
            });
            if operation == "GenerateDataKey"
                && let Value::Object(fields) = &mut out
            {
                fields.insert("Plaintext".to_owned(), b64(&key.plaintext));
            }
            out
        }
        "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
            if f.0.contains_key("Recipient") {
                return Err(unsupported_recipient());
            }
            let req = GenerateDataKeyPairRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                context: f.context("EncryptionContext"),
                spec: f.required_enumeration("KeyPairSpec")?,
                without_plaintext: operation == "GenerateDataKeyPairWithoutPlaintext",
                dry_run: f.bool("DryRun"),
            };
            let pair = kms.generate_data_key_pair(caller, req).await?;
            let mut out = json!({
                "PrivateKeyCiphertextBlob": b64(&pair.private_key_ciphertext),
                "PublicKey": b64(&pair.public_key),
                "KeyId": pair.key_arn,
                "KeyPairSpec": pair.spec.as_str(),
                "KeyMaterialId": pair.material_id.to_hex(),
            });
            if let (Some(private), Value::Object(fields)) = (&pair.private_key_plaintext, &mut out)
            {
                fields.insert("PrivateKeyPlaintext".to_owned(), b64(private));
            }
            out
        }

        // Asymmetric and HMAC keys.
        "Sign" => {
            let req = SignRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                message: f.secret_blob("Message")?,
                message_type: f.enumeration("MessageType")?,
                algorithm: f.required_enumeration("SigningAlgorithm")?,
                dry_run: f.bool("DryRun"),
            };
            let res = kms.sign(caller, req).await?;
            json!({
                "KeyId": res.key_arn,
                "Signature": b64(&res.signature),
                "SigningAlgorithm": res.algorithm.as_str(),
            })
        }
        "Verify" => {
            let req = VerifyRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                message: f.secret_blob("Message")?,
                message_type: f.enumeration("MessageType")?,
                signature: f.blob("Signature")?.unwrap_or_default(),
                algorithm: f.required_enumeration("SigningAlgorithm")?,
                dry_run: f.bool("DryRun"),
            };
            let res = kms.verify(caller, req).await?;
            json!({
                "KeyId": res.key_arn,
                "SignatureValid": true,
                "SigningAlgorithm": res.algorithm.as_str(),
            })
        }
        "GetPublicKey" => {
            let info = kms.get_public_key(caller, f.required_str("KeyId")?).await?;
            let mut out = json!({
                "KeyId": info.key_arn,
                "PublicKey": b64(&info.public_key),
                "KeySpec": info.key_spec.as_str(),
                "KeyUsage": info.key_usage.as_str(),
            });
            if let Value::Object(fields) = &mut out {
                spec_fields(fields, info.key_spec, info.key_usage);
            }
            out
        }
        "GenerateMac" | "VerifyMac" => {
            let verify = operation == "VerifyMac";
            let req = MacRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                message: f.secret_blob("Message")?,
                algorithm: f.required_enumeration("MacAlgorithm")?,
                mac: if verify {
                    Some(f.blob("Mac")?.unwrap_or_default())
                } else {
                    None
                },
                dry_run: f.bool("DryRun"),
            };
            let res = kms.mac(caller, req).await?;
            if verify {
                json!({
                    "KeyId": res.key_arn,
                    "MacValid": true,
                    "MacAlgorithm": res.algorithm.as_str(),
                })
            } else {
                json!({
                    "KeyId": res.key_arn,
                    "Mac": b64(&res.mac),
                    "MacAlgorithm": res.algorithm.as_str(),
                })
            }
        }
        "Encapsulate" | "Decapsulate" => {
            let decapsulate = operation == "Decapsulate";
            let ciphertext = if decapsulate {
                Some(f.blob("SharedSecretCiphertextBlob")?.unwrap_or_default())
            } else {
                None
            };
            let res = kms
                .encapsulation(
                    caller,
                    f.required_str("KeyId")?,
                    f.required_enumeration("EncapsulationAlgorithm")?,
                    ciphertext.as_deref(),
                    f.bool("DryRun"),
                )
                .await?;
            let mut out = json!({
                "KeyId": res.key_arn,
                "SharedSecret": b64(&res.secret),
                "EncapsulationAlgorithm": res.algorithm.as_str(),
            });
            if let (false, Value::Object(fields)) = (decapsulate, &mut out) {
                fields.insert(
                    "SharedSecretCiphertextBlob".to_owned(),
                    b64(&res.ciphertext),
                );
            }
            out
        }
        "DeriveSharedSecret" => {
            if f.0.contains_key("Recipient") {
                return Err(unsupported_recipient());
            }
            let req = DeriveSharedSecretRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                algorithm: f.required_enumeration("KeyAgreementAlgorithm")?,
                public_key: f.blob("PublicKey")?.unwrap_or_default(),
                dry_run: f.bool("DryRun"),
            };
            let res = kms.derive_shared_secret(caller, req).await?;
            json!({
                "KeyId": res.key_arn,
                "SharedSecret": b64(&res.secret),
                "KeyAgreementAlgorithm": res.algorithm.as_str(),
                "KeyOrigin": res.key_origin.as_str(),
            })
        }
        "GenerateRandom" => {
            if f.0.contains_key("Recipient") {
                return Err(unsupported_recipient());
            }
            let bytes = kms
                .generate_random(caller, f.int("NumberOfBytes"), f.str("CustomKeyStoreId"))
                .await?;
            json!({ "Plaintext": b64(&bytes) })
        }

        // Aliases.
        "CreateAlias" => {
            kms.create_alias(
                caller,
                f.required_str("AliasName")?,
                f.required_str("TargetKeyId")?,
            )
            .await?;
            json!({})
        }
        "UpdateAlias" => {
            kms.update_alias(
                caller,
                f.required_str("AliasName")?,
                f.required_str("TargetKeyId")?,
            )
            .await?;
            json!({})
        }
        "DeleteAlias" => {
            kms.delete_alias(caller, f.required_str("AliasName")?)
                .await?;
            json!({})
        }
        "ListAliases" => {
            let page = kms
                .list_aliases(caller, f.str("KeyId"), f.int("Limit"), f.str("Marker"))
                .await?;
            let aliases: Vec<Value> = page
                .items
                .iter()
                .map(|alias| {
                    json!({
                        "AliasName": alias.name.as_str(),
                        "AliasArn": alias.namespace.alias_arn(&alias.name),
                        "TargetKeyId": alias.target.as_str(),
                        "CreationDate": timestamp(alias.created),
                        "LastUpdatedDate": timestamp(alias.updated),
                    })
                })
                .collect();
            paginate(json!({ "Aliases": aliases }), page.next_marker)
        }

        // Tags.
        "TagResource" => {
            kms.tag_resource(caller, f.required_str("KeyId")?, f.tags("Tags"))
                .await?;
            json!({})
        }
        "UntagResource" => {
            kms.untag_resource(caller, f.required_str("KeyId")?, f.strings("TagKeys"))
                .await?;
            json!({})
        }
        "ListResourceTags" => {
            let page = kms
                .list_resource_tags(
                    caller,
                    f.required_str("KeyId")?,
                    f.int("Limit"),
                    f.str("Marker"),
                )
                .await?;
            let tags: Vec<Value> = page
                .items
                .iter()
                .map(|tag| json!({ "TagKey": tag.key, "TagValue": tag.value }))
                .collect();
            paginate(json!({ "Tags": tags }), page.next_marker)
        }

        // Rotation.
        "EnableKeyRotation" => {
            kms.enable_key_rotation(
                caller,
                f.required_str("KeyId")?,
                f.int("RotationPeriodInDays"),
            )
            .await?;
            json!({})
        }
        "DisableKeyRotation" => {
            kms.disable_key_rotation(caller, f.required_str("KeyId")?)
                .await?;
            json!({})
        }
        "GetKeyRotationStatus" => {
            let status = kms
                .key_rotation_status(caller, f.required_str("KeyId")?)
                .await?;
            let mut out = json!({ "KeyRotationEnabled": status.enabled, "KeyId": status.key_arn });
            if let Value::Object(fields) = &mut out {
                if let Some(days) = status.period_days {
                    fields.insert("RotationPeriodInDays".to_owned(), json!(days));
                }
                if let Some(next) = status.next_rotation {
                    fields.insert("NextRotationDate".to_owned(), timestamp(next));
                }
            }
            out
        }
        "RotateKeyOnDemand" => {
            let key_id = kms
                .rotate_key_on_demand(caller, f.required_str("KeyId")?)
                .await?;
            json!({ "KeyId": key_id })
        }
        "ListKeyRotations" => {
            let include = match f.str("IncludeKeyMaterial") {
                Some("ALL_KEY_MATERIAL") => IncludeKeyMaterial::All,
                _ => IncludeKeyMaterial::RotationsOnly,
            };
            let page = kms
                .list_key_rotations(
                    caller,
                    f.required_str("KeyId")?,
                    include,
                    f.int("Limit"),
                    f.str("Marker"),
                )
                .await?;
            let rotations: Vec<Value> = page
                .items
                .iter()
                .map(|entry| {
                    let mut item = json!({
                        "KeyId": entry.key_id,
                        "KeyMaterialId": entry.material_id.to_hex(),
                        "KeyMaterialState": entry.state.as_str(),
                    });
                    if let Value::Object(fields) = &mut item {
                        if let Some(date) = entry.rotation_date {
                            fields.insert("RotationDate".to_owned(), timestamp(date));
                        }
                        if let Some(kind) = entry.rotation_type {
                            fields.insert("RotationType".to_owned(), json!(kind.as_str()));
                        }
                        if let Some(import) = &entry.import {
                            fields.insert("ImportState".to_owned(), json!(import.state.as_str()));
                            if let Some(description) = &import.description {
                                fields.insert(
                                    "KeyMaterialDescription".to_owned(),
                                    json!(description),
                                );
                            }
                            if let Some(model) = import.expiration_model {
                                fields.insert("ExpirationModel".to_owned(), json!(model.as_str()));
                            }
                            if let Some(valid_to) = import.valid_to {
                                fields.insert("ValidTo".to_owned(), timestamp(valid_to));
                            }
                        }
                    }
                    item
                })
                .collect();
            paginate(json!({ "Rotations": rotations }), page.next_marker)
        }

        // Imported key material.
        "GetParametersForImport" => {
            let parameters = kms
                .get_parameters_for_import(
                    caller,
                    f.required_str("KeyId")?,
                    f.required_enumeration("WrappingAlgorithm")?,
                    f.required_enumeration("WrappingKeySpec")?,
                )
                .await?;
            json!({
                "KeyId": parameters.key_arn,
                "ImportToken": b64(&parameters.import_token),
                "PublicKey": b64(&parameters.public_key),
                "ParametersValidTo": timestamp(parameters.parameters_valid_to),
            })
        }
        "ImportKeyMaterial" => {
            let req = ImportKeyMaterialRequest {
                import_token: f.secret_blob("ImportToken")?.to_vec(),
                encrypted_key_material: f.secret_blob("EncryptedKeyMaterial")?,
                valid_to: f.time("ValidTo"),
                expiration_model: f.enumeration("ExpirationModel")?,
                import_type: f.enumeration("ImportType")?,
                key_material_description: f.str("KeyMaterialDescription").map(str::to_owned),
                key_material_id: f.str("KeyMaterialId").map(str::to_owned),
            };
            let outcome = kms
                .import_key_material(caller, f.required_str("KeyId")?, req)
                .await?;
            material_outcome(outcome)
        }
        "DeleteImportedKeyMaterial" => {
            let outcome = kms
                .delete_imported_key_material(
                    caller,
                    f.required_str("KeyId")?,
                    f.str("KeyMaterialId"),
                )
                .await?;
            material_outcome(outcome)
        }

        // Key policies.
        "GetKeyPolicy" => {
            let (policy, name) = kms
                .key_policy(caller, f.required_str("KeyId")?, f.str("PolicyName"))
                .await?;
            json!({ "Policy": policy, "PolicyName": name })
        }
        "PutKeyPolicy" => {
            let policy = f.required_str("Policy")?.to_owned();
            kms.put_key_policy(
                caller,
                f.required_str("KeyId")?,
                f.str("PolicyName"),
                policy,
                f.bool("BypassPolicyLockoutSafetyCheck"),
            )
            .await?;
            json!({})
        }
        // Grants.
        "CreateGrant" => {
            let constraints = f.0.get("Constraints");
            let pairs = |name: &str| -> Option<std::collections::BTreeMap<String, String>> {
                let Value::Object(map) = constraints?.get(name)? else {
                    return None;
                };
                Some(
                    map.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect(),
                )
            };
            let req = CreateGrantRequest {
                key_id: f.required_str("KeyId")?.to_owned(),
                grantee_principal: f.required_str("GranteePrincipal")?.to_owned(),
                retiring_principal: f.str("RetiringPrincipal").map(str::to_owned),
                operations: f.strings("Operations"),
                context_equals: pairs("EncryptionContextEquals"),
                context_subset: pairs("EncryptionContextSubset"),
                name: f.str("Name").map(str::to_owned),
                dry_run: f.bool("DryRun"),
            };
            let created = kms.create_grant(caller, req).await?;
            json!({ "GrantToken": created.grant_token, "GrantId": created.grant_id })
        }
        "ListGrants" | "ListRetirableGrants" => {
            let page = match operation {
                "ListGrants" => {
                    kms.list_grants(
                        caller,
                        f.required_str("KeyId")?,
                        f.str("GrantId"),
                        f.str("GranteePrincipal"),
                        f.int("Limit"),
                        f.str("Marker"),
                    )
                    .await?
                }
                _ => {
                    kms.list_retirable_grants(
                        caller,
                        f.required_str("RetiringPrincipal")?,
                        f.int("Limit"),
                        f.str("Marker"),
                    )
                    .await?
                }
            };
            let grants: Vec<Value> = page.items.iter().map(grant_entry).collect();
            paginate(json!({ "Grants": grants }), page.next_marker)
        }
        "RevokeGrant" => {
            kms.revoke_grant(
                caller,
                f.required_str("KeyId")?,
                f.required_str("GrantId")?,
                f.bool("DryRun"),
            )
            .await?;
            json!({})
        }
        "RetireGrant" => {
            let target = match (f.str("GrantToken"), f.str("KeyId"), f.str("GrantId")) {
                (Some(token), _, _) => RetireTarget::Token(token.to_owned()),
                (None, Some(key_id), Some(grant_id)) => RetireTarget::Id {
                    key_id: key_id.to_owned(),
                    grant_id: grant_id.to_owned(),
                },
                _ => {
                    return Err(ProtocolError::Validation(
                        "RetireGrant needs a GrantToken, or both KeyId (the key ARN) and GrantId."
                            .to_owned(),
                    ));
                }
            };
            kms.retire_grant(caller, target, f.bool("DryRun")).await?;
            json!({})
        }
        "ListKeyPolicies" => {
            let page = kms
                .list_key_policies(
                    caller,
                    f.required_str("KeyId")?,
                    f.int("Limit"),
                    f.str("Marker"),
                )
                .await?;
            paginate(json!({ "PolicyNames": page.items }), page.next_marker)
        }

        // Custom key stores.
        "CreateCustomKeyStore" => {
            let req = strongroom_service::custom_key_stores::CreateCustomKeyStoreRequest {
                name: f.required_str("CustomKeyStoreName")?.to_owned(),
                cluster_id: f.str("CloudHsmClusterId").map(str::to_owned),
                trust_anchor_pem: f.str("TrustAnchorCertificate").map(str::to_owned),
                key_store_password: f
                    .str("KeyStorePassword")
                    .map(|p| zeroize::Zeroizing::new(p.to_owned())),
                store_type: f.str("CustomKeyStoreType").map(str::to_owned),
            };
            let id = kms.create_custom_key_store(caller, req).await?;
            json!({ "CustomKeyStoreId": id })
        }
        "DescribeCustomKeyStores" => {
            let page = kms
                .describe_custom_key_stores(
                    caller,
                    f.str("CustomKeyStoreId"),
                    f.str("CustomKeyStoreName"),
                    f.int("Limit"),
                    f.str("Marker"),
                )
                .await?;
            let stores: Vec<Value> = page
                .items
                .iter()
                .map(|s| {
                    let mut item = json!({
                        "CustomKeyStoreId": s.id,
                        "CustomKeyStoreName": s.name,
                        "CustomKeyStoreType": "AWS_CLOUDHSM",
                        "CloudHsmClusterId": s.cluster_id,
                        "TrustAnchorCertificate": s.trust_anchor_pem,
                        "ConnectionState": s.connection_state,
                        "CreationDate": timestamp(s.created),
                    });
                    if let (Some(code), Value::Object(fields)) = (&s.connection_error, &mut item) {
                        fields.insert("ConnectionErrorCode".to_owned(), json!(code));
                    }
                    item
                })
                .collect();
            paginate(json!({ "CustomKeyStores": stores }), page.next_marker)
        }
        "ConnectCustomKeyStore" => {
            kms.connect_custom_key_store(caller, f.required_str("CustomKeyStoreId")?)
                .await?;
            json!({})
        }
        "DisconnectCustomKeyStore" => {
            kms.disconnect_custom_key_store(caller, f.required_str("CustomKeyStoreId")?)
                .await?;
            json!({})
        }
        "UpdateCustomKeyStore" => {
            let req = strongroom_service::custom_key_stores::UpdateCustomKeyStoreRequest {
                id: f.required_str("CustomKeyStoreId")?.to_owned(),
                new_name: f.str("NewCustomKeyStoreName").map(str::to_owned),
                key_store_password: f
                    .str("KeyStorePassword")
                    .map(|p| zeroize::Zeroizing::new(p.to_owned())),
                cluster_id: f.str("CloudHsmClusterId").map(str::to_owned),
            };
            kms.update_custom_key_store(caller, req).await?;
            json!({})
        }
        "DeleteCustomKeyStore" => {
            kms.delete_custom_key_store(caller, f.required_str("CustomKeyStoreId")?)
                .await?;
            json!({})
        }

        other => {
            return Err(ProtocolError::Unsupported(format!(
                "{other} is a KMS operation that this Strongroom server does not support yet."
            )));
        }
    };
    Ok(response)
}

/// A grant as ListGrants and ListRetirableGrants show it.
fn grant_entry(grant: &strongroom_types::GrantRecord) -> Value {
    let mut entry = json!({
        "KeyId": grant.namespace.key_arn(&grant.key_id),
        "GrantId": grant.grant_id,
        "CreationDate": timestamp(grant.created),
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": format!("arn:aws:iam::{}:root", grant.issuing_account),
        "Operations": grant.operations,
    });
    if let Value::Object(fields) = &mut entry {
        if let Some(name) = &grant.name {
            fields.insert("Name".to_owned(), json!(name));
        }
        if let Some(retiring) = &grant.retiring_principal {
            fields.insert("RetiringPrincipal".to_owned(), json!(retiring));
        }
        let mut constraints = serde_json::Map::new();
        if let Some(pairs) = &grant.context_equals {
            constraints.insert("EncryptionContextEquals".to_owned(), json!(pairs));
        }
        if let Some(pairs) = &grant.context_subset {
            constraints.insert("EncryptionContextSubset".to_owned(), json!(pairs));
        }
        if !constraints.is_empty() {
            fields.insert("Constraints".to_owned(), Value::Object(constraints));
        }
    }
    entry
}

/// Adds `CustomKeyStoreId` and `CloudHsmClusterId` to the metadata of a key in a custom key store.
fn with_key_store(
    mut metadata: Value,
    location: Option<strongroom_service::custom_key_stores::KeyStoreLocation>,
) -> Value {
    if let (Some(location), Value::Object(fields)) = (location, &mut metadata) {
        fields.insert(
            "CustomKeyStoreId".to_owned(),
            json!(location.custom_key_store_id),
        );
        fields.insert("CloudHsmClusterId".to_owned(), json!(location.cluster_id));
    }
    metadata
}

fn unsupported_recipient() -> ProtocolError {
    ProtocolError::Unsupported(
        "Recipient (attested enclave requests) is not supported by this Strongroom server."
            .to_owned(),
    )
}

/// The response of ImportKeyMaterial and DeleteImportedKeyMaterial.
fn material_outcome(outcome: MaterialOutcome) -> Value {
    let mut out = json!({ "KeyId": outcome.key_arn });
    if let (Some(id), Value::Object(fields)) = (outcome.key_material_id, &mut out) {
        fields.insert("KeyMaterialId".to_owned(), json!(id.to_hex()));
    }
    out
}

/// Reports a successful cryptographic operation to GetKeyLastUsage's tracking: each key ARN the response
/// names (`KeyId`, and ReEncrypt's `SourceKeyId`). `event` is the audit record's event id and the account
/// it was delivered to; a key of another account gets no event id, since its owner's copy has its own.
pub(crate) fn record_key_use(
    kms: &Kms,
    operation: &str,
    response: &Value,
    request_id: &str,
    event: Option<&(String, String)>,
) {
    if !strongroom_service::last_usage::is_tracked(operation) {
        return;
    }
    for field in ["KeyId", "SourceKeyId"] {
        let Some(arn) = response.get(field).and_then(Value::as_str) else {
            continue;
        };
        let key_account = arn.split(':').nth(4);
        let event_id = event
            .filter(|(_, recipient)| key_account == Some(recipient.as_str()))
            .map(|(event_id, _)| event_id.as_str());
        kms.record_key_use(arn, operation, request_id, event_id);
    }
}
