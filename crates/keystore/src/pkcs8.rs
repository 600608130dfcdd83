//! The private-key seeds inside stored PKCS#8 documents, for the two operations aws-lc-rs does not offer
//! (Ed25519ph and ML-DSA with an external μ), which another library performs with the same key.
//!
//! Only the few fixed layouts aws-lc-rs writes and accepts are read, with a minimal DER walk rather than
//! an ASN.1 crate: PrivateKeyInfo (RFC 5958) with the key's algorithm identifier, whose `privateKey`
//! OCTET STRING holds an Ed25519 `CurvePrivateKey` (RFC 8410) or an ML-DSA private key in seed or
//! seed-and-expanded form (RFC 9881). The seed is copied only into a `Zeroizing` buffer.

use zeroize::Zeroizing;

/// The DER of the OID 1.3.101.112 (id-Ed25519), as an AlgorithmIdentifier's content.
const ED25519_ALGORITHM: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// One DER element: its tag, its content, and what follows it. Lengths of up to two bytes in long form
/// are enough for every layout read here.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        0x82 => {
            let (bytes, rest) = rest.split_at_checked(2)?;
            ((usize::from(bytes[0]) << 8) | usize::from(bytes[1]), rest)
        }
        _ => return None,
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The content of PrivateKeyInfo's `privateKey` OCTET STRING, when the algorithm identifier's content is
/// exactly `algorithm` (an OID without parameters).
fn private_key_octets<'a>(pkcs8: &'a [u8], algorithm: &[u8]) -> Option<&'a [u8]> {
    let (0x30, info, b"") = element(pkcs8)? else {
        return None;
    };
    let (0x02, version, rest) = element(info)? else {
        return None;
    };
    if version != [0] && version != [1] {
        return None;
    }
    let (0x30, identifier, rest) = element(rest)? else {
        return None;
    };
    if identifier != algorithm {
        return None;
    }
    match element(rest)? {
        (0x04, octets, _) => Some(octets),
        _ => None,
    }
}

fn seed_of(bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(bytes.get(..32).filter(|_| bytes.len() == 32)?);
    Some(seed)
}

/// The 32-byte Ed25519 private key (RFC 8032's seed) inside an Ed25519 PKCS#8 document, version 1 or 2.
pub(crate) fn ed25519_seed(pkcs8: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let octets = private_key_octets(pkcs8, ED25519_ALGORITHM)?;
    match element(octets)? {
        (0x04, seed, b"") => seed_of(seed),
        _ => None,
    }
}
/// The 32-byte ML-DSA seed ξ inside an ML-DSA PKCS#8 document whose parameter set is the last arc of the
/// OID 2.16.840.1.101.3.4.3.{17,18,19}. `None` when the document holds only the expanded private key,
/// from which the seed cannot be recovered.
pub(crate) fn ml_dsa_seed(pkcs8: &[u8], oid_arc: u8) -> Option<Zeroizing<[u8; 32]>> {
    let algorithm = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, oid_arc,
    ];
    let octets = private_key_octets(pkcs8, &algorithm)?;
    match element(octets)? {
        // seed [0] IMPLICIT OCTET STRING (SIZE (32)), the form aws-lc-rs writes.
        (0x80, seed, b"") => seed_of(seed),
        // both SEQUENCE { seed OCTET STRING (SIZE (32)), expandedKey OCTET STRING }.
        (0x30, both, b"") => match element(both)? {
            (0x04, seed, _) => seed_of(seed),
            _ => None,
        },
        _ => None,
    }
}
