//! The default key store's root key on several PKCS#11 tokens (`[[root_key.replica]]`): made in one
//! token and copied to the others wrapped, it keeps the server serving keys when a token is gone, at
//! start and while running, and a token holding another key is refused.
//!
//! The tokens are SoftHSM tokens of the `cloudhsm` tests' private SoftHSM (see `cloudhsm::with_softhsm`).

use std::path::PathBuf;

use strongroom_keystore_pkcs11::{
    Cluster as Pkcs11Cluster, ClusterOptions, Fault, Pin, RootKeyToken, SecretSource,
};
use strongroom_server::{DEFAULT_ROOT_KEY_LABEL, Pkcs11RootKey, ReplicatedRootKey, RootKeyConfig};

use crate::cloudhsm::{SOFTHSM, SoftHsm, with_softhsm};
use crate::harness::{TempDir, TestServer, create_key, decrypt, encrypt};

const ROOT_PIN: &str = "root-user-Passw0rd";

/// The root key on `tokens`, each with the user PIN in `pin_file` and, when `so_pin`, the
/// Security Officer PIN of the test's SoftHSM.
fn replicated(softhsm: &SoftHsm, tokens: &[(&str, bool)]) -> RootKeyConfig {
    RootKeyConfig::Pkcs11Replicated(ReplicatedRootKey {
        key_label: DEFAULT_ROOT_KEY_LABEL.to_owned(),
        tokens: tokens
            .iter()
            .map(|(label, so_pin)| token(softhsm, label, *so_pin))
            .collect(),
    })
}

fn token(softhsm: &SoftHsm, label: &str, so_pin: bool) -> RootKeyToken {
    RootKeyToken {
        module: PathBuf::from(SOFTHSM),
        token_label: label.to_owned(),
        user_pin: SecretSource::File(PathBuf::from(softhsm.file("root.pin"))),
        so_pin: so_pin.then(|| SecretSource::File(PathBuf::from(softhsm.file("so.pin")))),
    }
}

/// Whether the root key is on each of `labels`, looked at with the tokens' user PIN.
fn holders(softhsm: &SoftHsm, labels: &[&str]) -> Vec<bool> {
    let configs: Vec<_> = softhsm
        .hsms
        .iter()
        .filter(|hsm| labels.contains(&hsm.token_label.as_str()))
        .cloned()
        .collect();
    let cluster = Pkcs11Cluster::open(&configs, &softhsm.modules, ClusterOptions::default())
        .expect("open the tokens");
    cluster
        .login_crypto_user(&Pin::new(ROOT_PIN.to_owned()))
        .expect("log in to the tokens");
    let found = cluster
        .key_exists(DEFAULT_ROOT_KEY_LABEL)
        .into_iter()
        .map(|answer| answer.result.expect("the token answers"))
        .collect();
    cluster.logout_crypto_user();
    found
}

#[test]
fn the_root_key_survives_the_loss_of_a_token() {
    with_softhsm(
        "root_key_replicas::the_root_key_survives_the_loss_of_a_token",
        survives_the_loss_of_a_token,
    );
}

