//! HSM clusters over PKCS#11, shaped like an AWS CloudHSM cluster behind a KMS custom key store.
//!
//! A [`Cluster`] is a set of [`Hsm`]s (PKCS#11 tokens, possibly in different modules and
//! availability zones) that behave as one logical HSM: keys created on one device are copied to
//! every other one, operations are spread over the active devices, and a device that stops
//! answering is taken out of rotation until a probe finds it healthy again.
//! This is the only crate in the workspace that touches PKCS#11, and it does so only through
//! `cryptoki`; there is no `unsafe` here.
//!
//! # Roles
//!
//! CloudHSM has an admin (crypto officer, CO) who manages users, and crypto users (CU) who own
//! and use keys; KMS uses one crypto user, `kmsuser`. PKCS#11 has exactly two roles per token,
//! so the mapping is:
//!
//! | CloudHSM | PKCS#11 | here |
//! | --- | --- | --- |
//! | admin / crypto officer | Security Officer, `CKU_SO`, SO PIN | [`HsmConfig::so_pin`], read from a file or the environment when needed |
//! | crypto user `kmsuser` | normal user, `CKU_USER`, user PIN | [`Cluster::create_crypto_user`], [`Cluster::login_crypto_user`] |
//!
//! A token has one normal user, so each token hosts exactly one crypto user, and the cluster
//! keeps its password identical on every HSM: creation (`C_InitPIN`) and rotation (`C_SetPIN`)
//! run on every device, and a rotation that fails part-way is rolled back.
//! A caller that records the new password durably before rotating (KMS does, for crash safety) uses
//! [`Cluster::move_crypto_user_password`] instead, which rolls nothing back, and
//! [`Cluster::login_crypto_user_with_any`] to log in on HSMs left holding either password.
//! Login failures keep their meaning so that the KMS layer can report a `ConnectionErrorCode`:
//! `CKR_PIN_INCORRECT` is [`Error::InvalidCredentials`], `CKR_PIN_LOCKED` is
//! [`Error::UserLockedOut`], `CKR_USER_PIN_NOT_INITIALIZED` is [`Error::UserNotFound`], and
//! `CKR_USER_ALREADY_LOGGED_IN`/`CKR_USER_ANOTHER_ALREADY_LOGGED_IN` are [`Error::UserLoggedIn`].
//! SoftHSM 2.6 never locks a user: it only raises `CKF_USER_PIN_COUNT_LOW`.
//!
//! # Backing keys and how they are copied between HSMs
//!
//! A backing key is a persistent (`CKA_TOKEN`), private, 256-bit AES key labelled with the KMS key
//! ARN, usable only for encryption and decryption, with `CKA_SENSITIVE` set. PKCS#11 offers no
//! standard way to clone a non-extractable key between tokens (CloudHSM uses a proprietary,
//! HSM-to-HSM masking protocol), so backing keys are `CKA_EXTRACTABLE` *with*
//! `CKA_WRAP_WITH_TRUSTED`: they can leave an HSM only wrapped under a key marked `CKA_TRUSTED`,
//! and only the Security Officer can mark a key trusted. Both flags are sticky: SoftHSM refuses to
//! clear `CKA_WRAP_WITH_TRUSTED` or `CKA_SENSITIVE` (`CKR_ATTRIBUTE_READ_ONLY`) and refuses to wrap
//! under a key the crypto user made (`CKR_KEY_NOT_WRAPPABLE`); the tests check both.
//!
//! The trusted key is the *cluster wrapping key*, one AES-256 key (`CKA_WRAP`/`CKA_UNWRAP` only)
//! present on every HSM with the same value and a random `CKA_ID` naming it.
//! [`Cluster::establish_wrapping_key`] generates it inside one HSM in a Security Officer session
//! and carries it to each other HSM without it ever being in host memory in plaintext:
//!
//! 1. both HSMs generate an ephemeral P-256 key pair as session objects;
//! 2. the host exchanges the public points;
//! 3. each HSM runs `CKM_ECDH1_DERIVE` to the same AES-256 transport key (a session object; the
//!    sender's copy is `CKA_TRUSTED`, which is why this runs as the Security Officer);
//! 4. the sender wraps the cluster key under the transport key (`CKM_AES_KEY_WRAP`) and the
//!    receiver unwraps it as a trusted token object.
//!
//! What SoftHSM 2.6 allows shaped this: it accepts only the null KDF for ECDH
//! (`CKR_MECHANISM_PARAM_INVALID` for every other one), so a SHA-256 KDF is tried first and the raw
//! shared X coordinate is used where it is refused; that is acceptable for a single-use, session-only
//! transport key. The Security Officer can create only public objects, so the cluster wrapping
//! key is `CKA_PRIVATE=false`: visible without login, but it can neither encrypt nor decrypt, and
//! wrapping a backing key needs the crypto user. SoftHSM does not compute `CKA_CHECK_VALUE` for
//! unwrapped keys, hence the `CKA_ID` to tell cluster keys apart.
//!
//! Backing keys are then replicated by wrapping them under the cluster key on one HSM and unwrapping
//! on the others, always in the crypto user's sessions; the wrapped blob is the only form that
//! crosses the host. The limit of this design: PKCS#11 2.40 lets whoever unwraps choose the new
//! object's attributes, so a holder of the crypto user's PIN could unwrap a copy that is not
//! sensitive. Tokens that enforce `CKA_UNWRAP_TEMPLATE` close that gap; SoftHSM 2.6 does not
//! (and `cryptoki` cannot express that attribute without `unsafe`).
//!
//! # Sessions, handles, failover
//!
//! Each [`Hsm`] keeps a bounded pool of logged-in read/write sessions; a `cryptoki::Session` is
//! `Send` but not `Sync`, so an operation checks one out and returns it. Object handles are cached
//! by label and forgotten whenever a session is closed, because a token may renumber handles once
//! its last session closes (SoftHSM does). A device error marks the HSM [`HsmState::Degraded`] and
//! closes its sessions; [`Cluster::probe`] or a [`HealthMonitor`] brings it back. SoftHSM reports a
//! failed AES-GCM tag check as `CKR_GENERAL_ERROR`, so a decryption failure degrades an HSM only if
//! the token then also fails a health check; otherwise it is [`Error::InvalidCiphertext`].
//! Security Officer work needs the token to itself (PKCS#11 logs users in per token, not per
//! session), so it waits for in-flight operations to finish and closes the pool first.
//!
//! All calls block; async callers should use `spawn_blocking`.
//!
//! # SoftHSM 2.6 as measured
//!
//! The tests run against SoftHSM 2.6.1 (Debian `softhsm2`, file object store). What it does that
//! shaped this crate, beyond the above:
//!
//! - `C_InitToken` can run several times in one process: a fresh empty slot appears each time.
//! - Login state is per token and per process: a second session's `C_Login` returns
//!   `CKR_USER_ALREADY_LOGGED_IN`, and the Security Officer cannot log in while the user is
//!   (`CKR_USER_ANOTHER_ALREADY_LOGGED_IN`). The Security Officer can create only public objects.
//! - Wrong PINs never lock the user; `CKF_USER_PIN_COUNT_LOW` is all that changes.
//! - Object handles are renumbered once the last session of a token closes.
//! - A failed GCM tag check and a too-short GCM ciphertext are `CKR_GENERAL_ERROR`.
//! - Unwrapped keys have `CKA_VALUE_LEN` 0 and no `CKA_CHECK_VALUE`, and an unwrap template may
//!   not give `CKA_VALUE_LEN`.
//! - With `CKA_MODIFIABLE=false`, changing any attribute is `CKR_ACTION_PROHIBITED`; otherwise
//!   clearing `CKA_SENSITIVE` or `CKA_WRAP_WITH_TRUSTED` is `CKR_ATTRIBUTE_READ_ONLY`.
//! - There is no `CKM_ECDSA_SHA256`, so ECDSA signing hashes with `CKM_SHA256` first, in the HSM.
//! - If a token's directory disappears, its objects vanish and `C_GetTokenInfo` fails with
//!   `CKR_GENERAL_ERROR`; the token stays unusable for the rest of the process even if the
//!   directory comes back, so recovery can only be shown with [`Hsm::simulate_outage`].
//! - Token keys are several times slower to use than session keys (see [`raw_gcm_throughput`]):
//!   the file store opens, locks and reads a token object's file at every use. Encryption and
//!   decryption therefore use a working copy of each backing key, unwrapped inside the HSM as a
//!   session object that cannot be extracted, and gone with its session or the key.

mod attributes;
mod backup;
mod cluster;
mod config;
mod der;
mod error;
mod health;
mod hsm;
mod module;
mod pool;
mod root_key;
mod throughput;

pub use crate::backup::{
    BackingKeyProtection, ExportedKeys, WrappedKey, backing_key_protection, copy_wrapping_key,
    export_backing_keys, import_backing_keys, wrapping_key_id,
};
pub use crate::cluster::{
    Cluster, HsmResult, KeyHandleSet, KeyReplica, SyncFailure, SyncItem, SyncReport,
};
pub use crate::config::{ClusterOptions, HsmConfig, HsmEvents, Pin, SecretSource};
pub use crate::error::{Error, Role};
pub use crate::health::HealthMonitor;
pub use crate::hsm::{Hsm, HsmState, HsmStatus, KeyPairSpec, Sealed, SignMechanism};
pub use crate::module::{Fault, Module, ModuleSet};
pub use crate::root_key::{
    HsmRootKey, KeyCheck, LeftOutToken, RootKeyCopy, RootKeyError, RootKeyExpectation,
    RootKeyReport, RootKeyToken,
};
pub use crate::throughput::{RawKey, Throughput, raw_gcm_throughput};

#[cfg(test)]
mod tests;
