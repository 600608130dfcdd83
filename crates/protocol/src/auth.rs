//! Authentication: SigV4 verification against the server's credentials, producing a [`Caller`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::request::Parts;
use strongroom_iam::LookupError;
use strongroom_service::Caller;
use strongroom_sigv4::{ParsedAuthorization, SigningKey};
use strongroom_types::{AccountId, Namespace, Region};
use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::network::NetworkContext;

/// The identity behind an access key.
pub struct Principal {
    /// The secret access key.
    pub secret: Zeroizing<String>,
    /// The account the principal belongs to.
    pub account: AccountId,
    /// The principal's ARN.
    pub arn: String,
    /// For a configured service principal, its service name (`s3`, `ebs`...): it may call on behalf of
    /// other principals, naming them in the `X-Strongroom-On-Behalf-Of` header (and a role session's
    /// token in `X-Strongroom-On-Behalf-Of-Security-Token`).
    pub service: Option<String>,
}

/// The header in which a service principal names the caller it acts for, by access key id.
pub const ON_BEHALF_OF_HEADER: &str = "x-strongroom-on-behalf-of";

/// The header in which a service principal passes the session token of the caller it acts for, when that
/// caller signs with temporary credentials (a role session, GetSessionToken): the token its own requests
/// carry as `X-Amz-Security-Token`.
pub const ON_BEHALF_OF_TOKEN_HEADER: &str = "x-strongroom-on-behalf-of-security-token";

/// Where the protocol edge looks up access keys; the server decides what credentials exist.
///
/// It is asked on every request, so revoking a key (or a session ending) takes effect at once; it must
/// answer from memory.
pub trait Credentials: Send + Sync + 'static {
    /// The principal owning `access_key_id`; temporary credentials also need their `session_token`
    /// (the `X-Amz-Security-Token` header).
    fn lookup(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Principal, LookupError>;
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
///
/// The cache holds only keys: the principal is looked up on every request, so a deleted or deactivated
/// key, or an expired session, stops working at once. A key id's secret never changes, so a cached
/// signing key stays right for as long as its id authenticates.
pub(crate) struct Authenticator {
    credentials: Arc<dyn Credentials>,
    regions: Regions,
    network: NetworkContext,
    /// Keyed by the credential scope as the client sent it (`AKID/date/region/service/aws4_request`),
    /// which names exactly one signing key and can be looked up without building a key.
    signing_keys: RwLock<HashMap<String, SigningKey>>,
}

/// A derived signing key and the principal it belongs to.
struct Signer {
    key: SigningKey,
    account: AccountId,
    arn: String,
    service: Option<String>,
}

impl Authenticator {
    pub(crate) fn new(
        credentials: Arc<dyn Credentials>,
        regions: Regions,
        network: NetworkContext,
    ) -> Authenticator {
        Authenticator {
            credentials,
            regions,
            network,
            signing_keys: RwLock::new(HashMap::new()),
        }
    }

    /// Who signed a request, as (account, principal ARN, access key id), for the audit record of requests
    /// other APIs served; `None` when the access key is unknown.
    pub(crate) fn identify(&self, headers: &http::HeaderMap) -> Option<(String, String, String)> {
        let auth = strongroom_sigv4::parse_authorization(headers).ok()?;
        let principal = self
            .credentials
            .lookup(auth.access_key_id, auth.security_token)
            .ok()?;
        Some((
            principal.account.to_string(),
            principal.arn,
            auth.access_key_id.to_owned(),
        ))
    }

    /// Authenticates a request for `service` (the SigV4 signing name) and returns the caller.
    pub(crate) fn authenticate(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
    ) -> Result<Caller, ProtocolError> {
        let auth = strongroom_sigv4::parse_authorization(&parts.headers)?;
        if auth.service != service {
            return Err(ProtocolError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{service}'."
            )));
        }
        // IAM is global: its requests are signed for us-east-1 whichever Regions the server serves.
        let region = match service {
            "iam" => auth.region.parse().map_err(|_| {
                ProtocolError::InvalidSignature(format!(
                    "Credential should be scoped to a valid region, not '{}'.",
                    auth.region
                ))
            })?,
            _ => self.region(&auth)?,
        };
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
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let origin = self.network.origin(peer, &parts.headers);
        let on_behalf_of = parts
            .headers
            .get(ON_BEHALF_OF_HEADER)
            .and_then(|v| v.to_str().ok());
        let (account, arn, access_key_id, via_service) = match (&signer.service, on_behalf_of) {
            (None, None) => (
                signer.account,
                signer.arn,
                auth.access_key_id.to_owned(),
                None,
            ),
            (None, Some(_)) => {
                return Err(ProtocolError::Service(
                    strongroom_service::Error::AccessDenied(format!(
                        "User: {} is not a service principal, so it cannot act on behalf of another principal.",
                        signer.arn
                    )),
                ));
            }
            (Some(name), None) => {
                return Err(ProtocolError::Service(
                    strongroom_service::Error::AccessDenied(format!(
                        "The service principal for {name} must name the caller it acts for in the {ON_BEHALF_OF_HEADER} \
                     header."
                    )),
                ));
            }
            (Some(name), Some(caller_key)) => {
                // The service vouches for its caller, as AWS services do with forward access sessions; a
                // caller with temporary credentials is named with its session token too, and only while
                // its session lasts.
                let caller_token = parts
                    .headers
                    .get(ON_BEHALF_OF_TOKEN_HEADER)
                    .and_then(|v| v.to_str().ok());
                let caller = match self.credentials.lookup(caller_key, caller_token) {
                    Ok(caller) => caller,
                    Err(LookupError::Unknown) => return Err(ProtocolError::UnrecognizedClient),
                    Err(LookupError::Expired) => return Err(ProtocolError::ExpiredToken),
                };
                let via = format!("{name}.{region}.amazonaws.com");
                (caller.account, caller.arn, caller_key.to_owned(), Some(via))
            }
        };
        Ok(Caller {
            namespace: Namespace { account, region },
            arn,
            access_key_id,
            source_ip: origin.source_ip,
            source_vpc: origin.source_vpc,
            source_vpce: origin.source_vpce,
            via_service,
        })
    }

    fn region(&self, auth: &ParsedAuthorization<'_>) -> Result<Region, ProtocolError> {
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

    fn signer(&self, auth: &ParsedAuthorization<'_>) -> Result<Signer, ProtocolError> {
        let principal = match self
            .credentials
            .lookup(auth.access_key_id, auth.security_token)
        {
            Ok(principal) => principal,
            Err(LookupError::Unknown) => return Err(ProtocolError::UnrecognizedClient),
            Err(LookupError::Expired) => return Err(ProtocolError::ExpiredToken),
        };
        let cached = self
            .signing_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(auth.credential)
            .cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                let key = SigningKey::derive(
                    principal.secret.as_bytes(),
                    auth.date,
                    auth.region,
                    auth.service,
                );
                let mut cache = self.signing_keys.write().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= SIGNING_KEY_CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(auth.credential.to_owned(), key.clone());
                key
            }
        };
        Ok(Signer {
            key,
            account: principal.account,
            arn: principal.arn,
            service: principal.service,
        })
    }
}
