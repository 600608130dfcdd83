//! A raw AES-GCM throughput measurement straight through `cryptoki`, without pools or caches, as
//! the baseline the cluster's own figures in `docs/PERFORMANCE.md` are compared against.

use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;

use crate::config::Pin;
use crate::error::{self, Error, Role};
use crate::module::Module;

/// Where the measured key lives, because SoftHSM's file store makes token objects markedly slower
/// to use than session objects (it checks the object's file on each use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKey {
    /// A session key: the HSM's best case.
    Session,
    /// A token key, as backing keys are; destroyed after the run.
    Token,
}

/// What a throughput run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Encryptions performed.
    pub operations: u64,
    /// Plaintext bytes per encryption.
    pub payload_len: usize,
    /// Wall-clock time for all of them.
    pub elapsed: Duration,
}

impl Throughput {
    /// Encryptions per second.
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Encrypts `payload_len` bytes `operations` times with AES-256-GCM in one session of the token
/// labelled `token_label`, under a fresh key stored as `key` says, and times it.
pub fn raw_gcm_throughput(
    module: &Module,
    token_label: &str,
    user_pin: &Pin,
    key: RawKey,
    payload_len: usize,
    operations: u64,
) -> Result<Throughput, Error> {
    let slot = module.find_token(token_label)?;
    let fail = |err| error::classify(token_label, err);
    let session = module.pkcs11().open_rw_session(slot).map_err(fail)?;
    match session.login(UserType::User, Some(&user_pin.auth())) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(err) => return Err(error::login_error(token_label, Role::CryptoUser, err)),
    }
    let on_token = key == RawKey::Token;
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(on_token),
                Attribute::Label(b"strongroom:throughput".to_vec()),
                Attribute::Encrypt(true),
            ],
        )
        .map_err(fail)?;
    let payload = vec![0x5a; payload_len];
    // Non-empty additional data: SoftHSM aborts on empty AAD in assertion-enabled builds.
    let aad = b"throughput";
    let mut iv = [0u8; 12];
    let started = Instant::now();
    let mut res = Ok(());
    for counter in 0..operations {
        iv[4..].copy_from_slice(&counter.to_be_bytes());
        res = GcmParams::new(&mut iv, aad, 128.into())
            .and_then(|params| session.encrypt(&Mechanism::AesGcm(params), key, &payload))
            .map(|_| ());
        if res.is_err() {
            break;
        }
    }
    let elapsed = started.elapsed();
    // The key goes whether or not the run succeeded.
    session.destroy_object(key).map_err(fail)?;
    res.map_err(fail)?;
    Ok(Throughput {
        operations,
        payload_len,
        elapsed,
    })
}
