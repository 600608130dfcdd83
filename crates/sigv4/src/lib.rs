//! AWS Signature Version 4: verification of incoming requests and signing of outgoing ones.
//!
//! This crate is hand-written on purpose.
//! No maintained crate verifies SigV4 on the server side without pinning an old crypto stack
//! (the AWS sample XKS proxy and Cosmian KMS both carry an old `ring` for it),
//! and the official `aws-sigv4` crate only signs.
//! Hashing and HMAC come from `aws-lc-rs`, the one crypto library of the workspace,
//! and the signature is compared in constant time.
//!
//! Verification runs on every request, so the canonical request is never built as a string:
//! it is streamed straight into a SHA-256 context, and hex encodings live in stack buffers.
//! The path is canonicalised as AWS does for every service except S3:
//! dot segments and empty segments are removed, then the already-encoded path is encoded again.
//!
//! Only header authentication (`Authorization: AWS4-HMAC-SHA256 …`) is supported.
//! Presigned URLs (`X-Amz-Algorithm` in the query string) are not accepted by this crate,
//! so a request that carries only query authentication is reported as
//! [`Sigv4Error::MissingAuthenticationToken`].

mod authorization;
mod canonical;
mod timestamp;

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::{constant_time, digest, hmac};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use zeroize::Zeroizing;

use crate::canonical::HexDigest;

/// The only signing algorithm this crate speaks.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last element of every credential scope.
const TERMINATOR: &str = "aws4_request";

/// How far, in seconds, a request's timestamp may be from the server's clock, in either direction.
const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// The header that carries the request timestamp.
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");

/// The header that carries a session token for temporary credentials.
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// The components of an `Authorization: AWS4-HMAC-SHA256 …` header, plus the timestamp.
///
/// Parsing is separate from verification so that the caller can look up the secret
/// for `access_key_id` (and check `region` and `service`) before any cryptography runs.
/// Every field borrows from the request's headers: parsing allocates nothing but the list of
/// signed header names, since it runs on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization<'a> {
    /// The whole credential scope as sent, `AKID/yyyymmdd/region/service/aws4_request`:
    /// it names one signing key, so it can key a cache of derived keys.
    pub credential: &'a str,
    /// The access key id, the first element of the credential scope.
    pub access_key_id: &'a str,
    /// The credential scope date, `yyyymmdd`.
    pub date: &'a str,
    /// The credential scope region, for example `us-east-1`.
    pub region: &'a str,
    /// The credential scope service, `kms` for Strongroom.
    pub service: &'a str,
    /// The lowercase header names the client signed, in the order it listed them.
    pub signed_headers: Vec<&'a str>,
    /// The signature the client sent: 64 lowercase hexadecimal characters.
    pub signature: &'a str,
    /// The `X-Amz-Date` header value, `yyyymmddThhmmssZ`.
    pub amz_date: &'a str,
    /// The `X-Amz-Security-Token` header value, present for temporary credentials.
    pub security_token: Option<&'a str>,
}

/// A SigV4 signing key, derived from a secret for one day, region and service.
///
/// Derivation costs four HMACs, so callers may cache a key per access key id and scope.
/// It is kept as a ready HMAC key, so that verifying a request does not set one up again;
/// aws-lc wipes the key when it is dropped.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

/// Why a request's signature was not accepted.
///
/// Each variant is an AWS error code; the protocol layer maps it to `__type` and a status,
/// and the message is safe to show to the client.
#[derive(Debug, thiserror::Error)]
pub enum Sigv4Error {
    /// The request carries no `Authorization` header at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header or a header it depends on is missing or malformed.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The signature does not match, or the credential scope contradicts the timestamp.
    #[error("{0}")]
    InvalidSignature(String),
    /// The request timestamp is more than five minutes away from the server's clock.
    #[error("{0}")]
    SignatureExpired(String),
}

impl SigningKey {
    /// Derives the key as `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    pub fn derive(secret_access_key: &[u8], date: &str, region: &str, service: &str) -> SigningKey {
        let key = derive_bytes(secret_access_key, date, region, service);
        SigningKey(hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()))
    }
}

/// The bytes of the signing key `SigningKey::derive` sets up.
fn derive_bytes(
    secret_access_key: &[u8],
    date: &str,
    region: &str,
    service: &str,
) -> Zeroizing<[u8; 32]> {
    let mut secret = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
    secret.extend_from_slice(b"AWS4");
    secret.extend_from_slice(secret_access_key);
    let date_key = Zeroizing::new(hmac_sha256(&secret, date.as_bytes()));
    let region_key = Zeroizing::new(hmac_sha256(date_key.as_ref(), region.as_bytes()));
    let service_key = Zeroizing::new(hmac_sha256(region_key.as_ref(), service.as_bytes()));
    Zeroizing::new(hmac_sha256(service_key.as_ref(), TERMINATOR.as_bytes()))
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Parses the `Authorization` and `X-Amz-Date` headers of a request.
///
/// Besides syntax, this checks everything that can be checked without the secret:
/// the credential scope date matches `X-Amz-Date`, `host` is signed,
/// and every other signed header is present in the request.
pub fn parse_authorization(headers: &HeaderMap) -> Result<ParsedAuthorization<'_>, Sigv4Error> {
    authorization::parse(headers)
}

