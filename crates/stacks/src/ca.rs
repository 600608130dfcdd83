//! Signing the cluster's CSR with the operator's CA, as `openssl x509 -req -CA ... -CAkey ...` does in
//! the manual bring-up (docs/HSM-KEY-STORES.md, step 4).
//!
//! The CA key comes from the stack's secret source and is dropped (wiped, by rcgen and aws-lc-rs) as
//! soon as the certificate is signed. The key is checked against the CA certificate first, so a CA
//! that does not match is reported as such instead of as a broken chain later.

use base64::Engine;
use rcgen::{CertificateSigningRequestParams, Issuer, KeyPair, PublicKeyData};
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::parse_x509_certificate;
use zeroize::Zeroizing;

/// Signs `csr_pem` with the CA (`ca_certificate_pem`, `ca_key_pem`); returns the certificate in PEM.
pub(crate) fn sign_csr(
    csr_pem: &str,
    ca_certificate_pem: &str,
    ca_key_pem: &str,
) -> Result<String, String> {
    let certificate_der = pem_contents(ca_certificate_pem, "CERTIFICATE")
        .map_err(|e| format!("the CA certificate is not a PEM certificate: {e}"))?;
    let key_der = Zeroizing::new(
        pem_contents(ca_key_pem, "PRIVATE KEY")
            .map_err(|e| format!("the CA private key is not a PEM private key: {e}"))?,
    );
    let key = KeyPair::try_from(key_der.as_slice()).map_err(|e| {
        format!(
            "the CA private key cannot be used (PKCS#8, PKCS#1 or SEC1 RSA or ECDSA keys are): {e}"
        )
    })?;
    let (_, certificate) = parse_x509_certificate(&certificate_der)
        .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    if certificate.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(format!(
            "the CA private key does not belong to the CA certificate ({}): put the matching key and certificate \
             in their secrets",
            certificate.subject()
        ));
    }
    let csr_der = pem_contents(csr_pem, "CERTIFICATE REQUEST")
        .map_err(|e| format!("the cluster CSR is not PEM: {e}"))?;
    let request = CertificateSigningRequestParams::from_der(&csr_der.into())
        .map_err(|e| format!("the cluster CSR does not parse or its signature is wrong: {e}"))?;
    let issuer = Issuer::from_ca_cert_der(&certificate_der.clone().into(), &key)
        .map_err(|e| format!("the CA certificate cannot issue certificates: {e}"))?;
    let signed = request
        .signed_by(&issuer)
        .map_err(|e| format!("signing the cluster CSR failed: {e}"))?;
    Ok(pem("CERTIFICATE", signed.der()))
}

/// The DER contents of the first PEM block whose label ends with `label` (so `PRIVATE KEY` also
/// accepts `RSA PRIVATE KEY` and `EC PRIVATE KEY`).
fn pem_contents(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let mut rest = text.as_bytes();
    loop {
        let (remaining, block) = parse_x509_pem(rest).map_err(|e| e.to_string())?;
        if block.label.ends_with(label) {
            return Ok(block.contents);
        }
        if remaining.len() == rest.len() || remaining.is_empty() {
            return Err(format!("no {label} block found"));
        }
        rest = remaining;
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
