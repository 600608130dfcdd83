//! The cluster CSR: a PKCS#10 certification request (RFC 2986) signed inside the HSM.
//!
//! The request is encoded here by hand rather than with `rcgen` because `rcgen` wants to hold the
//! signing key, or at least a signer it can call synchronously through its own trait, and the
//! cluster's private key lives in an HSM that is reached through the PKCS#11 layer. The structure is
//! small and fixed (one name attribute, the public key the HSM returned, no request attributes, one
//! signature algorithm), so a few lines of DER are simpler and easier to audit than adapting a
//! library; the tests parse the result with `x509-parser` and verify its signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// DER of the OID 2.5.4.3, `commonName`.
const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// DER of the OID 1.2.840.113549.1.1.11, `sha256WithRSAEncryption`.
const SHA256_WITH_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
];
const NULL: &[u8] = &[0x05, 0x00];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const UTF8_STRING: u8 = 0x0c;
/// `[0] IMPLICIT`, constructed: the request's (empty) attribute set.
const ATTRIBUTES: u8 = 0xa0;

/// The `CertificationRequestInfo` for a subject `CN=<common_name>` and a public key given as
/// SubjectPublicKeyInfo DER: the bytes the HSM signs.
pub(crate) fn request_info(common_name: &str, public_key_info: &[u8]) -> Vec<u8> {
    let version = tlv(INTEGER, &[0x00]);
    let name_value = tlv(UTF8_STRING, common_name.as_bytes());
    let attribute = tlv(SEQUENCE, &[COMMON_NAME, &name_value].concat());
    let subject = tlv(SEQUENCE, &tlv(SET, &attribute));
    let attributes = tlv(ATTRIBUTES, &[]);
    tlv(
        SEQUENCE,
        &[version.as_slice(), &subject, public_key_info, &attributes].concat(),
    )
}

/// The whole `CertificationRequest`: the signed info, the algorithm (`sha256WithRSAEncryption`, what
/// `CKM_SHA256_RSA_PKCS` produces) and the signature.
pub(crate) fn request(info: &[u8], signature: &[u8]) -> Vec<u8> {
    let algorithm = tlv(SEQUENCE, &[SHA256_WITH_RSA, NULL].concat());
    // A BIT STRING starts with the count of unused bits in its last byte: none here.
    let signature = tlv(BIT_STRING, &[&[0x00], signature].concat());
    tlv(SEQUENCE, &[info, &algorithm, &signature].concat())
}

/// PEM armour with 64-character lines, as OpenSSL writes it.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER element: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        // Long form: 0x80 plus the count of length bytes, then the length big-endian without
        // leading zeros.
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|byte| **byte == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}
