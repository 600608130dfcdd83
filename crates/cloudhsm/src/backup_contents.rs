//! What a backup holds, and how it is kept: the cluster's keys as an HSM wrapped them under the cluster
//! wrapping key, its users (names and roles, never a password) and certificates, encoded in a small
//! length-prefixed format and sealed by the server's root key with the backup id bound as additional
//! data, so that a stored backup can neither be read nor moved to another backup's record.
//!
//! Nothing here is key material in plaintext: each key is an RFC 3394 blob that only an HSM holding the
//! cluster wrapping key can unwrap.

use strongroom_keystore::RootKey;
use strongroom_keystore_pkcs11::WrappedKey;
use strongroom_storage::clusters::{ClusterCertificates, ClusterIdentity};

use crate::error::Error;

/// Marks the encoding, so that a later format can be told apart.
const MAGIC: &[u8] = b"strongroom-hsm-backup/1";

/// The contents of one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupContents {
    /// The cluster backed up.
    pub(crate) cluster_id: String,
    /// Whether the cluster's admin was activated when the backup was taken.
    pub(crate) activated: bool,
    /// The cluster's crypto users, by name; their passwords stay in the HSMs.
    pub(crate) crypto_users: Vec<String>,
    /// The cluster key pair's public half and CSR (the private key never leaves its HSM).
    pub(crate) identity: Option<ClusterIdentity>,
    /// The cluster certificate and trust anchor.
    pub(crate) certificates: Option<ClusterCertificates>,
    /// The `CKA_ID` of the cluster wrapping key, which names the lineage that can unwrap `keys`;
    /// `None` before activation, when there is none.
    pub(crate) wrapping_key_id: Option<Vec<u8>>,
    /// Every backing key, wrapped under the cluster wrapping key; `None` when the backup could not
    /// capture them (no HSM of the cluster had the crypto user logged in).
    pub(crate) keys: Option<Vec<WrappedKey>>,
}

impl BackupContents {
    /// Encodes and seals the contents for the backup `backup_id`.
    pub(crate) fn seal(&self, root_key: &dyn RootKey, backup_id: &str) -> Result<Vec<u8>, Error> {
        let encoded = zeroize::Zeroizing::new(self.encode());
        root_key
            .wrap(&context(backup_id), &encoded)
            .map_err(|e| Error::Internal(Box::new(e)))
    }

    /// Opens what [`BackupContents::seal`] made for `backup_id`.
    pub(crate) fn open(
        root_key: &dyn RootKey,
        backup_id: &str,
        sealed: &[u8],
    ) -> Result<BackupContents, Error> {
        let encoded = root_key
            .unwrap(&context(backup_id), sealed)
            .map_err(|e| Error::Internal(Box::new(e)))?;
        BackupContents::decode(&encoded)
            .ok_or_else(|| Error::internal("a stored backup does not decode"))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Writer(Vec::new());
        out.0.extend_from_slice(MAGIC);
        out.bytes(self.cluster_id.as_bytes());
        out.flag(self.activated);
        out.count(self.crypto_users.len());
        for user in &self.crypto_users {
            out.bytes(user.as_bytes());
        }
        out.flag(self.identity.is_some());
        if let Some(identity) = &self.identity {
            out.bytes(identity.key_label.as_bytes());
            out.bytes(&identity.public_key);
            out.bytes(identity.csr_pem.as_bytes());
        }
        out.flag(self.certificates.is_some());
        if let Some(certificates) = &self.certificates {
            out.bytes(certificates.cluster_certificate_pem.as_bytes());
            out.bytes(certificates.trust_anchor_pem.as_bytes());
        }
        out.flag(self.wrapping_key_id.is_some());
        if let Some(id) = &self.wrapping_key_id {
            out.bytes(id);
        }
        out.flag(self.keys.is_some());
        if let Some(keys) = &self.keys {
            out.count(keys.len());
            for key in keys {
                out.bytes(key.label.as_bytes());
                out.bytes(&key.wrapped);
            }
        }
        out.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<BackupContents> {
        let mut input = Reader(bytes.strip_prefix(MAGIC)?);
        let cluster_id = input.text()?;
        let activated = input.flag()?;
        let mut crypto_users = Vec::new();
        for _ in 0..input.count()? {
            crypto_users.push(input.text()?);
        }
        let identity = match input.flag()? {
            true => Some(ClusterIdentity {
                key_label: input.text()?,
                public_key: input.bytes()?.to_vec(),
                csr_pem: input.text()?,
            }),
            false => None,
        };
        let certificates = match input.flag()? {
            true => Some(ClusterCertificates {
                cluster_certificate_pem: input.text()?,
                trust_anchor_pem: input.text()?,
            }),
            false => None,
        };
        let wrapping_key_id = match input.flag()? {
            true => Some(input.bytes()?.to_vec()),
            false => None,
        };
        let keys = match input.flag()? {
            true => {
                let mut keys = Vec::new();
                for _ in 0..input.count()? {
                    keys.push(WrappedKey {
                        label: input.text()?,
                        wrapped: input.bytes()?.to_vec(),
                    });
                }
                Some(keys)
            }
            false => None,
        };
        if !input.0.is_empty() {
            return None;
        }
        Some(BackupContents {
            cluster_id,
            activated,
            crypto_users,
            identity,
            certificates,
            wrapping_key_id,
            keys,
        })
    }
}

/// The additional data a backup's contents are sealed with: the backup id, in a domain of its own.
fn context(backup_id: &str) -> Vec<u8> {
    format!("strongroom:cloudhsm-backup:{backup_id}").into_bytes()
}

struct Writer(Vec<u8>);

impl Writer {
    fn count(&mut self, n: usize) {
        // Lengths are far below 4 GiB: a backup holds at most a few thousand small keys.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        self.count(value.len());
        self.0.extend_from_slice(value);
    }

    fn flag(&mut self, value: bool) {
        self.0.push(u8::from(value));
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn count(&mut self) -> Option<usize> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        usize::try_from(u32::from_be_bytes(*head)).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.count()?;
        if len > self.0.len() {
            return None;
        }
        let (value, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(value)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        match first {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}
