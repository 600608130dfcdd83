//! The in-process cost of the cryptography behind each measured operation, with the same library the
//! server uses (aws-lc-rs) and no HTTP, authentication or storage: the ceiling the service is compared with.
//!
//! Each measurement runs one thread per available core for the given time, like a server that keeps
//! every core busy with that operation alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use aws_lc_rs::{hkdf, hmac, rsa};

/// One in-process measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// The served operation this corresponds to (the same name as its row in the report).
    pub name: String,
    /// Operations per second over every thread.
    pub per_second: f64,
}

/// The message signed and MACed by the benchmark, in process and over the wire.
pub(crate) const MESSAGE: [u8; 64] = [0x5a; 64];

/// Measures each operation for `duration`.
pub fn measure(duration: Duration) -> anyhow::Result<Vec<RawRow>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let rng = SystemRandom::new();

    let material = [7u8; 32];
    let prk = Arc::new(hkdf::Salt::new(hkdf::HKDF_SHA256, &material).extract(b"bench"));
    let plaintext = [0u8; crate::PLAINTEXT_LEN];
    let encrypt = move || {
        // As the default key store does per message: derive a key from a fresh nonce, then seal.
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system generator works");
        let info = [b"message-key".as_slice(), &nonce];
        let okm = prk.expand(&info, &AES_256_GCM).expect("a 32-byte key");
        let key = LessSafeKey::new(UnboundKey::from(okm));
        let mut buffer = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::from(b"header"),
            &mut buffer,
        )
        .expect("sealing works");
    };

    let p256 = Arc::new(
        EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .context("generate a P-256 key")?,
    );
    let p256_sign = {
        let key = p256.clone();
        let rng = rng.clone();
        move || {
            std::hint::black_box(key.sign(&rng, &MESSAGE).expect("signing works"));
        }
    };
    let p256_signature = p256.sign(&rng, &MESSAGE).context("sign")?;
    let p256_public = p256.public_key().as_ref().to_vec();
    let p256_signature = p256_signature.as_ref().to_vec();
    let p256_verify = move || {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &p256_public)
            .verify(&MESSAGE, &p256_signature)
            .expect("the signature verifies");
    };

    let rsa =
        Arc::new(rsa::KeyPair::generate(rsa::KeySize::Rsa2048).context("generate an RSA key")?);
    let rsa_sign = move || {
        let mut out = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PSS_SHA256, &rng, &MESSAGE, &mut out)
            .expect("signing works");
    };

    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, &[9u8; 32]);
    let mac = move || {
        std::hint::black_box(hmac::sign(&mac_key, &MESSAGE));
    };

    Ok(vec![
        run("Encrypt", threads, duration, encrypt),
        run("Sign ECC_NIST_P256", threads, duration, p256_sign),
        run("Sign RSA_2048", threads, duration, rsa_sign),
        run("Verify ECC_NIST_P256", threads, duration, p256_verify),
        run("GenerateMac HMAC_256", threads, duration, mac),
    ])
}

fn run(
    name: &str,
    threads: usize,
    duration: Duration,
    operation: impl Fn() + Send + Sync + Clone + 'static,
) -> RawRow {
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let operation = operation.clone();
            std::thread::spawn(move || {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..16 {
                        operation();
                    }
                    count += 16;
                }
                count
            })
        })
        .collect();
    let total: u64 = handles
        .into_iter()
        .map(|handle| handle.join().unwrap_or(0))
        .sum();
    RawRow {
        name: name.to_owned(),
        per_second: total as f64 / started.elapsed().as_secs_f64(),
    }
}