async fn survives_the_loss_of_a_token(softhsm: SoftHsm) {
    // The operator gives each token a user PIN, as `softhsm2-util --init-token --pin` would.
    let tokens = Pkcs11Cluster::open(&softhsm.hsms, &softhsm.modules, ClusterOptions::default())
        .expect("open the tokens");
    tokens
        .create_crypto_user(&Pin::new(ROOT_PIN.to_owned()))
        .expect("set the user PINs");
    drop(tokens);
    std::fs::write(softhsm.file("root.pin"), format!("{ROOT_PIN}\n")).expect("write the user PIN");
    let data_dir = PathBuf::from(softhsm.file("data"));
    let marker = data_dir.join("root-key.pkcs11");

    // A new data directory on two tokens: the key is made in hsm-c and copied to hsm-d.
    let both = replicated(&softhsm, &[("hsm-c", true), ("hsm-d", true)]);
    let server = softhsm
        .server_with(|config| config.root_key = both.clone())
        .await;
    let kms = server.client();
    let (first_key, _) = create_key(&kms, "wrapped inside two tokens").await;
    let first = encrypt(&kms, &first_key, b"before any token was lost", &[]).await;
    server.stop().await;
    assert_eq!(holders(&softhsm, &["hsm-c", "hsm-d"]), [true, true]);
    let record = std::fs::read_to_string(&marker).expect("the data directory records its root key");
    assert!(
        record.contains("token_label = hsm-c\n") && record.contains("\ncheck = "),
        "{record}"
    );
    assert!(
        !record.contains(ROOT_PIN) && !record.contains("officer"),
        "{record}"
    );

    // hsm-d unusable at start (its PIN file is gone): hsm-c alone serves the old keys and new ones.
    let broken_pin = RootKeyConfig::Pkcs11Replicated(ReplicatedRootKey {
        key_label: DEFAULT_ROOT_KEY_LABEL.to_owned(),
        tokens: vec![
            token(&softhsm, "hsm-c", true),
            RootKeyToken {
                user_pin: SecretSource::File(PathBuf::from(softhsm.file("missing.pin"))),
                ..token(&softhsm, "hsm-d", true)
            },
        ],
    });
    let server = softhsm
        .server_with(|config| config.root_key = broken_pin.clone())
        .await;
    let kms = server.client();
    assert_eq!(
        decrypt(&kms, &first, &[]).await,
        b"before any token was lost"
    );
    let (second_key, _) = create_key(&kms, "made with hsm-d out").await;
    let second = encrypt(&kms, &second_key, b"with hsm-d out", &[]).await;
    server.stop().await;

    // hsm-c failing at start: hsm-d alone opens both.
    let module = softhsm.module();
    module.inject_fault("hsm-c", Some(Fault::Outage));
    let server = softhsm
        .server_with(|config| config.root_key = both.clone())
        .await;
    let kms = server.client();
    assert_eq!(
        decrypt(&kms, &first, &[]).await,
        b"before any token was lost"
    );
    assert_eq!(decrypt(&kms, &second, &[]).await, b"with hsm-d out");
    server.stop().await;
    module.inject_fault("hsm-c", None);

    // A running server: a token failing under it changes nothing for its callers, either token.
    let server = softhsm
        .server_with(|config| config.root_key = both.clone())
        .await;
    let kms = server.client();
    module.inject_fault("hsm-c", Some(Fault::Outage));
    // The first key is not in memory yet: its material is unwrapped now, by hsm-d.
    assert_eq!(
        decrypt(&kms, &first, &[]).await,
        b"before any token was lost"
    );
    let (third_key, _) = create_key(&kms, "made with hsm-c failing").await;
    let third = encrypt(&kms, &third_key, b"with hsm-c failing", &[]).await;
    module.inject_fault("hsm-c", None);
    module.inject_fault("hsm-d", Some(Fault::Outage));
    assert_eq!(decrypt(&kms, &second, &[]).await, b"with hsm-d out");
    let (fourth_key, _) = create_key(&kms, "made with hsm-d failing").await;
    assert_eq!(
        decrypt(
            &kms,
            &encrypt(&kms, &fourth_key, b"with hsm-d failing", &[]).await,
            &[]
        )
        .await,
        b"with hsm-d failing"
    );
    // Both failing: nothing can be wrapped, which shows the faults reached the running server.
    module.inject_fault("hsm-c", Some(Fault::Outage));
    assert!(
        kms.create_key().send().await.is_err(),
        "no key can be made without a token"
    );
    module.inject_fault("hsm-c", None);
    module.inject_fault("hsm-d", None);
    server.stop().await;

    // hsm-c is lost for good, and a new, empty token takes its place: start-up copies the key there.
    std::fs::remove_dir_all(softhsm.token_dir("hsm-c")).expect("remove hsm-c's token");
    let replaced = replicated(
        &softhsm,
        &[("hsm-c", true), ("hsm-d", true), ("hsm-b", true)],
    );
    let server = softhsm
        .server_with(|config| config.root_key = replaced.clone())
        .await;
    let kms = server.client();
    assert_eq!(decrypt(&kms, &third, &[]).await, b"with hsm-c failing");
    server.stop().await;
    assert_eq!(holders(&softhsm, &["hsm-b", "hsm-d"]), [true, true]);

    // The copy serves alone.
    module.inject_fault("hsm-d", Some(Fault::Outage));
    let server = softhsm
        .server_with(|config| config.root_key = replaced.clone())
        .await;
    let kms = server.client();
    for (ciphertext, plaintext) in [
        (&first, &b"before any token was lost"[..]),
        (&second, b"with hsm-d out"),
        (&third, b"with hsm-c failing"),
    ] {
        assert_eq!(decrypt(&kms, ciphertext, &[]).await, plaintext);
    }
    server.stop().await;
    module.inject_fault("hsm-d", None);

    // With every token gone, the server does not start, and makes no new key in their place.
    module.inject_fault("hsm-b", Some(Fault::Outage));
    module.inject_fault("hsm-d", Some(Fault::Outage));
    let modules = softhsm.modules.clone();
    let refused = TestServer::start_failure(&data_dir, |config| {
        config.root_key = replaced.clone();
        config.hsm_modules = modules.clone();
    })
    .await;
    assert!(
        refused.contains("no usable token holds the root key"),
        "{refused}"
    );
    assert!(!refused.contains(ROOT_PIN), "{refused}");
    module.inject_fault("hsm-b", None);
    module.inject_fault("hsm-d", None);

    // A token holding another root key under the same label is refused, with or without a record.
    let elsewhere = TempDir::new("other-root-key");
    let alone = replicated(&softhsm, &[("hsm-a", false)]);
    TestServer::start_in(elsewhere.path(), |config| {
        config.root_key = alone.clone();
        config.hsm_modules = modules.clone();
    })
    .await
    .stop()
    .await;
    let mixed = replicated(&softhsm, &[("hsm-d", false), ("hsm-a", false)]);
    let refused = TestServer::start_failure(&data_dir, |config| {
        config.root_key = mixed.clone();
        config.hsm_modules = modules.clone();
    })
    .await;
    assert!(
        refused.contains("token hsm-a holds a key labelled")
            && refused.contains("not the root key this data was wrapped with"),
        "{refused}"
    );
    let fresh = TempDir::new("mixed-root-keys");
    let refused = TestServer::start_failure(fresh.path(), |config| {
        config.root_key = mixed.clone();
        config.hsm_modules = modules.clone();
    })
    .await;
    assert!(
        refused.contains("tokens hsm-d and hsm-a hold different keys"),
        "{refused}"
    );
}

