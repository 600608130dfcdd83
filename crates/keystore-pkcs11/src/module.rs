//! Loaded PKCS#11 modules, one per library path, initialized once.
//!
//! `C_Initialize` may run only once per library per process, and PKCS#11 keeps login state per
//! token for the whole process, so every HSM in a module must share one `Pkcs11` context.
//! A [`ModuleSet`] owns those contexts and is passed explicitly; there is no global.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::slot::Slot;

use crate::config::Pin;
use crate::error::Error;

/// The PKCS#11 modules loaded by this process, keyed by library path.
///
/// Cloning shares the set, so a cluster can load the module of an HSM added later.
#[derive(Debug, Clone, Default)]
pub struct ModuleSet {
    loaded: Arc<Mutex<HashMap<PathBuf, Module>>>,
}

/// A loaded and initialized PKCS#11 library.
#[derive(Debug, Clone)]
pub struct Module {
    path: Arc<PathBuf>,
    pkcs11: Pkcs11,
    faults: Arc<Faults>,
}

/// A fault injected into a token with [`Module::inject_fault`], for failover drills and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every call to the token fails as if the device had lost power (`CKR_DEVICE_ERROR`).
    Outage,
    /// Every call to the token waits until the fault is lifted, as a device that stopped answering
    /// on the network would.
    Stall,
    /// Only password changes (`C_SetPIN`) fail, as on a device that lost power during the change
    /// (`CKR_DEVICE_ERROR`); every other call works: a rotation of the crypto user's password that
    /// fails on one HSM midway.
    PinChangeFailure,
}

/// The faults injected into a module's tokens, by token label; shared by every clone of the module, so
/// every HSM opened on a token sees them, whichever cluster opened it.
#[derive(Debug, Default)]
struct Faults {
    by_token: Mutex<HashMap<String, Fault>>,
    lifted: Condvar,
}

impl ModuleSet {
    /// An empty set; modules are loaded on first use.
    pub fn new() -> ModuleSet {
        ModuleSet::default()
    }

    /// The module at `path`, loading and initializing it the first time.
    pub fn load(&self, path: &Path) -> Result<Module, Error> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(module) = loaded.get(path) {
            return Ok(module.clone());
        }
        let module_error = |source| Error::Module {
            module: path.to_path_buf(),
            source,
        };
        let pkcs11 = Pkcs11::new(path).map_err(module_error)?;
        // The library must be safe to call from several threads: sessions move between them.
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another part of the process initialized it already; its state is shared anyway.
            Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(err) => return Err(module_error(err)),
        }
        let module = Module {
            path: Arc::new(path.to_path_buf()),
            pkcs11,
            faults: Arc::default(),
        };
        loaded.insert(path.to_path_buf(), module.clone());
        Ok(module)
    }
}

impl Module {
    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `cryptoki` context, for tooling and tests that inspect tokens directly.
    ///
    /// Use it rather than loading the library again: a second `C_Initialize` would fail.
    pub fn pkcs11(&self) -> &Pkcs11 {
        &self.pkcs11
    }

    /// Injects `fault` into the token labelled `label`, or lifts the fault with `None`.
    ///
    /// Unlike [`crate::Hsm::simulate_outage`], which affects one `Hsm` value, this affects every HSM
    /// opened on the token through this module, including those a server opens later; a stalled call
    /// resumes as soon as the fault is lifted.
    pub fn inject_fault(&self, label: &str, fault: Option<Fault>) {
        let mut faults = self
            .faults
            .by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match fault {
            Some(fault) => faults.insert(label.to_owned(), fault),
            None => faults.remove(label),
        };
        self.faults.lifted.notify_all();
    }

    /// Waits while the token labelled `label` is stalled; `Err(())` while it is out.
    pub(crate) fn check_faults(&self, label: &str) -> Result<(), ()> {
        let mut faults = self
            .faults
            .by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            match faults.get(label) {
                None | Some(Fault::PinChangeFailure) => return Ok(()),
                Some(Fault::Outage) => return Err(()),
                Some(Fault::Stall) => {
                    faults = self
                        .faults
                        .lifted
                        .wait(faults)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Whether password changes on the token labelled `label` are made to fail.
    pub(crate) fn pin_change_fails(&self, label: &str) -> bool {
        let faults = self
            .faults
            .by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        faults.get(label) == Some(&Fault::PinChangeFailure)
    }

    /// Initializes a fresh token labelled `label` in a free slot (`C_InitToken`), setting its
    /// Security Officer PIN; this is provisioning, the equivalent of creating an HSM.
    pub fn initialize_token(&self, so_pin: &Pin, label: &str) -> Result<(), Error> {
        if label.is_empty() || label.len() > 32 {
            return Err(Error::InvalidLabel {
                label: label.to_owned(),
                reason: "a token label has 1 to 32 bytes",
            });
        }
        if self.find_token(label).is_ok() {
            return Err(Error::TokenExists {
                label: label.to_owned(),
                module: self.path().to_path_buf(),
            });
        }
        let module_error = |source| Error::Module {
            module: self.path().to_path_buf(),
            source,
        };
        let slots = self.pkcs11.get_slots_with_token().map_err(module_error)?;
        let mut free = None;
        for slot in slots {
            let info = self.pkcs11.get_token_info(slot).map_err(module_error)?;
            if !info.token_initialized() {
                free = Some(slot);
                break;
            }
        }
        let Some(slot) = free else {
            return Err(Error::NoFreeSlot {
                module: self.path().to_path_buf(),
            });
        };
        self.pkcs11
            .init_token(slot, &so_pin.auth(), label)
            .map_err(module_error)
    }

    /// The slot holding the initialized token labelled `label`.
    pub(crate) fn find_token(&self, label: &str) -> Result<Slot, Error> {
        let module_error = |source| Error::Module {
            module: self.path().to_path_buf(),
            source,
        };
        let slots = self.pkcs11.get_slots_with_token().map_err(module_error)?;
        for slot in slots {
            // A token that cannot describe itself is not the one we are looking for.
            let Ok(info) = self.pkcs11.get_token_info(slot) else {
                continue;
            };
            if info.token_initialized() && info.label().trim_end() == label {
                return Ok(slot);
            }
        }
        Err(Error::TokenNotFound {
            label: label.to_owned(),
            module: self.path().to_path_buf(),
        })
    }
}
