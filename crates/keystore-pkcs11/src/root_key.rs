//! A root key kept in PKCS#11 tokens: the default key store's key material is then wrapped and
//! unwrapped inside the tokens, so even software-held keys are protected by hardware at rest.
//!
//! # One key on several tokens
//!
//! A root key on a single token is a single point of failure: lose the token and every key of the
//! default key store is lost. [`HsmRootKey::open_replicated`] keeps the same AES-256 key on every
//! token it is given and serves from any of them:
//!
//! - The key is made inside one token (sensitive, usable only to encrypt and decrypt) and reaches
//!   the others only wrapped, by the mechanism that copies backing keys between the HSMs of a
//!   [`Cluster`]: the two tokens agree on the cluster wrapping key by ECDH inside the tokens (as their
//!   Security Officers), the source wraps the root key under it (`CKM_AES_KEY_WRAP`) and the target
//!   unwraps it. The root key is `CKA_EXTRACTABLE` only together with `CKA_WRAP_WITH_TRUSTED`, so it
//!   can leave a token only wrapped under a key the Security Officer marked trusted, never in
//!   plaintext. It cannot be `CKA_EXTRACTABLE=false`: PKCS#11 wraps no such key, so a token added
//!   after one was lost could never receive a copy, and the single point of failure would be back.
//! - At start every usable token that holds the key proves it is the same key: one token seals a
//!   fixed block ([`KeyCheck`]) and every other must open it, inside the token (SoftHSM computes no
//!   `CKA_CHECK_VALUE` for unwrapped keys). Tokens holding different keys are refused; a check
//!   recorded earlier (beside the data the key wraps) pins the key for good, so a token holding some
//!   other key under the same label is refused too, even alone.
//! - A usable token without the key receives a copy; a token that cannot be used (missing, failing,
//!   its PIN unreadable or refused) is left out with a warning, and the others serve.
//! - Wrapping and unwrapping go to an active token and move to the next one when a token fails
//!   ([`Cluster`]'s failover); a failed token is probed back when no other token answers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use strongroom_keystore::{KeyStoreError, RootKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::cluster::Cluster;
use crate::config::{ClusterOptions, HsmConfig, Pin, SecretSource};
use crate::hsm::{Hsm, IV_LEN, Sealed};
use crate::module::ModuleSet;

/// Marks blobs wrapped in an HSM, so they are never mistaken for ones a file root key wrapped.
const HSM_WRAP_VERSION: u8 = 2;
/// Additional data of the key check, so that it can never be taken for wrapped key material.
const CHECK_AAD: &[u8] = b"strongroom/root-key-check/v1";
/// The block the key check seals; a fixed, public value.
const CHECK_BLOCK: [u8; 16] = *b"strongroom-check";
/// The AES-GCM tag length, the least a sealed check can add to the block.
const TAG_LEN: usize = 16;
/// The availability zone root-key tokens are given in their `HsmConfig`; it means nothing here.
const ROOT_KEY_ZONE: &str = "root-key";

/// The default key store's root key as an AES key inside a (logged-in) HSM cluster.
pub struct HsmRootKey {
    cluster: Arc<Cluster>,
    label: String,
}

/// One PKCS#11 token that holds, or is to hold, a copy of the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKeyToken {
    /// Path of the PKCS#11 library.
    pub module: PathBuf,
    /// The token's label; it also names the token in logs and errors.
    pub token_label: String,
    /// Where the PIN of the token's user (`CKU_USER`) is read from.
    pub user_pin: SecretSource,
    /// Where the token's Security Officer PIN is read from, if anywhere: it is needed only to copy
    /// the root key to or from this token (to agree on the wrapping key that carries it).
    pub so_pin: Option<SecretSource>,
}

/// Proof of which key a root key is: a fixed block sealed under it inside a token.
///
/// It is not secret (AES-GCM stays secure with a known plaintext), so it is kept beside the data the
/// root key wraps, and any token can show it holds the same key by opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    sealed: Sealed,
}

/// What [`HsmRootKey::open_replicated`] may assume about the key.
#[derive(Debug, Clone, Copy)]
pub enum RootKeyExpectation<'a> {
    /// Nothing is wrapped by the key yet: it is made if no usable token holds it.
    New,
    /// Data is wrapped by the key but its check was never recorded: some token must hold it.
    Existing,
    /// Data is wrapped by the key this check was made with: every token used must hold that key.
    Matching(&'a KeyCheck),
}

