//! Loaded PKCS#11 modules, one per library path, initialized once.
//!
//! `C_Initialize` may run only once per library per process, and PKCS#11 keeps login state per
//! token for the whole process, so every HSM in a module must share one `Pkcs11` context.
//! A [`ModuleSet`] owns those contexts and is passed explicitly; there is no global.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