/// Verifies the signature of a request whose `Authorization` header was parsed into `auth`.
///
/// `key` must be derived from the secret of `auth.access_key_id` for `auth.date`,
/// `auth.region` and `auth.service`; checking that region and service are the expected ones
/// is the caller's job.
/// When `host` is signed but the request has no `Host` header (as in HTTP/2),
/// the authority of `uri` stands in for it.
pub fn verify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    auth: &ParsedAuthorization<'_>,
    key: &SigningKey,
    now: SystemTime,
) -> Result<(), Sigv4Error> {
    // The struct is public, so the checks made while parsing are repeated here.
    let request_time = match timestamp::parse(auth.amz_date) {
        Some(seconds) => seconds,
        None => return Err(authorization::malformed_date(auth.amz_date)),
    };
    authorization::check_scope_date(auth.date, auth.amz_date)?;
    check_clock_skew(auth.amz_date, request_time, timestamp::unix_seconds(now))?;
    if !auth.signed_headers.contains(&"host") {
        return Err(authorization::host_not_signed());
    }

    let canonical_hash = canonical::hash_request(
        method,
        uri,
        headers,
        &auth.signed_headers,
        &canonical::payload_hash(body),
    )?;
    let expected = signature(
        key,
        auth.amz_date,
        auth.date,
        auth.region,
        auth.service,
        &canonical_hash,
    );
    match constant_time::verify_slices_are_equal(&expected, auth.signature.as_bytes()) {
        Ok(()) => Ok(()),
        Err(_) => Err(Sigv4Error::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. \
             Consult the service documentation for details."
                .to_owned(),
        )),
    }
}

/// Signs a request in place, the way an AWS SDK would, for clients such as the benchmark.
///
/// It sets `X-Amz-Date`, adds `Host` from the authority of `uri` when the request has none,
/// and sets `Authorization`.
/// The signed headers are `host` and `x-amz-date`, plus `content-type`, `x-amz-target`
/// and `x-amz-security-token` when the request has them.
///
/// # Panics
///
/// Panics if the access key id, region or service contain bytes that cannot appear in a header value.
#[expect(
    clippy::too_many_arguments,
    reason = "the signature mirrors the inputs of SigV4 one to one, and the protocol crate depends on it"
)]
pub fn sign(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
    now: SystemTime,
) {
    let amz_date_bytes = timestamp::format(timestamp::unix_seconds(now));
    let amz_date = timestamp::as_str(&amz_date_bytes);
    let date = &amz_date[..8];
    headers.insert(
        X_AMZ_DATE,
        HeaderValue::from_str(amz_date).expect("a formatted timestamp is a valid header value"),
    );
    if !headers.contains_key(HOST)
        && let Some(host) = canonical::host_from_uri(uri)
    {
        headers.insert(HOST, host);
    }

    // Candidates in sorted order, so the filtered list is sorted too.
    const CANDIDATES: [&str; 5] = [
        "content-type",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-target",
    ];
    let signed_headers: Vec<&str> = CANDIDATES
        .into_iter()
        .filter(|name| headers.contains_key(*name))
        .collect();

    let canonical_hash = canonical::hash_request(
        method,
        uri,
        headers,
        &signed_headers,
        &canonical::payload_hash(body),
    )
    .expect("every signed header was just checked to be present");
    let key = SigningKey::derive(secret_access_key.as_bytes(), date, region, service);
    let signature = signature(&key, amz_date, date, region, service, &canonical_hash);
    let authorization = format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/{TERMINATOR}, \
         SignedHeaders={}, Signature={}",
        signed_headers.join(";"),
        canonical::hex_str(&signature),
    );
    headers.insert(
        AUTHORIZATION,
        HeaderValue::try_from(authorization)
            .expect("the access key id, region and service must be valid in a header value"),
    );
}

/// Rejects a request whose timestamp is more than five minutes from `now`, with AWS's wording.
fn check_clock_skew(amz_date: &str, request_time: i64, now: i64) -> Result<(), Sigv4Error> {
    if request_time < now - MAX_SKEW_SECONDS {
        let limit = timestamp::format(now - MAX_SKEW_SECONDS);
        let now = timestamp::format(now);
        return Err(Sigv4Error::SignatureExpired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            timestamp::as_str(&limit),
            timestamp::as_str(&now),
        )));
    }
    if request_time > now + MAX_SKEW_SECONDS {
        let limit = timestamp::format(now + MAX_SKEW_SECONDS);
        let now = timestamp::format(now);
        return Err(Sigv4Error::SignatureExpired(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            timestamp::as_str(&limit),
            timestamp::as_str(&now),
        )));
    }
    Ok(())
}

/// Computes the hex signature of the string to sign, which is streamed into the HMAC.
fn signature(
    key: &SigningKey,
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_hash: &HexDigest,
) -> HexDigest {
    let mut ctx = hmac::Context::with_key(&key.0);
    for part in [
        ALGORITHM.as_bytes(),
        b"\n",
        amz_date.as_bytes(),
        b"\n",
        date.as_bytes(),
        b"/",
        region.as_bytes(),
        b"/",
        service.as_bytes(),
        b"/",
        TERMINATOR.as_bytes(),
        b"\n",
        canonical_hash,
    ] {
        ctx.update(part);
    }
    canonical::hex(ctx.sign().as_ref())
}

/// One HMAC-SHA256, as a fixed-size array.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SHA-256 of `data`, as a fixed-size array.
fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests;
