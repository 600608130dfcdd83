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
