//! One HSM: a token with its session pool, handle cache, health and crypto user.
//!
//! Every PKCS#11 call of the crate goes through here, so this is where return codes become
//! [`Error`]s and where a failing device is taken out of service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use cryptoki::context::Function;
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use zeroize::Zeroizing;

use crate::attributes::{self, ObjectKind, WRAPPING_KEY_LABEL};
use crate::config::{ClusterOptions, HsmConfig, HsmEvents, Pin, SecretSource};
use crate::der;
use crate::error::{self, Error, Role};
use crate::module::{Module, ModuleSet};
use crate::pool::Pool;

/// Prepended to every caller's additional data: SoftHSM aborts AES-GCM with empty AAD in
/// assertion-enabled builds, and a fixed prefix also separates these ciphertexts from any other use.
const AAD_DOMAIN: &[u8] = b"strongroom/hsm-gcm/v1\0";
/// AES-GCM nonce length, the one every implementation handles best.
pub(crate) const IV_LEN: usize = 12;
/// How many nonces one `C_GenerateRandom` draws.
const NONCES_PER_DRAW: usize = 64;
const TAG_BITS: u64 = 128;
const TAG_LEN: usize = 16;
/// Shared information for the ECDH KDF, where the token supports one.
const TRANSPORT_KDF_INFO: &[u8] = b"strongroom cluster wrapping key transport";

/// One PKCS#11 token acting as one HSM of a cluster.
#[derive(Debug)]
pub struct Hsm {
    id: String,
    availability_zone: String,
    token_label: String,
    so_pin: SecretSource,
    module: Module,
    slot: Slot,
    pool: Pool,
    /// Operations hold it shared; Security Officer work and logins, which need the token to
    /// themselves, hold it exclusively.
    gate: RwLock<()>,
    handles: Mutex<HashMap<(ObjectKind, String), (u64, ObjectHandle)>>,
    /// Session copies of backing keys by label, with the pool generation they were made in; held
    /// while a copy is made, so that a key deleted meanwhile cannot leave a copy behind.
    working_copies: Mutex<HashMap<String, (u64, ObjectHandle)>>,
    /// Set once the token refuses to copy a backing key: it is then used from the token.
    copies_refused: AtomicBool,
    /// Random bytes drawn from the token for nonces and not handed out yet.
    nonces: Mutex<Vec<u8>>,
    health: Mutex<Health>,
    user_pin: Mutex<Option<Arc<Pin>>>,
    simulated_outage: AtomicBool,
    in_flight: AtomicUsize,
    operations: AtomicU64,
    events: Listener,
}

/// Where state changes go; a newtype so that `Hsm` can stay `Debug`.
struct Listener(Option<Arc<dyn HsmEvents>>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Listener(..)"
        } else {
            "Listener(None)"
        })
    }
}

#[derive(Debug)]
struct Health {
    state: HsmState,
    last_probe: Option<Instant>,
    last_error: Option<String>,
}

/// Whether an HSM takes part in serving requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsmState {
    /// Answering; requests are sent to it.
    Active,
    /// Failed recently; no requests are sent to it until a probe finds it healthy.
    Degraded,
}

/// A snapshot of one HSM, for status reports and load-balancing checks.
#[derive(Debug, Clone)]
pub struct HsmStatus {
    /// The HSM's id.
    pub id: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// Whether it serves requests.
    pub state: HsmState,
    /// Operations running on it now, or waiting for it (for a session, or for a device that does
    /// not answer).
    pub in_flight: usize,
    /// Operations it completed successfully since it was opened.
    pub operations: u64,
    /// Sessions open on it, idle or in use.
    pub open_sessions: usize,
    /// The failure that degraded it most recently.
    pub last_error: Option<String>,
}

/// The result of AES-GCM encryption inside an HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The random 96-bit nonce, drawn from the HSM.
    pub iv: [u8; IV_LEN],
    /// The ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// The kind of key pair the cluster makes for its own identity (the cluster CSR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPairSpec {
    /// RSA with a 2048-bit modulus and exponent 65537, what CloudHSM clusters use.
    Rsa2048,
    /// ECDSA on NIST P-256.
    EccNistP256,
}

/// How [`crate::Cluster::sign`] signs, always hashing inside the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMechanism {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`CKM_SHA256_RSA_PKCS`).
    RsaPkcs1Sha256,
    /// ECDSA over a SHA-256 digest; the signature is `r || s`, as PKCS#11 returns it.
    EcdsaSha256,
}

/// Counts an operation as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The additional data actually given to the HSM: never empty.
fn domain_aad(aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(AAD_DOMAIN.len() + aad.len());
    full.extend_from_slice(AAD_DOMAIN);
    full.extend_from_slice(aad);
    full
}

/// Whether a refusal only means a cached handle went stale.
fn is_stale_handle(err: &Error) -> bool {
    match err {
        Error::Rejected { source, .. } => matches!(
            error::code(source),
            Some(
                RvError::ObjectHandleInvalid
                    | RvError::KeyHandleInvalid
                    | RvError::WrappingKeyHandleInvalid
                    | RvError::UnwrappingKeyHandleInvalid
            )
        ),
        _ => false,
    }
}

