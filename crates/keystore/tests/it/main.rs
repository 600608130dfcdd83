//! Known-answer tests of the default key store's asymmetric and HMAC cryptography, against Wycheproof and
//! NIST vectors kept as JSON in `tests/vectors` (its README says where each file comes from and what was
//! kept).
//!
//! Each test reads a vector file, runs every case through the key store's public API (`PrivateKey`,
//! `HmacKey`, `verify_public`), and collects every disagreement before failing, so one run shows all of
//! them. Where a vector's parameters differ from what AWS KMS does with the same algorithm name (a PSS
//! salt length, an OAEP label, an ML-DSA context, a truncated MAC), the expected outcome is KMS's: reject.

mod ecdh;
mod eddsa;
mod hmac;
mod mldsa;
mod rsa;
mod signatures;
mod vectors;