#[test]
fn root_key_replica_tables_list_more_tokens() {
    let dir = TempDir::new("root-key-replicas-config");
    let path = dir.path().join("strongroom.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).expect("write the configuration");
        strongroom_server::ConfigFile::load(&path).and_then(|file| {
            strongroom_server::Config::build(file, strongroom_server::Overrides::default())
        })
    };
    let head =
        "[root_key]\nmodule = \"p11.so\"\ntoken_label = \"root-a\"\nuser_pin_file = \"a.pin\"\n";
    let config = load(&format!(
        "{head}so_pin_file = \"a.so.pin\"\nkey_label = \"k\"\n\n\
         [[root_key.replica]]\nmodule = \"other/p11.so\"\ntoken_label = \"root-b\"\nuser_pin_env = \"B_PIN\"\nso_pin_env = \"B_SO_PIN\"\n\n\
         [[root_key.replica]]\nmodule = \"p11.so\"\ntoken_label = \"root-c\"\nuser_pin_file = \"c.pin\"\n"
    ))
    .expect("the configuration is valid");
    let RootKeyConfig::Pkcs11Replicated(replicated) = config.root_key else {
        panic!("the root key is on several tokens: {:?}", config.root_key);
    };
    assert_eq!(replicated.key_label, "k");
    let base = dir.path();
    assert_eq!(
        replicated.tokens,
        [
            RootKeyToken {
                module: base.join("p11.so"),
                token_label: "root-a".to_owned(),
                user_pin: SecretSource::File(base.join("a.pin")),
                so_pin: Some(SecretSource::File(base.join("a.so.pin"))),
            },
            RootKeyToken {
                module: base.join("other/p11.so"),
                token_label: "root-b".to_owned(),
                user_pin: SecretSource::Env("B_PIN".to_owned()),
                so_pin: Some(SecretSource::Env("B_SO_PIN".to_owned())),
            },
            RootKeyToken {
                module: base.join("p11.so"),
                token_label: "root-c".to_owned(),
                user_pin: SecretSource::File(base.join("c.pin")),
                so_pin: None,
            },
        ]
    );

    // Without replicas or a Security Officer PIN, the table means what it always meant.
    let config = load(head).expect("the single-token form is valid");
    let RootKeyConfig::Pkcs11(Pkcs11RootKey { token_label, .. }) = &config.root_key else {
        panic!("one token: {:?}", config.root_key);
    };
    assert_eq!(token_label, "root-a");
    assert_eq!(
        config.root_key.pkcs11().map(|it| it.tokens.len()),
        Some(1),
        "both forms open through the same path"
    );

    for (text, complaint) in [
        (
            format!("{head}[[root_key.replica]]\nmodule = \"p11.so\"\ntoken_label = \"root-b\"\n"),
            "needs exactly one of user_pin_file and user_pin_env",
        ),
        (
            format!(
                "{head}[[root_key.replica]]\nmodule = \"p11.so\"\ntoken_label = \"root-a\"\nuser_pin_env = \"X\"\n"
            ),
            "lists token_label 'root-a' twice",
        ),
        (
            format!("{head}so_pin_file = \"s\"\nso_pin_env = \"S\"\n"),
            "at most one of so_pin_file and so_pin_env",
        ),
        (
            format!(
                "{head}[[root_key.replica]]\nmodule = \"p11.so\"\ntoken_label = \"root-b\"\nuser_pin_env = \"X\"\nkey_label = \"other\"\n"
            ),
            "key_label",
        ),
    ] {
        let refused = load(&text).expect_err(&text);
        assert!(format!("{refused:#}").contains(complaint), "{refused:#}");
    }
}