/// Whether a failed copy of a backing key into a session says the token will never make one.
fn is_copy_refusal(err: &Pkcs11Error) -> bool {
    matches!(
        error::code(err),
        Some(
            RvError::KeyNotWrappable
                | RvError::KeyUnextractable
                | RvError::MechanismInvalid
                | RvError::FunctionNotSupported
                | RvError::ActionProhibited
                | RvError::AttributeReadOnly
                | RvError::AttributeTypeInvalid
                | RvError::AttributeValueInvalid
                | RvError::TemplateIncomplete
                | RvError::TemplateInconsistent
        )
    )
}

fn derive<'a>(kdf: EcKdf<'a>, peer_point: &'a [u8]) -> Mechanism<'a> {
    Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(kdf, peer_point))
}

fn simulated_failure() -> Pkcs11Error {
    Pkcs11Error::Pkcs11(RvError::DeviceError, Function::OpenSession)
}

impl Hsm {
    /// Finds the token of `config` in its module (loading the module if needed) and prepares an
    /// empty session pool; no session is opened until the crypto user logs in.
    pub fn open(
        config: &HsmConfig,
        modules: &ModuleSet,
        options: &ClusterOptions,
    ) -> Result<Hsm, Error> {
        if options.sessions_per_hsm == 0 {
            return Err(Error::InvalidArgument {
                reason: "sessions_per_hsm must be at least 1",
            });
        }
        let module = modules.load(&config.module)?;
        let slot = module.find_token(&config.token_label)?;
        Ok(Hsm {
            id: config.id.clone(),
            availability_zone: config.availability_zone.clone(),
            token_label: config.token_label.clone(),
            so_pin: config.so_pin.clone(),
            module,
            slot,
            pool: Pool::new(options.sessions_per_hsm, options.session_wait),
            gate: RwLock::new(()),
            handles: Mutex::new(HashMap::new()),
            working_copies: Mutex::new(HashMap::new()),
            copies_refused: AtomicBool::new(false),
            nonces: Mutex::new(Vec::new()),
            health: Mutex::new(Health {
                state: HsmState::Active,
                last_probe: None,
                last_error: None,
            }),
            user_pin: Mutex::new(None),
            simulated_outage: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            operations: AtomicU64::new(0),
            events: Listener(options.events.clone()),
        })
    }

    /// The HSM's id from its configuration.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The HSM's availability zone.
    pub fn availability_zone(&self) -> &str {
        &self.availability_zone
    }

    /// The label of the HSM's token.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The module the token lives in, for direct inspection with `cryptoki`.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Whether the HSM currently serves requests.
    pub fn state(&self) -> HsmState {
        lock(&self.health).state
    }