/// What opening a replicated root key found and did, for the operator.
#[derive(Debug)]
pub struct RootKeyReport {
    /// The tokens serving the key, in the order they were given.
    pub serving: Vec<String>,
    /// The token the key was made in, when it was made now.
    pub generated_on: Option<String>,
    /// Copies made now.
    pub copies: Vec<RootKeyCopy>,
    /// Tokens that are not used, and why.
    pub left_out: Vec<LeftOutToken>,
    /// The key's check, to record beside the data it wraps.
    pub check: KeyCheck,
}

/// A copy of the root key made from one token to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKeyCopy {
    /// The token that held the key.
    pub from: String,
    /// The token that received it.
    pub to: String,
}

/// A listed token that does not serve the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOutToken {
    /// The token's label.
    pub token: String,
    /// Why, with no secret in it.
    pub reason: String,
}

/// Why a replicated root key could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    /// No token was given.
    #[error("no token is listed for the root key")]
    NoTokens,
    /// A token label appears twice.
    #[error("token {token} is listed twice for the root key")]
    DuplicateToken {
        /// The label.
        token: String,
    },
    /// Two tokens hold different keys under the root key's label.
    #[error(
        "tokens {first} and {second} hold different keys labelled '{label}': they are not copies of one \
         root key, and Strongroom will not guess which one wraps its data; list only tokens holding this \
         root key (a token meant to receive a copy must not hold a key with this label)"
    )]
    Mismatch {
        /// The root key's label.
        label: String,
        /// The token whose key was taken as the reference.
        first: String,
        /// The token holding another key.
        second: String,
    },
    /// A token holds a key under the root key's label that is not the key the data was wrapped with.
    #[error(
        "token {token} holds a key labelled '{label}' that is not the root key this data was wrapped with \
         (it does not open the recorded key check); remove the token from the list, or clear that key \
         from it so that it receives a copy of the right one"
    )]
    NotTheRecordedKey {
        /// The root key's label.
        label: String,
        /// The token with the other key.
        token: String,
    },
    /// No usable token holds the key, and data is already wrapped by it.
    #[error(
        "no usable token holds the root key '{label}', which wraps the keys already stored, so Strongroom \
         will not make a new one; tokens not used: {left_out}"
    )]
    Missing {
        /// The root key's label.
        label: String,
        /// The tokens left out and why, or "none".
        left_out: String,
    },
    /// No listed token can be used at all.
    #[error("no token of the root key can be used: {left_out}")]
    NoUsableToken {
        /// The tokens left out and why.
        left_out: String,
    },
    /// Copying the key needs Security Officer PINs that were not given.
    #[error(
        "copying the root key between tokens {source_token} and {target} needs the Security Officer PIN \
         of both (so_pin_file or so_pin_env), to agree on the key that carries it; none is given for {missing}"
    )]
    SoPinNeeded {
        /// The token holding the key.
        source_token: String,
        /// The token to receive it.
        target: String,
        /// The tokens without a Security Officer PIN.
        missing: String,
    },
    /// A token failed in a way that stops the whole start, for example while making the key.
    #[error(transparent)]
    Hsm(#[from] Error),
}

/// A token opened and logged in, while the start-up checks run.
struct Candidate<'a> {
    token: &'a RootKeyToken,
    config: HsmConfig,
    hsm: Hsm,
    pin: Arc<Pin>,
}

impl KeyCheck {
    /// The check as bytes (nonce, then sealed block), to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IV_LEN + self.sealed.ciphertext.len());
        out.extend_from_slice(&self.sealed.iv);
        out.extend_from_slice(&self.sealed.ciphertext);
        out
    }

    /// Reads a check stored with [`KeyCheck::to_bytes`]; `None` if it cannot be one.
    pub fn from_bytes(bytes: &[u8]) -> Option<KeyCheck> {
        if bytes.len() < IV_LEN + CHECK_BLOCK.len() + TAG_LEN {
            return None;
        }
        let (iv, ciphertext) = bytes.split_at(IV_LEN);
        Some(KeyCheck {
            sealed: Sealed {
                iv: iv.try_into().ok()?,
                ciphertext: ciphertext.to_vec(),
            },
        })
    }
}

