//! The root key that wraps every key-material version of the default key store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::KeyStoreError;
use crate::symmetric::random_bytes;

/// Wraps and unwraps key material for storage; held as `Arc<dyn RootKey>` so an HSM can take its place.
///
/// `context` is bound to the wrapped bytes as additional authenticated data: unwrapping with any other
/// context fails, so a wrapped blob cannot be moved from one key to another in storage.
pub trait RootKey: Send + Sync + 'static {
    /// Encrypts `material` for storage.
    fn wrap(&self, context: &[u8], material: &[u8]) -> Result<Vec<u8>, KeyStoreError>;

    /// Decrypts what [`RootKey::wrap`] produced with the same `context`.
    fn unwrap(&self, context: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError>;
}

/// A root key kept in a file readable only by its owner.
pub struct FileRootKey {
    key: LessSafeKey,
}

const ROOT_KEY_FILE_LEN: usize = 32;
/// Marks the wrapping format, so a future format can be told apart.
const WRAP_VERSION: u8 = 1;

impl FileRootKey {
    /// Opens the root key at `path`, creating it with fresh random bytes and mode 0600 if it is missing.
    ///
    /// Refuses a file that others can read: a leaked root key exposes every key.
    pub fn open_or_create(path: &Path) -> Result<FileRootKey, KeyStoreError> {
        let file_error = |source| KeyStoreError::RootKeyFile {
            path: path.display().to_string(),
            source,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path).map_err(file_error)?
            }
            Err(e) => return Err(file_error(e)),
        };
        let mode = fs::metadata(path).map_err(file_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(file_error(std::io::Error::other(format!(
                "permissions {:o} let other users read it; run `chmod 600 {}`",
                mode & 0o777,
                PathBuf::from(path).display()
            ))));
        }
        if bytes.len() != ROOT_KEY_FILE_LEN {
            return Err(KeyStoreError::InvalidMaterial(
                "the root key file must hold exactly 32 bytes",
            ));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyStoreError::Crypto)?;
        Ok(FileRootKey {
            key: LessSafeKey::new(unbound),
        })
    }
}

fn create(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(random_bytes(ROOT_KEY_FILE_LEN));
    // Write to a temporary name and rename, so a crash never leaves a short root key behind.
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(bytes)
}

impl RootKey for FileRootKey {
    fn wrap(&self, context: &[u8], material: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes(NONCE_LEN)
            .try_into()
            .map_err(|_| KeyStoreError::Crypto)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + material.len() + 16);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce_bytes);
        let mut sealed = material.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| KeyStoreError::Crypto)?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, context: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let Some((&WRAP_VERSION, rest)) = wrapped.split_first() else {
            return Err(KeyStoreError::Unauthentic);
        };
        if rest.len() < NONCE_LEN {
            return Err(KeyStoreError::Unauthentic);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyStoreError::Unauthentic)?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| KeyStoreError::Unauthentic)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }
}
