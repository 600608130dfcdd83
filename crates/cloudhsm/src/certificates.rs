//! Checks of the certificates `InitializeCluster` installs: the trust anchor is a self-signed CA, the
//! cluster certificate carries the cluster's own public key, and the chain from one to the other
//! verifies.
//!
//! Parsing is `x509-parser`'s; signatures are checked with `aws-lc-rs`, the workspace's one crypto
//! library, for the algorithms CAs use today (RSA PKCS#1 v1.5 and ECDSA on P-256 and P-384).

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use strongroom_storage::clusters::ClusterCertificates;
use x509_parser::prelude::{
    ASN1Time, FromDer, Pem, SubjectPublicKeyInfo, X509Certificate, parse_x509_certificate,
};

use crate::error::Error;

/// The DER of the certificates that passed, to be written onto the HSMs.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The cluster certificate.
    pub(crate) cluster_certificate: Vec<u8>,
    /// The trust anchor.
    pub(crate) trust_anchor: Vec<u8>,
}

/// Checks `signed_cert` (the cluster certificate, optionally followed by intermediate CA
/// certificates) and `trust_anchor` (one self-signed CA certificate) for a cluster whose key pair
/// has the public key `cluster_key` (SubjectPublicKeyInfo DER), at time `now_secs`.
pub(crate) fn check(
    signed_cert: &str,
    trust_anchor: &str,
    cluster_key: &[u8],
    now_secs: i64,
) -> Result<Checked, Error> {
    let anchor_ders = pem_certificates(trust_anchor, "TrustAnchor")?;
    let [anchor_der] = anchor_ders.as_slice() else {
        return Err(invalid(format!(
            "TrustAnchor must hold exactly one certificate, the self-signed root of your CA; it holds {}.",
            anchor_ders.len()
        )));
    };
    let chain_ders = pem_certificates(signed_cert, "SignedCert")?;
    let anchor = parse(anchor_der, "TrustAnchor")?;
    let mut chain = Vec::new();
    for (index, der) in chain_ders.iter().enumerate() {
        chain.push(parse(
            der,
            &format!("certificate {} of SignedCert", index + 1),
        )?);
    }
    let now = ASN1Time::from_timestamp(now_secs)
        .map_err(|_| Error::internal("the clock is outside the range of X.509 times"))?;

    check_anchor(&anchor, now)?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(
            "SignedCert holds no certificate: give the cluster certificate your CA issued for the ClusterCsr, in PEM."
                .to_owned(),
        ));
    };
    if !same_public_key(leaf.public_key(), cluster_key)? {
        return Err(invalid(
            "The public key in SignedCert is not this cluster's key: sign the ClusterCsr that DescribeClusters \
             returns for this cluster, not another request."
                .to_owned(),
        ));
    }
    for (index, cert) in chain.iter().enumerate() {
        let what = match index {
            0 => "the cluster certificate".to_owned(),
            n => format!("intermediate certificate {n} of SignedCert"),
        };
        if !cert.validity().is_valid_at(now) {
            return Err(invalid(format!(
                "{} is not valid now (valid from {} to {}).",
                capitalize(&what),
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        let (issuer, issuer_name) = match chain.get(index + 1) {
            Some(next) => (
                next,
                format!("intermediate certificate {} of SignedCert", index + 1),
            ),
            None => (&anchor, "the TrustAnchor".to_owned()),
        };
        if cert.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(invalid(format!(
                "{} was issued by '{}', but {issuer_name} is '{}': the TrustAnchor must be the root of the CA \
                 that signed the cluster certificate.",
                capitalize(&what),
                cert.issuer(),
                issuer.subject()
            )));
        }
        if index > 0 && !cert.is_ca() {
            return Err(invalid(format!(
                "{} is not a CA certificate.",
                capitalize(&what)
            )));
        }
        verify_signature(cert, issuer.public_key()).map_err(|reason| {
            invalid(format!(
                "The signature on {what} does not verify with the public key of {issuer_name}: {reason}."
            ))
        })?;
    }
    Ok(Checked {
        cluster_certificate: chain_ders[0].clone(),
        trust_anchor: anchor_der.clone(),
    })
}

/// The DER of certificates [`check`] accepted earlier, read back from the PEM stored then.
pub(crate) fn reparse(installed: &ClusterCertificates) -> Result<Checked, Error> {
    let chain = pem_certificates(&installed.cluster_certificate_pem, "The stored SignedCert")?;
    let anchor = pem_certificates(&installed.trust_anchor_pem, "The stored TrustAnchor")?;
    match (chain.into_iter().next(), anchor.into_iter().next()) {
        (Some(cluster_certificate), Some(trust_anchor)) => Ok(Checked {
            cluster_certificate,
            trust_anchor,
        }),
        _ => Err(Error::internal("stored certificates are missing")),
    }
}

/// Checks that `leaf` (the DER of a cluster certificate as an HSM holds it), with the intermediate CA
/// certificates that follow the cluster certificate in `signed_cert_pem`, chains to `trust_anchor_pem` at
/// time `now_secs`: what a client checks before it trusts an HSM. The error says why not, in words.
pub(crate) fn chains_to(
    leaf: &[u8],
    signed_cert_pem: &str,
    trust_anchor_pem: &str,
    now_secs: i64,
) -> Result<(), String> {
    let anchor_ders =
        pem_certificates(trust_anchor_pem, "TrustAnchor").map_err(|e| e.to_string())?;
    let [anchor_der] = anchor_ders.as_slice() else {
        return Err("the trust anchor holds more than one certificate".to_owned());
    };
    let anchor = parse(anchor_der, "the trust anchor").map_err(|e| e.to_string())?;
    let stored = pem_certificates(signed_cert_pem, "SignedCert").map_err(|e| e.to_string())?;
    let mut chain = vec![parse(leaf, "the HSM's cluster certificate").map_err(|e| e.to_string())?];
    for (index, der) in stored.iter().enumerate().skip(1) {
        chain.push(
            parse(der, &format!("intermediate certificate {index}")).map_err(|e| e.to_string())?,
        );
    }
    let now = ASN1Time::from_timestamp(now_secs)
        .map_err(|_| "the clock is outside the range of X.509 times".to_owned())?;
    for (index, cert) in chain.iter().enumerate() {
        let issuer = chain.get(index + 1).unwrap_or(&anchor);
        if !cert.validity().is_valid_at(now) {
            return Err(format!("certificate {index} of the chain is not valid now"));
        }
        if cert.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(format!(
                "certificate {index} of the chain was issued by '{}', not by '{}'",
                cert.issuer(),
                issuer.subject()
            ));
        }
        verify_signature(cert, issuer.public_key())
            .map_err(|reason| format!("certificate {index} of the chain: {reason}"))?;
    }
    Ok(())
}

/// The trust anchor must be a root: self-issued, self-signed, a CA if it says what it is, and current.
fn check_anchor(anchor: &X509Certificate<'_>, now: ASN1Time) -> Result<(), Error> {
    if anchor.issuer().as_raw() != anchor.subject().as_raw() {
        return Err(invalid(format!(
            "The TrustAnchor must be a self-signed certificate, but its issuer '{}' differs from its subject '{}'.",
            anchor.issuer(),
            anchor.subject()
        )));
    }
    verify_signature(anchor, anchor.public_key()).map_err(|reason| {
        invalid(format!(
            "The TrustAnchor must be a self-signed certificate, but its signature does not verify with its own \
             public key: {reason}."
        ))
    })?;
    match anchor.basic_constraints() {
        Ok(Some(constraints)) if !constraints.value.ca => {
            return Err(invalid(
                "The TrustAnchor's Basic Constraints say it is not a CA (cA is false).".to_owned(),
            ));
        }
        Ok(_) => {}
        Err(_) => {
            return Err(invalid(
                "The TrustAnchor has more than one Basic Constraints extension.".to_owned(),
            ));
        }
    }
    if !anchor.validity().is_valid_at(now) {
        return Err(invalid(format!(
            "The TrustAnchor is not valid now (valid from {} to {}).",
            anchor.validity().not_before,
            anchor.validity().not_after
        )));
    }
    Ok(())
}

/// The DER of every `CERTIFICATE` block in `text`.
fn pem_certificates(text: &str, field: &str) -> Result<Vec<Vec<u8>>, Error> {
    let mut ders = Vec::new();
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| {
            invalid(format!(
                "{field} is not valid PEM ({e}): give the certificate in PEM format."
            ))
        })?;
        if block.label != "CERTIFICATE" {
            return Err(invalid(format!(
                "{field} holds a PEM block labelled '{}'; only CERTIFICATE blocks are accepted.",
                block.label
            )));
        }
        ders.push(block.contents);
    }
    if ders.is_empty() {
        return Err(invalid(format!(
            "{field} holds no PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)."
        )));
    }
    Ok(ders)
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, Error> {
    match parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(invalid(format!(
            "{} has bytes after the certificate.",
            capitalize(what)
        ))),
        Err(e) => Err(invalid(format!(
            "{} is not an X.509 certificate: {e}.",
            capitalize(what)
        ))),
    }
}