impl HsmRootKey {
    /// Uses the cluster's AES key labelled `label`, generating it (on every HSM) the first time.
    pub fn open(cluster: Arc<Cluster>, label: &str) -> Result<HsmRootKey, Error> {
        let exists = cluster
            .key_exists(label)
            .iter()
            .any(|answer| matches!(answer.result, Ok(true)));
        if !exists {
            cluster.generate_key(label)?;
        }
        Ok(HsmRootKey {
            cluster,
            label: label.to_owned(),
        })
    }

    /// Opens the root key labelled `label` on every usable token of `tokens`, logged in as each
    /// token's user: checks that the tokens holding a key hold the same one (and the one `expected`
    /// names), copies it to usable tokens without it, makes it if none holds it and `expected`
    /// allows, and leaves out, with a warning, tokens that cannot be used.
    ///
    /// Blocks; run it off the async runtime. The module documentation says how copies are made.
    pub fn open_replicated(
        tokens: &[RootKeyToken],
        label: &str,
        expected: RootKeyExpectation<'_>,
        modules: &ModuleSet,
        options: ClusterOptions,
    ) -> Result<(HsmRootKey, RootKeyReport), RootKeyError> {
        if tokens.is_empty() {
            return Err(RootKeyError::NoTokens);
        }
        for (index, token) in tokens.iter().enumerate() {
            if tokens[..index]
                .iter()
                .any(|earlier| earlier.token_label == token.token_label)
            {
                return Err(RootKeyError::DuplicateToken {
                    token: token.token_label.clone(),
                });
            }
        }
        let mut left_out = Vec::new();
        let mut usable = Vec::new();
        for token in tokens {
            match Candidate::open(token, modules, &options) {
                Ok(candidate) => usable.push(candidate),
                Err(err) => leave_out(&mut left_out, &token.token_label, &err),
            }
        }

        let mut holders = Vec::new();
        let mut lacking = Vec::new();
        for candidate in usable {
            match candidate.hsm.key_exists(label) {
                Ok(true) => holders.push(candidate),
                Ok(false) => lacking.push(candidate),
                Err(err) => leave_out(&mut left_out, candidate.id(), &err),
            }
        }

        let mut generated_on = None;
        if holders.is_empty() {
            if !matches!(expected, RootKeyExpectation::New) {
                return Err(RootKeyError::Missing {
                    label: label.to_owned(),
                    left_out: describe_left_out(&left_out),
                });
            }
            while holders.is_empty() && !lacking.is_empty() {
                let candidate = lacking.remove(0);
                match candidate.hsm.generate_backing_key(label) {
                    Ok(_) => {
                        tracing::info!(token = %candidate.id(), key = %label, "made the root key in its token");
                        generated_on = Some(candidate.id().to_owned());
                        holders.push(candidate);
                    }
                    Err(err) if err.is_worth_retrying_elsewhere() => {
                        leave_out(&mut left_out, candidate.id(), &err);
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
        if holders.is_empty() {
            return Err(RootKeyError::NoUsableToken {
                left_out: describe_left_out(&left_out),
            });
        }

        // Every holder must hold the same key: the recorded one, or else the first holder's.
        let (check, reference) = match expected {
            RootKeyExpectation::Matching(check) => (check.clone(), None),
            RootKeyExpectation::New | RootKeyExpectation::Existing => {
                let mut sealed = None;
                while sealed.is_none() && !holders.is_empty() {
                    let first = &holders[0];
                    match first.hsm.encrypt(label, CHECK_AAD, &CHECK_BLOCK) {
                        Ok(done) => sealed = Some(done),
                        Err(err) => {
                            let first = holders.remove(0);
                            leave_out(&mut left_out, first.id(), &err);
                        }
                    }
                }
                let Some(sealed) = sealed else {
                    return Err(RootKeyError::Missing {
                        label: label.to_owned(),
                        left_out: describe_left_out(&left_out),
                    });
                };
                (KeyCheck { sealed }, Some(holders[0].id().to_owned()))
            }
        };
        let mut verified = Vec::new();
        for candidate in holders {
            match candidate.opens(label, &check) {
                Ok(true) => verified.push(candidate),
                Ok(false) => {
                    return Err(match &reference {
                        Some(first) => RootKeyError::Mismatch {
                            label: label.to_owned(),
                            first: first.clone(),
                            second: candidate.id().to_owned(),
                        },
                        None => RootKeyError::NotTheRecordedKey {
                            label: label.to_owned(),
                            token: candidate.id().to_owned(),
                        },
                    });
                }
                Err(err) => leave_out(&mut left_out, candidate.id(), &err),
            }
        }
        if verified.is_empty() {
            return Err(RootKeyError::Missing {
                label: label.to_owned(),
                left_out: describe_left_out(&left_out),
            });
        }

        let mut copies = Vec::new();
        for target in lacking {
            match copy_to(&verified, &target, label, &check) {
                Ok(from) => {
                    tracing::info!(
                        from = %from,
                        to = %target.id(),
                        key = %label,
                        "copied the root key to a token that lacked it, wrapped under a key the two tokens agreed by ECDH"
                    );
                    copies.push(RootKeyCopy {
                        from,
                        to: target.id().to_owned(),
                    });
                    verified.push(target);
                }
                Err(err) => leave_out(&mut left_out, target.id(), &err),
            }
        }

        // Serve from the tokens holding the key, in the order they were listed.
        verified.sort_by_key(|candidate| {
            tokens
                .iter()
                .position(|token| token.token_label == candidate.token.token_label)
        });
        let configs: Vec<HsmConfig> = verified.iter().map(|it| it.config.clone()).collect();
        let pins: HashMap<String, Arc<Pin>> = verified
            .iter()
            .map(|it| (it.id().to_owned(), it.pin.clone()))
            .collect();
        // The checks' sessions close (logging the tokens out) before the serving cluster logs in.
        drop(verified);
        let cluster = Cluster::open(&configs, modules, options)?;
        let mut serving = Vec::new();
        for hsm in cluster.hsms() {
            let Some(pin) = pins.get(hsm.id()) else {
                continue;
            };
            match hsm.login_crypto_user(pin.clone()) {
                Ok(()) => serving.push(hsm.id().to_owned()),
                Err(err) => leave_out(&mut left_out, hsm.id(), &err),
            }
        }
        if serving.is_empty() {
            return Err(RootKeyError::NoUsableToken {
                left_out: describe_left_out(&left_out),
            });
        }
        let report = RootKeyReport {
            serving,
            generated_on,
            copies,
            left_out,
            check,
        };
        let root_key = HsmRootKey {
            cluster: Arc::new(cluster),
            label: label.to_owned(),
        };
        Ok((root_key, report))
    }
}

impl<'a> Candidate<'a> {
    /// Opens `token` and logs its user in.
    fn open(
        token: &'a RootKeyToken,
        modules: &ModuleSet,
        options: &ClusterOptions,
    ) -> Result<Candidate<'a>, Error> {
        let config = HsmConfig {
            id: token.token_label.clone(),
            module: token.module.clone(),
            token_label: token.token_label.clone(),
            availability_zone: ROOT_KEY_ZONE.to_owned(),
            // Used only when `token.so_pin` is given (checked before any copy); the user's PIN source
            // merely fills the field otherwise.
            so_pin: token
                .so_pin
                .clone()
                .unwrap_or_else(|| token.user_pin.clone()),
        };
        let pin = Arc::new(token.user_pin.load()?);
        let hsm = Hsm::open(&config, modules, options)?;
        hsm.login_crypto_user(pin.clone())?;
        Ok(Candidate {
            token,
            config,
            hsm,
            pin,
        })
    }

    fn id(&self) -> &str {
        self.hsm.id()
    }

    /// Whether this token's key labelled `label` opens `check`, that is whether it is that key.
    fn opens(&self, label: &str, check: &KeyCheck) -> Result<bool, Error> {
        match self.hsm.decrypt(label, CHECK_AAD, &check.sealed) {
            Ok(block) => Ok(block.as_slice() == CHECK_BLOCK),
            Err(Error::InvalidCiphertext) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// Copies the root key to `target` from the first of `sources` that can give it; returns that
/// source's id.
fn copy_to(
    sources: &[Candidate<'_>],
    target: &Candidate<'_>,
    label: &str,
    check: &KeyCheck,
) -> Result<String, RootKeyError> {
    let mut failure = None;
    for source in sources {
        match copy_between(source, target, label) {
            Ok(()) => {
                // The copy must be the key itself, not merely something that unwrapped.
                return match target.opens(label, check) {
                    Ok(true) => Ok(source.id().to_owned()),
                    Ok(false) => Err(RootKeyError::Mismatch {
                        label: label.to_owned(),
                        first: source.id().to_owned(),
                        second: target.id().to_owned(),
                    }),
                    Err(err) => Err(err.into()),
                };
            }
            Err(err) => failure = Some(err),
        }
    }
    Err(failure.unwrap_or(RootKeyError::NoUsableToken {
        left_out: "none".to_owned(),
    }))
}

/// Gives `source` and `target` the same cluster wrapping key if they lack one (as their Security
/// Officers, by ECDH inside the tokens), then wraps the root key on `source` and unwraps it on `target`.
fn copy_between(
    source: &Candidate<'_>,
    target: &Candidate<'_>,
    label: &str,
) -> Result<(), RootKeyError> {
    let source_id = source.hsm.wrapping_key_id()?;
    let target_id = target.hsm.wrapping_key_id()?;
    let shared = matches!((&source_id, &target_id), (Some(a), Some(b)) if a == b);
    if !shared {
        let missing: Vec<&str> = [source, target]
            .into_iter()
            .filter(|it| it.token.so_pin.is_none())
            .map(|it| it.id())
            .collect();
        if !missing.is_empty() {
            return Err(RootKeyError::SoPinNeeded {
                source_token: source.id().to_owned(),
                target: target.id().to_owned(),
                missing: missing.join(", "),
            });
        }
        match (source_id, target_id) {
            (Some(_), Some(_)) => {
                return Err(Error::WrappingKeyMismatch {
                    first: source.id().to_owned(),
                    second: target.id().to_owned(),
                }
                .into());
            }
            (Some(_), None) => source.hsm.send_wrapping_key(&target.hsm)?,
            (None, Some(_)) => target.hsm.send_wrapping_key(&source.hsm)?,
            (None, None) => {
                source.hsm.generate_wrapping_key()?;
                source.hsm.send_wrapping_key(&target.hsm)?;
            }
        }
    }
    let wrapped = Zeroizing::new(source.hsm.export_backing_key(label)?);
    target.hsm.import_backing_key(label, &wrapped)?;
    Ok(())
}

/// Records that `token` is not used, and says so in the log.
fn leave_out(left_out: &mut Vec<LeftOutToken>, token: &str, err: &dyn std::error::Error) {
    let reason = describe(err);
    tracing::warn!(%token, %reason, "a token of the root key is not used");
    left_out.push(LeftOutToken {
        token: token.to_owned(),
        reason,
    });
}

/// An error with its causes, on one line.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn describe_left_out(left_out: &[LeftOutToken]) -> String {
    if left_out.is_empty() {
        return "none".to_owned();
    }
    left_out
        .iter()
        .map(|it| format!("{} ({})", it.token, it.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl RootKey for HsmRootKey {
    fn wrap(&self, context: &[u8], material: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let sealed = self
            .cluster
            .encrypt(&self.label, context, material)
            .map_err(|_| KeyStoreError::Crypto)?;
        let mut out = Vec::with_capacity(1 + IV_LEN + sealed.ciphertext.len());
        out.push(HSM_WRAP_VERSION);
        out.extend_from_slice(&sealed.iv);
        out.extend_from_slice(&sealed.ciphertext);
        Ok(out)
    }

    fn unwrap(&self, context: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let Some((&HSM_WRAP_VERSION, rest)) = wrapped.split_first() else {
            return Err(KeyStoreError::Unauthentic);
        };
        if rest.len() < IV_LEN {
            return Err(KeyStoreError::Unauthentic);
        }
        let (iv, ciphertext) = rest.split_at(IV_LEN);
        let sealed = Sealed {
            iv: iv.try_into().map_err(|_| KeyStoreError::Unauthentic)?,
            ciphertext: ciphertext.to_vec(),
        };
        match self.cluster.decrypt(&self.label, context, &sealed) {
            Ok(plaintext) => Ok(plaintext),
            Err(Error::InvalidCiphertext) => Err(KeyStoreError::Unauthentic),
            Err(_) => Err(KeyStoreError::Crypto),
        }
    }
}
