//! A private SoftHSM per test: its own configuration, token directory and process.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when the library is initialized, and a library can be
//! initialized once per process; the environment cannot be changed safely from a running test
//! either. So each test re-runs this test binary, filtered to itself, with `SOFTHSM2_CONF`
//! pointing at a fresh directory under `target/`, and the child runs the body against three
//! freshly initialized tokens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::session::{Session, UserType};
use strongroom_keystore_pkcs11::{
    Cluster, ClusterOptions, HsmConfig, Module, ModuleSet, Pin, SecretSource,
};

/// Where Debian's `softhsm2` package puts the module; `cargo xtask test` installs it.
pub(crate) const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Set in the child process to the test's private directory.
const CHILD_DIR: &str = "STRONGROOM_SOFTHSM_TEST_DIR";
const SO_PIN: &str = "officer-Passw0rd";
pub(crate) const USER_PIN: &str = "kmsuser-Passw0rd";
/// The three tokens every test starts with, and their availability zones.
pub(crate) const TOKENS: [(&str, &str); 3] = [
    ("hsm-a", "us-east-1a"),
    ("hsm-b", "us-east-1b"),
    ("hsm-c", "us-east-1c"),
];
pub(crate) const ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// Declares a test whose body runs in a child process with a private SoftHSM.
macro_rules! softhsm_test {
    ($name:ident, |$fixture:ident| $body:block) => {
        #[test]
        fn $name() {
            let path = concat!(module_path!(), "::", stringify!($name));
            $crate::fixture::with_softhsm(path, |$fixture| $body);
        }
    };
}
pub(crate) use softhsm_test;

/// Runs `body` in the child, or starts the child when called in the parent.
pub(crate) fn with_softhsm(test_path: &str, body: impl FnOnce(Fixture)) {
    match std::env::var_os(CHILD_DIR) {
        Some(dir) => body(Fixture::new(PathBuf::from(dir))),
        None => run_in_child(test_path),
    }
}

fn run_in_child(test_path: &str) {
    assert!(
        Path::new(SOFTHSM).exists(),
        "SoftHSM is not installed: run `cargo xtask test` or `apt-get install softhsm2`"
    );
    // The module path starts with the test crate's name, which the test filter does not include.
    let filter = test_path
        .split_once("::")
        .map_or(test_path, |(_, rest)| rest);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("softhsm")
        .join(format!(
            "{}-{}",
            filter.replace("::", "-"),
            std::process::id()
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let config = dir.join("softhsm2.conf");
    std::fs::write(
        &config,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([filter, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &config)
        .env(CHILD_DIR, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "the test failed in its SoftHSM child process:\n{stdout}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child process ran no test:\n{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Three initialized tokens (no crypto user yet) and the means to build clusters over them.
pub(crate) struct Fixture {
    pub(crate) dir: PathBuf,
    pub(crate) modules: ModuleSet,
    pub(crate) module: Module,
    so_pin_file: PathBuf,
    token_dirs: HashMap<String, PathBuf>,
}

impl Fixture {
    fn new(dir: PathBuf) -> Fixture {
        let so_pin_file = dir.join("so.pin");
        std::fs::write(&so_pin_file, format!("{SO_PIN}\n")).unwrap();
        let modules = ModuleSet::new();
        let module = modules.load(Path::new(SOFTHSM)).unwrap();
        let so_pin = SecretSource::File(so_pin_file.clone()).load().unwrap();
        let mut token_dirs = HashMap::new();
        for (label, _) in TOKENS {
            let before = token_directories(&dir);
            module.initialize_token(&so_pin, label).unwrap();
            let created: Vec<PathBuf> = token_directories(&dir)
                .into_iter()
                .filter(|path| !before.contains(path))
                .collect();
            assert_eq!(created.len(), 1, "one token directory per token");
            token_dirs.insert(label.to_owned(), created[0].clone());
        }
        Fixture {
            dir,
            modules,
            module,
            so_pin_file,
            token_dirs,
        }
    }

    pub(crate) fn config(&self, id: &str) -> HsmConfig {
        let zone = TOKENS
            .iter()
            .find(|(label, _)| *label == id)
            .map_or("us-east-1d", |(_, zone)| zone);
        HsmConfig {
            id: id.to_owned(),
            module: PathBuf::from(SOFTHSM),
            token_label: id.to_owned(),
            availability_zone: zone.to_owned(),
            so_pin: SecretSource::File(self.so_pin_file.clone()),
        }
    }

    pub(crate) fn options() -> ClusterOptions {
        ClusterOptions {
            sessions_per_hsm: 4,
            session_wait: Duration::from_secs(5),
            key_availability_quorum: 2,
            // Requests probe degraded HSMs at once, so tests need no sleeping.
            probe_interval: Duration::ZERO,
            events: None,
        }
    }

    /// A cluster over `ids`, nobody logged in, no crypto user, no wrapping key.
    pub(crate) fn open(&self, ids: &[&str]) -> Cluster {
        let configs: Vec<HsmConfig> = ids.iter().map(|id| self.config(id)).collect();
        Cluster::open(&configs, &self.modules, Fixture::options()).unwrap()
    }

    /// A cluster over `ids` ready for keys: crypto user created and logged in, wrapping key shared.
    pub(crate) fn ready(&self, ids: &[&str]) -> Cluster {
        let cluster = self.open(ids);
        cluster.create_crypto_user(&user_pin()).unwrap();
        cluster.establish_wrapping_key().unwrap();
        cluster.login_crypto_user(&user_pin()).unwrap();
        cluster
    }

    /// The token directory SoftHSM created for `label`.
    pub(crate) fn token_dir(&self, label: &str) -> &Path {
        &self.token_dirs[label]
    }

    /// A fresh read/write session on the token `label`, not logged in by itself.
    pub(crate) fn session(&self, label: &str) -> Session {
        let pkcs11 = self.module.pkcs11();
        let slot = pkcs11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|slot| pkcs11.get_token_info(*slot).unwrap().label().trim_end() == label)
            .unwrap();
        pkcs11.open_rw_session(slot).unwrap()
    }

    /// A session on `label` in which the crypto user is logged in (perhaps by a cluster).
    pub(crate) fn user_session(&self, label: &str) -> Session {
        let session = self.session(label);
        match session.login(UserType::User, Some(&user_pin_raw(USER_PIN))) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => session,
            Err(err) => panic!("cannot log in to {label}: {err}"),
        }
    }

    /// Logs in to `label` with `pin` in a fresh session and out again; only meaningful when no
    /// cluster holds sessions on the token, since login state is per token.
    pub(crate) fn check_user_pin(&self, label: &str, pin: &str) -> Result<(), RvError> {
        let session = self.session(label);
        match session.login(UserType::User, Some(&user_pin_raw(pin))) {
            Ok(()) => {
                session.logout().unwrap();
                Ok(())
            }
            Err(Pkcs11Error::Pkcs11(code, _)) => Err(code),
            Err(err) => panic!("unexpected failure: {err}"),
        }
    }
}

pub(crate) fn user_pin() -> Pin {
    Pin::new(USER_PIN.to_owned())
}

fn user_pin_raw(pin: &str) -> cryptoki::types::AuthPin {
    cryptoki::types::AuthPin::from(pin)
}

fn token_directories(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("tokens"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}
