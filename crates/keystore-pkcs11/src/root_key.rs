//! A root key kept in an HSM cluster: the default key store's key material is then wrapped and unwrapped
//! inside the HSMs, so even software-held keys are protected by hardware at rest.

use std::sync::Arc;

use strongroom_keystore::{KeyStoreError, RootKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::cluster::Cluster;
use crate::hsm::{IV_LEN, Sealed};

/// Marks blobs wrapped in an HSM, so they are never mistaken for ones a file root key wrapped.
const HSM_WRAP_VERSION: u8 = 2;

/// The default key store's root key as an AES key inside a (logged-in) HSM cluster.
pub struct HsmRootKey {
    cluster: Arc<Cluster>,
    label: String,
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