    /// A snapshot of the HSM's health and load.
    pub fn status(&self) -> HsmStatus {
        let health = lock(&self.health);
        HsmStatus {
            id: self.id.clone(),
            availability_zone: self.availability_zone.clone(),
            state: health.state,
            in_flight: self.in_flight(),
            operations: self.operations.load(Ordering::Relaxed),
            open_sessions: self.pool.open_sessions(),
            last_error: health.last_error.clone(),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Makes every call to the device fail as if it had lost power, or undoes that.
    ///
    /// For failover drills and tests: the HSM is marked degraded by the next operation that
    /// reaches it, and comes back through the normal probe once the outage is lifted.
    pub fn simulate_outage(&self, outage: bool) {
        self.simulated_outage.store(outage, Ordering::SeqCst);
    }

    /// Checks the HSM now and records the verdict: the token must answer and, once the crypto
    /// user has logged in, a logged-in session must work.
    pub fn probe(&self) -> HsmState {
        lock(&self.health).last_probe = Some(Instant::now());
        let verdict = self.token_answers().and_then(|()| {
            match self.known_user_pin() {
                // Before login there is no session to check; the token answering is all there is.
                None => Ok(()),
                Some(_) => self.with_session(|session, _| {
                    session
                        .get_session_info()
                        .map(|_| ())
                        .map_err(|e| self.fail(e))
                }),
            }
        });
        match verdict {
            Ok(()) => self.mark_active(),
            Err(err) => self.degrade(&err),
        }
        self.state()
    }

    /// Probes the HSM if it is degraded and was not probed within `interval`.
    pub(crate) fn probe_if_due(&self, interval: std::time::Duration) {
        let due = {
            let health = lock(&self.health);
            health.state == HsmState::Degraded
                && health.last_probe.is_none_or(|at| at.elapsed() >= interval)
        };
        if due {
            self.probe();
        }
    }

    fn mark_active(&self) {
        let recovered = {
            let mut health = lock(&self.health);
            let recovered = health.state == HsmState::Degraded;
            health.state = HsmState::Active;
            recovered
        };
        if recovered {
            tracing::info!(hsm = %self.id, "HSM active again");
            if let Some(events) = &self.events.0 {
                events.hsm_state_changed(&self.id, HsmState::Active, None);
            }
        }
    }

    /// Takes the HSM out of service after `err` and closes its sessions.
    fn degrade(&self, err: &Error) {
        let message = err.to_string();
        let newly = {
            let mut health = lock(&self.health);
            let newly = health.state == HsmState::Active;
            health.state = HsmState::Degraded;
            health.last_error = Some(message.clone());
            newly
        };
        self.pool.drain();
        self.forget_handles();
        if newly {
            tracing::warn!(hsm = %self.id, error = %err, "HSM degraded");
            if let Some(events) = &self.events.0 {
                events.hsm_state_changed(&self.id, HsmState::Degraded, Some(&message));
            }
        }
    }

    /// Classifies a failed call; failures that are ambiguous (SoftHSM reports a bad GCM tag as
    /// `CKR_GENERAL_ERROR`) count as device failures only if the token then fails to answer.
    fn fail(&self, err: Pkcs11Error) -> Error {
        match error::code(&err) {
            Some(RvError::GeneralError | RvError::FunctionFailed) => match self.token_answers() {
                Ok(()) => Error::Rejected {
                    hsm: self.id.clone(),
                    source: err,
                },
                Err(_) => Error::Device {
                    hsm: self.id.clone(),
                    source: err,
                },
            },
            _ => error::classify(&self.id, err),
        }
    }

    /// Whether the token is still there, initialized and the one configured.
    fn token_answers(&self) -> Result<(), Error> {
        self.check_reachable()?;
        match self.module.pkcs11().get_token_info(self.slot) {
            Ok(info) if info.token_initialized() && info.label().trim_end() == self.token_label => {
                Ok(())
            }
            Ok(_) => Err(Error::Device {
                hsm: self.id.clone(),
                source: Pkcs11Error::Pkcs11(RvError::TokenNotRecognized, Function::GetTokenInfo),
            }),
            Err(source) => Err(Error::Device {
                hsm: self.id.clone(),
                source,
            }),
        }
    }

    fn check_reachable(&self) -> Result<(), Error> {
        let injected = self.module.check_faults(&self.token_label);
        match self.simulated_outage.load(Ordering::SeqCst) || injected.is_err() {
            true => Err(Error::Device {
                hsm: self.id.clone(),
                source: simulated_failure(),
            }),
            false => Ok(()),
        }
    }

    /// The crypto user's password this HSM logged in with (or was told to log in with when it comes
    /// back), if any.
    pub(crate) fn known_user_pin(&self) -> Option<Arc<Pin>> {
        lock(&self.user_pin).clone()
    }

    fn open_user_session(&self, pin: &Pin) -> Result<Session, Error> {
        let session = self
            .module
            .pkcs11()
            .open_rw_session(self.slot)
            .map_err(|e| self.fail(e))?;
        // PKCS#11 logs in per token, so every session after the first finds the user logged in.
        match session.login(UserType::User, Some(&pin.auth())) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(err) => Err(error::login_error(&self.id, Role::CryptoUser, err)),
        }
    }

    /// Runs `op` in a pooled session of the crypto user, degrading the HSM on a device failure.
    fn with_session<T>(
        &self,
        op: impl FnOnce(&Session, u64) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // Counted from the start, waits included, so that an HSM that stopped answering looks
        // busy to the load balancing and gets no more requests than those already stuck in it.
        let _busy = InFlight::new(&self.in_flight);
        let _shared = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let res = self.check_reachable().and_then(|()| {
            let Some(pin) = self.known_user_pin() else {
                return Err(Error::NotLoggedIn {
                    hsm: self.id.clone(),
                });
            };
            let mut lease = self.pool.checkout(
                || self.open_user_session(&pin),
                || Error::SessionsExhausted {
                    hsm: self.id.clone(),
                    size: self.pool.capacity(),
                },
            )?;
            let res = op(lease.session(), lease.generation());
            if let Err(err) = &res
                && err.is_device_failure()
            {
                lease.discard();
            }
            res
        });
        if let Err(err) = &res
            && (err.is_device_failure() || err.is_credential_failure())
        {
            // A token the crypto user cannot log in to is as useless as one that is down.
            self.degrade(err);
        }
        res
    }

    /// Like `with_session`, but retries once with fresh lookups when a cached handle went stale.
    /// Operations run this way count in [`HsmStatus::operations`]; probes do not.
    fn run<T>(&self, op: impl Fn(&Session, u64) -> Result<T, Error>) -> Result<T, Error> {
        let res = self.with_session(|session, generation| match op(session, generation) {
            Err(err) if is_stale_handle(&err) => {
                self.discard_working_copies(session);
                self.forget_handles();
                op(session, generation)
            }
            res => res,
        });
        if res.is_ok() {
            self.operations.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    /// Runs `op` in a fresh session with the token to itself: every pooled session is closed
    /// first, so nobody is logged in unless someone outside this crate is.
    fn with_exclusive_session<T>(
        &self,
        op: impl FnOnce(&Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.pool.drain();
        self.forget_handles();
        let res = self.check_reachable().and_then(|()| {
            let session = self
                .module
                .pkcs11()
                .open_rw_session(self.slot)
                .map_err(|e| self.fail(e))?;
            op(&session)
        });
        if let Err(err) = &res
            && err.is_device_failure()
        {
            self.degrade(err);
        }
        res
    }

    /// Runs `op` as the Security Officer, with the PIN read from its source just for this.
    fn with_so_session<T>(
        &self,
        op: impl FnOnce(&Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with_exclusive_session(|session| {
            let so_pin = self.so_pin.load()?;
            session
                .login(UserType::So, Some(&so_pin.auth()))
                .map_err(|e| error::login_error(&self.id, Role::CryptoOfficer, e))?;
            let res = op(session);
            // Closing the session logs out as well; an explicit logout just says so.
            let _ = session.logout();
            res
        })
    }

    /// Forgets every cached handle; copies of backing keys go with the sessions that made them,
    /// which the callers close (or see [`Hsm::discard_working_copies`]).
    fn forget_handles(&self) {
        lock(&self.handles).clear();
        lock(&self.working_copies).clear();
    }

    /// Destroys every session copy of a backing key, for when the sessions that hold them stay
    /// open; best effort, since a copy whose session closed is already gone.
    fn discard_working_copies(&self, session: &Session) {
        let copies = std::mem::take(&mut *lock(&self.working_copies));
        for (_, copy) in copies.into_values() {
            let _ = session.destroy_object(copy);
        }
    }

    /// The handle of backing key `label` that encryption and decryption use: a copy of the key as
    /// a session object, made on first use in each pool generation.
    ///
    /// SoftHSM's file store reads a token object's file (open, lock, read, close) at every use to
    /// see whether another process changed it; a session object lives in memory only. The copy is
    /// made inside the HSM, wrapped under the cluster wrapping key and unwrapped as a session
    /// object (backing keys are `CKA_MODIFIABLE=false`, so SoftHSM refuses `C_CopyObject` with any
    /// template); it is as protected as the key and not extractable at all, and it is destroyed
    /// with the session that made it, when the key is deleted, or by
    /// [`Hsm::discard_working_copies`]. A token without a wrapping key, or that refuses the copy,
    /// is used directly.
    fn working_key(
        &self,
        session: &Session,
        generation: u64,
        label: &str,
    ) -> Result<ObjectHandle, Error> {
        if self.copies_refused.load(Ordering::Relaxed) {
            return self.lookup(session, generation, ObjectKind::BackingKey, label);
        }
        let mut copies = lock(&self.working_copies);
        if let Some((made_in, copy)) = copies.get(label)
            && *made_in == generation
        {
            return Ok(*copy);
        }
        let key = self.lookup(session, generation, ObjectKind::BackingKey, label)?;
        let Some(wrapping_key) = self.find(
            session,
            generation,
            ObjectKind::WrappingKey,
            WRAPPING_KEY_LABEL,
        )?
        else {
            // Tokens get a wrapping key before any backing key, so this one never will (a root
            // key on a single token).
            self.copies_refused.store(true, Ordering::Relaxed);
            return Ok(key);
        };
        let copied = session
            .wrap_key(&Mechanism::AesKeyWrap, wrapping_key, key)
            .map(Zeroizing::new)
            .and_then(|wrapped| {
                session.unwrap_key(
                    &Mechanism::AesKeyWrap,
                    wrapping_key,
                    &wrapped,
                    &attributes::working_copy(),
                )
            });
        match copied {
            Ok(copy) => {
                copies.insert(label.to_owned(), (generation, copy));
                Ok(copy)
            }
            Err(err) if is_copy_refusal(&err) => {
                tracing::info!(hsm = %self.id, error = %err, "the token does not copy backing keys into sessions; using them from the token");
                self.copies_refused.store(true, Ordering::Relaxed);
                Ok(key)
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    fn forget_handle(&self, kind: ObjectKind, label: &str) {
        lock(&self.handles).remove(&(kind, label.to_owned()));
    }

    fn remember(&self, kind: ObjectKind, label: &str, generation: u64, handle: ObjectHandle) {
        lock(&self.handles).insert((kind, label.to_owned()), (generation, handle));
    }

    /// Looks an object up, from the cache when the cached handle belongs to this generation.
    fn find(
        &self,
        session: &Session,
        generation: u64,
        kind: ObjectKind,
        label: &str,
    ) -> Result<Option<ObjectHandle>, Error> {
        let key = (kind, label.to_owned());
        if let Some((cached_generation, handle)) = lock(&self.handles).get(&key)
            && *cached_generation == generation
        {
            return Ok(Some(*handle));
        }
        match self.find_uncached(session, kind, label)? {
            Some(handle) => {
                lock(&self.handles).insert(key, (generation, handle));
                Ok(Some(handle))
            }
            None => Ok(None),
        }
    }

    fn find_uncached(
        &self,
        session: &Session,
        kind: ObjectKind,
        label: &str,
    ) -> Result<Option<ObjectHandle>, Error> {
        let found = session
            .find_objects(&attributes::find_template(kind, label))
            .map_err(|e| self.fail(e))?;
        match found.as_slice() {
            [] => {
                // A token whose storage vanished finds nothing; tell that apart from a missing key.
                self.token_answers()?;
                Ok(None)
            }
            [handle] => Ok(Some(*handle)),
            _ => Err(Error::LabelInUse {
                label: label.to_owned(),
            }),
        }
    }

    fn lookup(
        &self,
        session: &Session,
        generation: u64,
        kind: ObjectKind,
        label: &str,
    ) -> Result<ObjectHandle, Error> {
        match self.find(session, generation, kind, label)? {
            Some(handle) => Ok(handle),
            None if kind == ObjectKind::WrappingKey => Err(Error::WrappingKeyMissing {
                hsm: self.id.clone(),
            }),
            None => Err(Error::KeyNotFound {
                label: label.to_owned(),
            }),
        }
    }

    fn attribute(
        &self,
        session: &Session,
        object: ObjectHandle,
        wanted: AttributeType,
    ) -> Result<Attribute, Error> {
        let mut found = session
            .get_attributes(object, &[wanted])
            .map_err(|e| self.fail(e))?;
        match found.pop() {
            Some(attribute) => Ok(attribute),
            None => Err(Error::Unsupported {
                hsm: self.id.clone(),
                what: "reading a required object attribute",
            }),
        }
    }

    fn bytes_attribute(
        &self,
        session: &Session,
        object: ObjectHandle,
        wanted: AttributeType,
    ) -> Result<Vec<u8>, Error> {
        match self.attribute(session, object, wanted)? {
            Attribute::Value(bytes)
            | Attribute::Label(bytes)
            | Attribute::Id(bytes)
            | Attribute::Modulus(bytes)
            | Attribute::PublicExponent(bytes)
            | Attribute::EcParams(bytes)
            | Attribute::EcPoint(bytes) => Ok(bytes),
            _ => Err(Error::Unsupported {
                hsm: self.id.clone(),
                what: "the expected attribute type",
            }),
        }
    }

    // Users.

    /// Creates the crypto user (`C_InitPIN` as the Security Officer); run again, it resets the
    /// password.
    pub(crate) fn create_crypto_user(&self, user_pin: &Pin) -> Result<(), Error> {
        self.with_so_session(|session| {
            session
                .init_pin(&user_pin.auth())
                .map_err(|e| error::login_error(&self.id, Role::CryptoUser, e))
        })
    }

    /// Checks the crypto user's password with a real login and keeps it for the session pool.
    pub(crate) fn login_crypto_user(&self, pin: Arc<Pin>) -> Result<(), Error> {
        self.with_exclusive_session(|session| {
            session
                .login(UserType::User, Some(&pin.auth()))
                .map_err(|e| error::login_error(&self.id, Role::CryptoUser, e))?;
            let _ = session.logout();
            Ok(())
        })?;
        *lock(&self.user_pin) = Some(pin);
        self.mark_active();
        Ok(())
    }

    /// Keeps the password without checking it, for an HSM that was down at login: the first
    /// successful probe logs in with it.
    pub(crate) fn remember_user_pin(&self, pin: Arc<Pin>) {
        *lock(&self.user_pin) = Some(pin);
    }

    /// Forgets the crypto user's password and closes every session, logging the user out.
    pub(crate) fn logout_crypto_user(&self) {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        *lock(&self.user_pin) = None;
        self.pool.drain();
        self.forget_handles();
    }

    /// Changes the crypto user's password (`C_SetPIN` in a session of that user).
    pub(crate) fn set_crypto_user_password(&self, old: &Pin, new: &Pin) -> Result<(), Error> {
        self.with_exclusive_session(|session| {
            session
                .login(UserType::User, Some(&old.auth()))
                .map_err(|e| error::login_error(&self.id, Role::CryptoUser, e))?;
            let res = match self.module.pin_change_fails(&self.token_label) {
                true => Err(Pkcs11Error::Pkcs11(RvError::DeviceError, Function::SetPIN)),
                false => session.set_pin(&old.auth(), &new.auth()),
            }
            .map_err(|e| error::login_error(&self.id, Role::CryptoUser, e));
            let _ = session.logout();
            // While the gate is still held: a session opened between the change and this update
            // would log in with the old password, be refused, and mark the HSM degraded.
            if res.is_ok() {
                let mut known = lock(&self.user_pin);
                if known.is_some() {
                    *known = Some(Arc::new(new.clone()));
                }
            }
            res
        })
    }

    // The cluster wrapping key.

    /// The `CKA_ID` of this HSM's cluster wrapping key, if it has one.
    pub(crate) fn wrapping_key_id(&self) -> Result<Option<Vec<u8>>, Error> {
        let look = |session: &Session| match self.find_uncached(
            session,
            ObjectKind::WrappingKey,
            WRAPPING_KEY_LABEL,
        )? {
            Some(key) => Ok(Some(self.bytes_attribute(
                session,
                key,
                AttributeType::Id,
            )?)),
            None => Ok(None),
        };
        match self.known_user_pin() {
            Some(_) => self.with_session(|session, _| look(session)),
            // The wrapping key is public, so any session sees it; this one touches no pool.
            None => {
                let _shared = self.gate.read().unwrap_or_else(PoisonError::into_inner);
                self.check_reachable()?;
                let session = self
                    .module
                    .pkcs11()
                    .open_ro_session(self.slot)
                    .map_err(|e| self.fail(e))?;
                look(&session)
            }
        }
    }

    /// Generates the cluster wrapping key here, as the Security Officer; returns its id.
    pub(crate) fn generate_wrapping_key(&self) -> Result<Vec<u8>, Error> {
        self.with_so_session(|session| {
            let mut id = vec![0; 16];
            session
                .generate_random_slice(&mut id)
                .map_err(|e| self.fail(e))?;
            session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &attributes::generate_wrapping_key(&id),
                )
                .map_err(|e| self.fail(e))?;
            Ok(id)
        })
    }

    /// Copies the cluster wrapping key from `self` to `target` through an ECDH-agreed transport
    /// key, both HSMs acting as their Security Officer; the key is never in host memory.
    pub(crate) fn send_wrapping_key(&self, target: &Hsm) -> Result<(), Error> {
        self.with_so_session(|sender| {
            target.with_so_session(|receiver| {
                let mechanism = Mechanism::EccKeyPairGen;
                let (sender_public, sender_private) = sender
                    .generate_key_pair(
                        &mechanism,
                        &attributes::ecdh_public(),
                        &attributes::ecdh_private(),
                    )
                    .map_err(|e| self.fail(e))?;
                let (receiver_public, receiver_private) = receiver
                    .generate_key_pair(
                        &mechanism,
                        &attributes::ecdh_public(),
                        &attributes::ecdh_private(),
                    )
                    .map_err(|e| target.fail(e))?;
                let sender_point =
                    self.bytes_attribute(sender, sender_public, AttributeType::EcPoint)?;
                let receiver_point =
                    target.bytes_attribute(receiver, receiver_public, AttributeType::EcPoint)?;
                let unsupported = |hsm: &Hsm| Error::Unsupported {
                    hsm: hsm.id.clone(),
                    what: "P-256 points in CKA_EC_POINT",
                };
                let sender_point =
                    der::p256_point(&sender_point).ok_or_else(|| unsupported(self))?;
                let receiver_point =
                    der::p256_point(&receiver_point).ok_or_else(|| unsupported(target))?;

                // A proper KDF where the token has one; SoftHSM 2.6 accepts only the null KDF.
                let mut kdf = EcKdf::sha256(TRANSPORT_KDF_INFO);
                let sent_with = match sender.derive_key(
                    &derive(kdf, receiver_point),
                    sender_private,
                    &attributes::transport_key(true),
                ) {
                    Err(Pkcs11Error::Pkcs11(RvError::MechanismParamInvalid, _)) => {
                        kdf = EcKdf::null();
                        sender.derive_key(
                            &derive(kdf, receiver_point),
                            sender_private,
                            &attributes::transport_key(true),
                        )
                    }
                    res => res,
                }
                .map_err(|e| self.fail(e))?;
                let received_with = receiver
                    .derive_key(
                        &derive(kdf, sender_point),
                        receiver_private,
                        &attributes::transport_key(false),
                    )
                    .map_err(|e| target.fail(e))?;

                let Some(cluster_key) =
                    self.find_uncached(sender, ObjectKind::WrappingKey, WRAPPING_KEY_LABEL)?
                else {
                    return Err(Error::WrappingKeyMissing {
                        hsm: self.id.clone(),
                    });
                };
                let id = self.bytes_attribute(sender, cluster_key, AttributeType::Id)?;
                let wrapped = sender
                    .wrap_key(&Mechanism::AesKeyWrap, sent_with, cluster_key)
                    .map_err(|e| self.fail(e))?;
                receiver
                    .unwrap_key(
                        &Mechanism::AesKeyWrap,
                        received_with,
                        &wrapped,
                        &attributes::unwrap_wrapping_key(&id),
                    )
                    .map_err(|e| target.fail(e))?;
                // The key pairs and transport keys are session objects and go with the sessions.
                Ok(())
            })
        })
    }

    // Backing keys.

    /// Generates a backing key labelled `label` here.
    pub(crate) fn generate_backing_key(&self, label: &str) -> Result<ObjectHandle, Error> {
        self.run(|session, generation| {
            if self
                .find(session, generation, ObjectKind::BackingKey, label)?
                .is_some()
            {
                return Err(Error::LabelInUse {
                    label: label.to_owned(),
                });
            }
            let key = session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &attributes::generate_backing_key(label),
                )
                .map_err(|e| self.fail(e))?;
            self.remember(ObjectKind::BackingKey, label, generation, key);
            Ok(key)
        })
    }

    /// The backing key `label` wrapped under the cluster wrapping key, for copying elsewhere.
    pub(crate) fn export_backing_key(&self, label: &str) -> Result<Vec<u8>, Error> {
        self.run(|session, generation| {
            let wrapping_key = self.lookup(
                session,
                generation,
                ObjectKind::WrappingKey,
                WRAPPING_KEY_LABEL,
            )?;
            let key = self.lookup(session, generation, ObjectKind::BackingKey, label)?;
            session
                .wrap_key(&Mechanism::AesKeyWrap, wrapping_key, key)
                .map_err(|e| self.fail(e))
        })
    }

    /// Unwraps a backing key exported by another HSM of the cluster.
    pub(crate) fn import_backing_key(
        &self,
        label: &str,
        wrapped: &[u8],
    ) -> Result<ObjectHandle, Error> {
        self.run(|session, generation| {
            if self
                .find(session, generation, ObjectKind::BackingKey, label)?
                .is_some()
            {
                return Err(Error::LabelInUse {
                    label: label.to_owned(),
                });
            }
            let wrapping_key = self.lookup(
                session,
                generation,
                ObjectKind::WrappingKey,
                WRAPPING_KEY_LABEL,
            )?;
            let key = session
                .unwrap_key(
                    &Mechanism::AesKeyWrap,
                    wrapping_key,
                    wrapped,
                    &attributes::unwrap_backing_key(label),
                )
                .map_err(|e| self.fail(e))?;
            self.remember(ObjectKind::BackingKey, label, generation, key);
            Ok(key)
        })
    }

    /// Whether this HSM holds the backing key `label`.
    pub fn key_exists(&self, label: &str) -> Result<bool, Error> {
        self.object_exists(ObjectKind::BackingKey, label)
    }

    pub(crate) fn object_exists(&self, kind: ObjectKind, label: &str) -> Result<bool, Error> {
        self.run(|session, generation| Ok(self.find(session, generation, kind, label)?.is_some()))
    }

    /// The labels of every backing key on this HSM.
    pub(crate) fn backing_key_labels(&self) -> Result<Vec<String>, Error> {
        self.run(|session, _| self.labels(session, &attributes::all_backing_keys()))
    }

    fn labels(&self, session: &Session, template: &[Attribute]) -> Result<Vec<String>, Error> {
        let objects = session.find_objects(template).map_err(|e| self.fail(e))?;
        let mut labels = Vec::new();
        for object in objects {
            let label = self.bytes_attribute(session, object, AttributeType::Label)?;
            labels.push(String::from_utf8_lossy(&label).into_owned());
        }
        Ok(labels)
    }

    /// Destroys the object of `kind` labelled `label`; `false` if there was none.
    pub(crate) fn destroy(&self, kind: ObjectKind, label: &str) -> Result<bool, Error> {
        self.run(|session, generation| {
            let Some(object) = self.find(session, generation, kind, label)? else {
                return Ok(false);
            };
            self.forget_handle(kind, label);
            session.destroy_object(object).map_err(|e| self.fail(e))?;
            if kind == ObjectKind::BackingKey
                && let Some((_, copy)) = lock(&self.working_copies).remove(label)
            {
                // A copy from an earlier generation went with its session already.
                let _ = session.destroy_object(copy);
            }
            Ok(true)
        })
    }

    /// Encrypts with AES-256-GCM under the backing key `label`, with a nonce from the HSM.
    pub fn encrypt(&self, label: &str, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, Error> {
        let aad = domain_aad(aad);
        self.run(|session, generation| {
            let key = self.working_key(session, generation, label)?;
            let iv = self.next_nonce(session)?;
            // The mechanism borrows the nonce mutably, so it gets a copy.
            let mut nonce = iv;
            let params =
                GcmParams::new(&mut nonce, &aad, TAG_BITS.into()).map_err(|e| self.fail(e))?;
            let ciphertext = session
                .encrypt(&Mechanism::AesGcm(params), key, plaintext)
                .map_err(|e| self.fail(e))?;
            Ok(Sealed { iv, ciphertext })
        })
    }

    /// A fresh random nonce from the HSM's generator. Nonces are drawn [`NONCES_PER_DRAW`] at a
    /// time, which saves a `C_GenerateRandom` per encryption; each one is handed out once.
    fn next_nonce(&self, session: &Session) -> Result<[u8; IV_LEN], Error> {
        let mut drawn = lock(&self.nonces);
        if drawn.len() < IV_LEN {
            drawn.resize(IV_LEN * NONCES_PER_DRAW, 0);
            if let Err(err) = session.generate_random_slice(&mut drawn) {
                drawn.clear();
                return Err(self.fail(err));
            }
        }
        let rest = drawn.len() - IV_LEN;
        let mut nonce = [0; IV_LEN];
        nonce.copy_from_slice(&drawn[rest..]);
        drawn.truncate(rest);
        Ok(nonce)
    }

    /// Decrypts what [`Hsm::encrypt`] (here or on another HSM of the cluster) produced.
    pub fn decrypt(
        &self,
        label: &str,
        aad: &[u8],
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if sealed.ciphertext.len() < TAG_LEN {
            return Err(Error::InvalidCiphertext);
        }
        let aad = domain_aad(aad);
        self.run(|session, generation| {
            let key = self.working_key(session, generation, label)?;
            let mut nonce = sealed.iv;
            let params =
                GcmParams::new(&mut nonce, &aad, TAG_BITS.into()).map_err(|e| self.fail(e))?;
            match session.decrypt(&Mechanism::AesGcm(params), key, &sealed.ciphertext) {
                Ok(plaintext) => Ok(Zeroizing::new(plaintext)),
                Err(err) => Err(self.decryption_failure(err)),
            }
        })
    }

    /// A failed decryption is the ciphertext's fault unless the device is failing.
    fn decryption_failure(&self, err: Pkcs11Error) -> Error {
        match error::code(&err) {
            Some(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange,
            ) => Error::InvalidCiphertext,
            _ => match self.fail(err) {
                // The token answers, so a "general error" was SoftHSM's way to report a bad tag.
                Error::Rejected { source, .. }
                    if error::code(&source) == Some(RvError::GeneralError) =>
                {
                    Error::InvalidCiphertext
                }
                other => other,
            },
        }
    }

    /// Random bytes from the HSM's generator.
    pub fn random(&self, len: usize) -> Result<Vec<u8>, Error> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let len = u32::try_from(len).map_err(|_| Error::InvalidArgument {
            reason: "too many random bytes requested",
        })?;
        self.run(|session, _| session.generate_random_vec(len).map_err(|e| self.fail(e)))
    }

    // Data objects and the cluster's own key pair.

    /// Stores `value` as the public data object `label`, replacing any previous one.
    pub(crate) fn write_data(&self, label: &str, value: &[u8]) -> Result<(), Error> {
        self.run(|session, generation| {
            if let Some(old) = self.find(session, generation, ObjectKind::Data, label)? {
                self.forget_handle(ObjectKind::Data, label);
                session.destroy_object(old).map_err(|e| self.fail(e))?;
            }
            let object = session
                .create_object(&attributes::data_object(label, value))
                .map_err(|e| self.fail(e))?;
            self.remember(ObjectKind::Data, label, generation, object);
            Ok(())
        })
    }

    /// The value of the data object `label`.
    pub(crate) fn read_data(&self, label: &str) -> Result<Vec<u8>, Error> {
        self.run(|session, generation| {
            let object = self.lookup(session, generation, ObjectKind::Data, label)?;
            self.bytes_attribute(session, object, AttributeType::Value)
        })
    }

    /// The labels of every data object this crate stored here.
    pub(crate) fn data_labels(&self) -> Result<Vec<String>, Error> {
        self.run(|session, _| self.labels(session, &attributes::all_data_objects()))
    }

    /// Generates a signing key pair labelled `label`; returns the public key as
    /// SubjectPublicKeyInfo DER.
    pub(crate) fn generate_key_pair(
        &self,
        label: &str,
        spec: KeyPairSpec,
    ) -> Result<Vec<u8>, Error> {
        let (mechanism, rsa_bits) = match spec {
            KeyPairSpec::Rsa2048 => (Mechanism::RsaPkcsKeyPairGen, Some(2048)),
            KeyPairSpec::EccNistP256 => (Mechanism::EccKeyPairGen, None),
        };
        self.run(|session, generation| {
            if self
                .find(session, generation, ObjectKind::PrivateKey, label)?
                .is_some()
            {
                return Err(Error::LabelInUse {
                    label: label.to_owned(),
                });
            }
            let (public_template, private_template) = attributes::signing_key_pair(label, rsa_bits);
            let (public, private) = session
                .generate_key_pair(&mechanism, &public_template, &private_template)
                .map_err(|e| self.fail(e))?;
            self.remember(ObjectKind::PublicKey, label, generation, public);
            self.remember(ObjectKind::PrivateKey, label, generation, private);
            self.spki(session, public)
        })
    }

    /// The public key `label` as SubjectPublicKeyInfo DER.
    pub(crate) fn public_key(&self, label: &str) -> Result<Vec<u8>, Error> {
        self.run(|session, generation| {
            let public = self.lookup(session, generation, ObjectKind::PublicKey, label)?;
            self.spki(session, public)
        })
    }

    fn spki(&self, session: &Session, public: ObjectHandle) -> Result<Vec<u8>, Error> {
        let key_type = match self.attribute(session, public, AttributeType::KeyType)? {
            Attribute::KeyType(key_type) => key_type,
            _ => {
                return Err(Error::Unsupported {
                    hsm: self.id.clone(),
                    what: "reading CKA_KEY_TYPE",
                });
            }
        };
        if key_type == KeyType::RSA {
            let modulus = self.bytes_attribute(session, public, AttributeType::Modulus)?;
            let exponent = self.bytes_attribute(session, public, AttributeType::PublicExponent)?;
            return Ok(der::rsa_spki(&modulus, &exponent));
        }
        if key_type == KeyType::EC {
            let curve = self.bytes_attribute(session, public, AttributeType::EcParams)?;
            let point = self.bytes_attribute(session, public, AttributeType::EcPoint)?;
            let Some(point) = der::p256_point(&point) else {
                return Err(Error::Unsupported {
                    hsm: self.id.clone(),
                    what: "EC curves other than P-256",
                });
            };
            return Ok(der::ec_spki(&curve, point));
        }
        Err(Error::Unsupported {
            hsm: self.id.clone(),
            what: "public keys other than RSA and EC",
        })
    }

    /// Signs `data` with the private key `label`, hashing inside the HSM.
    pub(crate) fn sign(
        &self,
        label: &str,
        mechanism: SignMechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.run(|session, generation| {
            let key = self.lookup(session, generation, ObjectKind::PrivateKey, label)?;
            match mechanism {
                SignMechanism::RsaPkcs1Sha256 => session
                    .sign(&Mechanism::Sha256RsaPkcs, key, data)
                    .map_err(|e| self.fail(e)),
                SignMechanism::EcdsaSha256 => {
                    // SoftHSM has no CKM_ECDSA_SHA256, so the digest is a separate HSM call.
                    let digest = session
                        .digest(&Mechanism::Sha256, data)
                        .map_err(|e| self.fail(e))?;
                    session
                        .sign(&Mechanism::Ecdsa, key, &digest)
                        .map_err(|e| self.fail(e))
                }
            }
        })
    }
}
