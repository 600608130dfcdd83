//! Unit tests of the parts that need no HSM: DER encoding, secrets, error classification.

use cryptoki::context::Function;
use cryptoki::error::{Error as Pkcs11Error, RvError};

use crate::config::{Pin, SecretSource};
use crate::der;
use crate::error::{self, Error, Role};

#[test]
fn rsa_spki_matches_a_known_encoding() {
    // A toy key whose encoding was checked by hand: modulus 0x80 needs a leading zero byte.
    let spki = der::rsa_spki(&[0x00, 0x80], &[0x01, 0x00, 0x01]);
    assert_eq!(
        spki,
        [
            0x30, 0x1d, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
            0x01, 0x05, 0x00, 0x03, 0x0c, 0x00, 0x30, 0x09, 0x02, 0x02, 0x00, 0x80, 0x02, 0x03,
            0x01, 0x00, 0x01,
        ]
    );
}

#[test]
fn long_lengths_use_the_long_form() {
    let modulus = vec![0xc5; 256];
    let spki = der::rsa_spki(&modulus, &[0x01, 0x00, 0x01]);
    // 2048-bit keys give the usual 294-byte SubjectPublicKeyInfo.
    assert_eq!(spki.len(), 294);
    assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
}

#[test]
fn ec_points_are_accepted_raw_or_wrapped() {
    let mut raw = vec![0x04];
    raw.extend([7; 64]);
    let mut wrapped = vec![0x04, 0x41];
    wrapped.extend(&raw);
    assert_eq!(der::p256_point(&raw), Some(raw.as_slice()));
    assert_eq!(der::p256_point(&wrapped), Some(raw.as_slice()));
    assert_eq!(der::p256_point(&raw[..30]), None);
}

#[test]
fn secrets_come_from_files_without_the_newline() {
    let dir = std::env::temp_dir().join(format!("strongroom-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("so.pin");
    std::fs::write(&path, "s3cret-officer\n").unwrap();
    let pin = SecretSource::File(path.clone()).load().unwrap();
    assert_eq!(pin.expose(), "s3cret-officer");
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(
        SecretSource::File(path).load(),
        Err(Error::Secret { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_environment_secrets_are_reported() {
    let source = SecretSource::Env("STRONGROOM_TEST_SURELY_UNSET_VARIABLE".to_owned());
    assert!(matches!(source.load(), Err(Error::Secret { .. })));
}

#[test]
fn pins_do_not_print() {
    assert_eq!(format!("{:?}", Pin::new("hunter2".to_owned())), "Pin(..)");
}

#[test]
fn login_failures_keep_their_meaning() {
    let login = |code| {
        error::login_error(
            "hsm-a",
            Role::CryptoUser,
            Pkcs11Error::Pkcs11(code, Function::Login),
        )
    };
    assert!(matches!(
        login(RvError::PinIncorrect),
        Error::InvalidCredentials { .. }
    ));
    assert!(matches!(
        login(RvError::PinLocked),
        Error::UserLockedOut { .. }
    ));
    assert!(matches!(
        login(RvError::UserPinNotInitialized),
        Error::UserNotFound { .. }
    ));
    assert!(matches!(
        login(RvError::UserAlreadyLoggedIn),
        Error::UserLoggedIn { .. }
    ));
    assert!(matches!(
        login(RvError::UserAnotherAlreadyLoggedIn),
        Error::UserLoggedIn { .. }
    ));
    assert!(login(RvError::DeviceRemoved).is_device_failure());
    assert!(matches!(
        login(RvError::ArgumentsBad),
        Error::Rejected { .. }
    ));
}
