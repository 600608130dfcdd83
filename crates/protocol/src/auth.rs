//! Authentication: SigV4 verification against the server's credentials, producing a [`Caller`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::request::Parts;
use strongroom_service::Caller;
use strongroom_sigv4::{ParsedAuthorization, SigningKey};
use strongroom_types::{AccountId, Namespace, Region};
use zeroize::Zeroizing;

use crate::error::ProtocolError;

/// The identity behind an access key.
pub struct Principal {
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// The account the principal belongs to.
    pub account: AccountId,
    /// The principal's ARN.
    pub arn: String,
}

/// Where the protocol edge looks up access keys; the server decides what credentials exist.
pub trait Credentials: Send + Sync + 'static {
    /// The principal owning `access_key_id`, or `None` if the key is unknown.
    fn lookup(&self, access_key_id: &str) -> Option<Principal>;
}

/// Which Regions the server accepts in credential scopes.
#[derive(Debug, Clone)]
pub enum Regions {
    /// Any well-formed Region name.
    Any,
    /// Only these.
    Only(Vec<Region>),
}

/// Bound on cached signing keys; the cache is cleared when full (keys are cheap to derive again).
const SIGNING_KEY_CACHE_LIMIT: usize = 10_000;

/// Verifies requests; caches derived signing keys, which are valid for a day, a Region and a service.
pub(crate) struct Authenticator {
    credentials: Arc<dyn Credentials>,
    regions: Regions,
    signing_keys: RwLock<HashMap<SigningScope, Arc<Signer>>>,
}

/// A derived signing key and the principal it belongs to.
struct Signer {
    key: SigningKey,
    account: AccountId,
    arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SigningScope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

impl Authenticator {
    pub(crate) fn new(credentials: Arc<dyn Credentials>, regions: Regions) -> Authenticator {
        Authenticator {
            credentials,
            regions,
            signing_keys: RwLock::new(HashMap::new()),
        }
    }

    /// Authenticates a request for `service` (the SigV4 signing name) and returns the caller.
    pub(crate) fn authenticate(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Caller, ProtocolError> {
        let auth = strongroom_sigv4::parse_authorization(&parts.headers)?;
        if auth.service != service {
            return Err(ProtocolError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{service}'."
            )));
        }
        let region = self.region(&auth)?;
        let signer = self.signer(&auth)?;
        strongroom_sigv4::verify(
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            &auth,
            &signer.key,
            SystemTime::now(),
        )?;
        Ok(Caller {
            namespace: Namespace {
                account: signer.account.clone(),
                region,
            },
            arn: signer.arn.clone(),
            access_key_id: auth.access_key_id,
            source_ip,
        })
    }

    fn region(&self, auth: &ParsedAuthorization) -> Result<Region, ProtocolError> {
        let region: Region = auth.region.parse().map_err(|_| {
            ProtocolError::InvalidSignature(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ))
        })?;
        match &self.regions {
            Regions::Any => Ok(region),
            Regions::Only(allowed) if allowed.contains(&region) => Ok(region),
            Regions::Only(allowed) => Err(ProtocolError::InvalidSignature(format!(
                "Credential should be scoped to a valid region: this server serves {}, not '{region}'.",
                allowed
                    .iter()
                    .map(Region::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn signer(&self, auth: &ParsedAuthorization) -> Result<Arc<Signer>, ProtocolError> {
        let scope = SigningScope {
            access_key_id: auth.access_key_id.clone(),
            date: auth.date.clone(),
            region: auth.region.clone(),
            service: auth.service.clone(),
        };
        if let Some(entry) = self
            .signing_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&scope)
        {
            return Ok(entry.clone());
        }
        let principal = self
            .credentials
            .lookup(&auth.access_key_id)
            .ok_or(ProtocolError::UnrecognizedClient)?;
        let key = SigningKey::derive(
            principal.secret.as_bytes(),
            &auth.date,
            &auth.region,
            &auth.service,
        );
        let entry = Arc::new(Signer {
            key,
            account: principal.account,
            arn: principal.arn,
        });
        let mut cache = self.signing_keys.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= SIGNING_KEY_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(scope, entry.clone());
        Ok(entry)
    }
}
