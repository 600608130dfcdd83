//! The little DER this crate needs: public keys as SubjectPublicKeyInfo, and EC points.
//!
//! A cluster's CSR and certificates need the public key as SubjectPublicKeyInfo, which PKCS#11
//! 2.40 tokens do not provide; writing the few fixed structures by hand avoids an ASN.1 crate.

/// OID 1.2.840.113549.1.1.1, rsaEncryption.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID 1.2.840.10045.2.1, id-ecPublicKey.
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// Length of an uncompressed P-256 point: `04 || X || Y`.
const P256_POINT_LEN: usize = 65;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::new();
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// SubjectPublicKeyInfo of an RSA key from its modulus and public exponent.
pub(crate) fn rsa_spki(modulus: &[u8], public_exponent: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(modulus);
    key.extend(unsigned_integer(public_exponent));
    let rsa_public_key = tlv(SEQUENCE, &key);
    let mut algorithm = tlv(OID, RSA_ENCRYPTION);
    algorithm.extend(tlv(NULL, &[]));
    let mut spki = tlv(SEQUENCE, &algorithm);
    spki.extend(bit_string(&rsa_public_key));
    tlv(SEQUENCE, &spki)
}

/// SubjectPublicKeyInfo of an EC key from its curve (`CKA_EC_PARAMS`, a DER OID) and raw point.
pub(crate) fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    let mut algorithm = tlv(OID, EC_PUBLIC_KEY);
    algorithm.extend_from_slice(curve);
    let mut spki = tlv(SEQUENCE, &algorithm);
    spki.extend(bit_string(point));
    tlv(SEQUENCE, &spki)
}

/// The raw uncompressed P-256 point from `CKA_EC_POINT`, which tokens give either DER-wrapped
/// in an OCTET STRING (as PKCS#11 says) or raw (as some tokens do).
pub(crate) fn p256_point(ec_point: &[u8]) -> Option<&[u8]> {
    match ec_point {
        [0x04, ..] if ec_point.len() == P256_POINT_LEN => Some(ec_point),
        [OCTET_STRING, len, rest @ ..] if usize::from(*len) == rest.len() => {
            (rest.len() == P256_POINT_LEN && rest[0] == 0x04).then_some(rest)
        }
        _ => None,
    }
}