/// Whether a certificate's key is the cluster key: the key bits and algorithm are compared, not the
/// whole encoding, because CAs re-encode the algorithm parameters.
fn same_public_key(
    certified: &SubjectPublicKeyInfo<'_>,
    cluster_key: &[u8],
) -> Result<bool, Error> {
    let Ok((_, ours)) = SubjectPublicKeyInfo::from_der(cluster_key) else {
        return Err(Error::internal(
            "the stored cluster public key does not parse",
        ));
    };
    Ok(certified.algorithm.algorithm == ours.algorithm.algorithm
        && certified.subject_public_key.data == ours.subject_public_key.data)
}

/// Verifies `cert`'s signature with `issuer_key`; the error says why in words.
fn verify_signature(
    cert: &X509Certificate<'_>,
    issuer_key: &SubjectPublicKeyInfo<'_>,
) -> Result<(), String> {
    let signature_oid = cert.signature_algorithm.algorithm.to_id_string();
    let curve = issuer_key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|params| params.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let algorithm: &'static dyn VerificationAlgorithm = match (
        signature_oid.as_str(),
        curve.as_deref(),
    ) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.2", Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some(P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.3", Some(P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (oid, _) => {
            return Err(format!(
                "signature algorithm {oid} with this issuer key is not supported (use RSA PKCS#1 v1.5 with \
                     SHA-256/384/512, or ECDSA with SHA-256/384 on P-256 or P-384)"
            ));
        }
    };
    let key = UnparsedPublicKey::new(algorithm, issuer_key.subject_public_key.data.as_ref());
    key.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| "the signature is invalid".to_owned())
}

const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

fn invalid(message: String) -> Error {
    Error::InvalidRequest(message)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
