//! Tidy checks, run as ordinary tests: conventions the compiler cannot enforce.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn all_sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("xtask"), &mut files);
    assert!(files.len() > 10, "expected to find the workspace's sources");
    files
}

#[test]
fn every_file_starts_with_a_module_doc() {
    let offenders: Vec<String> = all_sources()
        .into_iter()
        .filter(|path| {
            !std::fs::read_to_string(path)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "files without a leading //! paragraph:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_banned_attributes() {
    let banned = [
        "#[ignore",
        "#[should_panic",
        "unsafe {",
        "#![allow",
        "dbg!(",
    ];
    let mut offenders = Vec::new();
    for path in all_sources() {
        if path.ends_with("tidy.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for pattern in banned {
            if text.contains(pattern) {
                offenders.push(format!("{}: {pattern}", path.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "banned constructs:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn crate_dependencies_point_one_way() {
    // The service must not know HTTP, JSON or SQL; only the protocol crate knows HTTP.
    let rules: &[(&str, &[&str])] = &[
        (
            "crates/types/Cargo.toml",
            &["axum", "hyper", "serde_json", "rusqlite", "strongroom-"],
        ),
        (
            "crates/service/Cargo.toml",
            &[
                "axum",
                "hyper",
                "serde_json",
                "rusqlite",
                "strongroom-protocol",
            ],
        ),
        (
            "crates/storage/Cargo.toml",
            &["axum", "hyper", "strongroom-service", "strongroom-protocol"],
        ),
        (
            "crates/keystore/Cargo.toml",
            &["axum", "hyper", "rusqlite", "strongroom-service"],
        ),
        (
            "crates/policy/Cargo.toml",
            &["axum", "hyper", "rusqlite", "strongroom-service"],
        ),
        (
            "crates/audit/Cargo.toml",
            &[
                "axum",
                "hyper",
                "strongroom-service",
                "strongroom-protocol",
                "strongroom-storage",
                "strongroom-iam",
            ],
        ),
        (
            "crates/iam/Cargo.toml",
            &[
                "axum",
                "hyper",
                "rusqlite",
                "strongroom-service",
                "strongroom-protocol",
            ],
        ),
        (
            "crates/cloudhsm/Cargo.toml",
            &[
                "axum",
                "hyper",
                "rusqlite",
                "strongroom-service",
                "strongroom-protocol",
            ],
        ),
        (
            "crates/secrets/Cargo.toml",
            &[
                "axum",
                "hyper",
                "serde_json",
                "rusqlite",
                "strongroom-protocol",
            ],
        ),
        (
            "crates/keystore-pkcs11/Cargo.toml",
            &["axum", "hyper", "rusqlite", "strongroom-service"],
        ),
        (
            // Stacks drive the service, the control plane and Secrets Manager in process; the
            // protocol edge calls them, never the reverse.
            "crates/stacks/Cargo.toml",
            &["axum", "hyper", "rusqlite", "strongroom-protocol"],
        ),
    ];
    let root = workspace_root();
    for (manifest, forbidden) in rules {
        let text = std::fs::read_to_string(root.join(manifest)).expect("manifest exists");
        let dependencies = text.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for name in *forbidden {
            assert!(
                !dependencies
                    .lines()
                    .any(|line| line.trim_start().starts_with(name)),
                "{manifest} must not depend on {name}"
            );
        }
    }
}

#[test]
fn only_the_pkcs11_crate_touches_pkcs11() {
    let root = workspace_root();
    let Ok(entries) = std::fs::read_dir(root.join("crates")) else {
        panic!("the crates directory exists");
    };
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let uses_cryptoki = text
            .lines()
            .any(|line| line.trim_start().starts_with("cryptoki"));
        assert!(
            !uses_cryptoki || name == "keystore-pkcs11",
            "crates/{name} depends on cryptoki; only crates/keystore-pkcs11 may"
        );
    }
}
