//! Parsing of the `Authorization` header and the headers it depends on.
//!
//! Error messages follow the wording of AWS where it is known,
//! and quote the offending header so that a client author can see what was sent.
//! A credential scope date that contradicts `X-Amz-Date` is reported as
//! [`Sigv4Error::InvalidSignature`], as AWS does, because it is a mismatch, not a missing part.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::{
    ALGORITHM, ParsedAuthorization, Sigv4Error, TERMINATOR, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN,
    timestamp,
};

/// Parses and checks the authentication headers; see [`crate::parse_authorization`].
pub(crate) fn parse(headers: &HeaderMap) -> Result<ParsedAuthorization<'_>, Sigv4Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match values.next() {
        Some(value) => value,
        None => return Err(Sigv4Error::MissingAuthenticationToken),
    };
    if values.next().is_some() {
        return Err(incomplete(
            "Only one Authorization header may be specified.".to_owned(),
        ));
    }
    let header = match value.to_str() {
        Ok(header) => header,
        Err(_) => {
            return Err(incomplete(
                "The Authorization header must be visible ASCII text.".to_owned(),
            ));
        }
    };

    let (algorithm, components) = match header.split_once(' ') {
        Some(pair) => pair,
        None => (header, ""),
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}', only '{ALGORITHM}' is supported. \
             Authorization={header}"
        )));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in components.split(',') {
        let component = component.trim_matches(' ');
        if component.is_empty() {
            continue;
        }
        let (key, value) = match component.split_once('=') {
            Some(pair) => pair,
            None => {
                return Err(incomplete(format!(
                    "'{component}' not a valid key=value pair (missing equal-sign) \
                     in Authorization header: '{header}'"
                )));
            }
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(incomplete(format!(
                "Authorization header has more than one '{key}' parameter. Authorization={header}"
            )));
        }
        *slot = Some(value);
    }
    let (credential, signed_headers, signature) = match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => {
            (credential, signed_headers, signature)
        }
        (credential, signed_headers, signature) => {
            let mut message = String::new();
            for (name, present) in [
                ("Credential", credential.is_some()),
                ("SignedHeaders", signed_headers.is_some()),
                ("Signature", signature.is_some()),
            ] {
                if !present {
                    message.push_str("Authorization header requires '");
                    message.push_str(name);
                    message.push_str("' parameter. ");
                }
            }
            message.push_str("Authorization=");
            message.push_str(header);
            return Err(incomplete(message));
        }
    };

    let amz_date = match single_header_text(headers, X_AMZ_DATE.as_str()) {
        Ok(Some(amz_date)) => amz_date,
        Ok(None) => {
            return Err(incomplete(format!(
                "Authorization header requires existence of a 'X-Amz-Date' header. \
                 Authorization={header}"
            )));
        }
        Err(message) => return Err(incomplete(message)),
    };
    if timestamp::parse(amz_date).is_none() {
        return Err(malformed_date(amz_date));
    }

    let scope = parse_credential(credential)?;
    check_scope_date(scope.date, amz_date)?;

    let mut names = Vec::new();
    for name in signed_headers.split(';') {
        if name.is_empty() {
            return Err(incomplete(format!(
                "SignedHeaders must be a non-empty list of header names separated by ';'. \
                 Authorization={header}"
            )));
        }
        names.push(name);
    }
    if !names.contains(&"host") {
        return Err(host_not_signed());
    }
    // The host may come from the URI instead (HTTP/2), so its absence is left to `verify`.
    if let Some(name) = names
        .iter()
        .find(|name| **name != "host" && !headers.contains_key(**name))
    {
        return Err(incomplete(format!(
            "The request does not contain the header '{name}', which is listed in SignedHeaders. \
             Authorization={header}"
        )));
    }

    if signature.len() != 64
        || !signature
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(incomplete(format!(
            "Signature must be 64 lowercase hexadecimal characters. Authorization={header}"
        )));
    }

    let security_token = match single_header_text(headers, X_AMZ_SECURITY_TOKEN.as_str()) {
        Ok(token) => token,
        Err(message) => return Err(incomplete(message)),
    };

    Ok(ParsedAuthorization {
        credential,
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        signed_headers: names,
        signature,
        amz_date,
        security_token,
    })
}

/// Rejects a credential scope date that is not the date of `X-Amz-Date`.
pub(crate) fn check_scope_date(scope_date: &str, amz_date: &str) -> Result<(), Sigv4Error> {
    let amz_day = amz_date.get(..8).unwrap_or(amz_date);
    if scope_date != amz_day {
        return Err(Sigv4Error::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{scope_date}' != '{amz_day}', from '{amz_date}'."
        )));
    }
    Ok(())
}

/// The error for an `X-Amz-Date` that is not a valid `yyyymmddThhmmssZ` timestamp.
pub(crate) fn malformed_date(amz_date: &str) -> Sigv4Error {
    incomplete(format!(
        "X-Amz-Date must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z', got '{amz_date}'."
    ))
}

/// The error for a signature that does not cover the `Host` header.
pub(crate) fn host_not_signed() -> Sigv4Error {
    incomplete(
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
    )
}

/// The parts of `Credential=AKID/yyyymmdd/region/service/aws4_request`.
struct CredentialScope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

fn parse_credential(credential: &str) -> Result<CredentialScope<'_>, Sigv4Error> {
    let mut parts = credential.split('/');
    let (access_key_id, date, region, service, terminator) = match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(key), Some(date), Some(region), Some(service), Some(terminator), None) => {
            (key, date, region, service, terminator)
        }
        _ => {
            return Err(incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, \
                 e.g. keyid/date/region/service/term, got '{credential}'"
            )));
        }
    };
    if terminator != TERMINATOR {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        )));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete(format!(
            "Credential must not have empty elements, got '{credential}'"
        )));
    }
    if date.len() != 8 || !date.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(incomplete(format!(
            "Credential date must be in the format yyyyMMdd, got '{date}'."
        )));
    }
    Ok(CredentialScope {
        access_key_id,
        date,
        region,
        service,
    })
}

/// The text of a header that may appear at most once, or a message saying what is wrong.
fn single_header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let value = match values.next() {
        Some(value) => value,
        None => return Ok(None),
    };
    if values.next().is_some() {
        return Err(format!("Only one '{name}' header may be specified."));
    }
    match value.to_str() {
        Ok(text) => Ok(Some(text)),
        Err(_) => Err(format!("The '{name}' header must be visible ASCII text.")),
    }
}

fn incomplete(message: String) -> Sigv4Error {
    Sigv4Error::IncompleteSignature(message)
}
