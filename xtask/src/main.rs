//! Project automation: `cargo xtask ci` runs every check CI runs, installing what the tests need.
//!
//! Kept in Rust, not shell, so it behaves the same everywhere and is itself checked by the compiler.

use std::process::Command;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "ci" => ci(),
        "test" => test(),
        "deps" => deps(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  ci    format check, clippy, and every test\n  test  every test\n  deps  install what the tests need, without running them"
            );
            bail!("unknown task '{task}'")
        }
    }
}

/// Every check CI runs, in order of increasing cost.
fn ci() -> anyhow::Result<()> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    test()
}

/// Every test of the workspace, with nextest when it is installed.
fn test() -> anyhow::Result<()> {
    deps()?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        run(
            "cargo",
            &[
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ],
        )
    } else {
        run(
            "cargo",
            &["test", "--workspace", "--locked", "--no-fail-fast"],
        )
    }
}

/// What the tests need beyond Rust: SoftHSM2, and the Python environments of the client tests.
fn deps() -> anyhow::Result<()> {
    ensure_softhsm()?;
    python_clients()?;
    ansible()
}

/// A virtual environment in `target/python` with boto3, the AWS Encryption SDK and `cryptography` (the
/// independent implementation the interoperability tests check the server against; 50 or later for ML-DSA),
/// and one in `target/awscli` with the AWS CLI v1, for the tests that drive the server with Python clients.
fn python_clients() -> anyhow::Result<()> {
    let venv = std::path::Path::new("target/python");
    if !venv.join("bin/python").exists() {
        run("python3", &["-m", "venv", "target/python"])?;
    }
    run(
        "target/python/bin/pip",
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "boto3",
            "aws-encryption-sdk>=3,<4",
            "cryptography>=50",
        ],
    )?;
    // The AWS CLI v1 pins its own botocore, so it gets an environment of its own rather than holding
    // boto3 back; the CloudHSM tests use it because it speaks AWS JSON 1.1 to CloudHSM v2.
    if !std::path::Path::new("target/awscli/bin/python").exists() {
        run("python3", &["-m", "venv", "target/awscli"])?;
    }
    run(
        "target/awscli/bin/pip",
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "awscli",
        ],
    )
}

/// What `target/ansible` holds: Ansible 12 (ansible-core 2.19, with the `amazon.aws` 10 collection bundled;
/// Ansible Galaxy is not reachable from every machine that runs the tests, PyPI is) and the boto3 its AWS
/// modules run on, pinned so that the Ansible tests see the same module code everywhere.
const ANSIBLE_REQUIREMENTS: &[&str] = &["ansible==12.3.0", "boto3==1.44.5", "botocore==1.44.5"];

/// A virtual environment in `target/ansible` with [`ANSIBLE_REQUIREMENTS`], for the test that manages keys
/// with the `amazon.aws.kms_key` and `kms_key_info` modules. Installed once: a stamp file records what was
/// installed, and the installation is skipped while it matches the pins.
fn ansible() -> anyhow::Result<()> {
    let venv = std::path::Path::new("target/ansible");
    let stamp = venv.join("strongroom-requirements.txt");
    let wanted = ANSIBLE_REQUIREMENTS.join("\n");
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    if installed == wanted && venv.join("bin/ansible-playbook").exists() {
        return Ok(());
    }
    if !venv.join("bin/python").exists() {
        run("python3", &["-m", "venv", "target/ansible"])?;
    }
    let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
    args.extend_from_slice(ANSIBLE_REQUIREMENTS);
    run("target/ansible/bin/pip", &args)?;
    std::fs::write(&stamp, wanted).with_context(|| format!("write {}", stamp.display()))
}

/// Installs SoftHSM2, which the PKCS#11 key store's tests run against, if it is missing.
fn ensure_softhsm() -> anyhow::Result<()> {
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    if std::path::Path::new(MODULE).exists() {
        return Ok(());
    }
    eprintln!("{MODULE} is missing; installing the softhsm2 package");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let has_sudo = Command::new("sudo").arg("-V").output().is_ok();
    let apt = |args: &[&str]| match (is_root, has_sudo) {
        (true, _) => run("apt-get", args),
        (false, true) => run("sudo", &[&["apt-get"], args].concat()),
        (false, false) => bail!("{MODULE} is missing; install the softhsm2 package as root"),
    };
    // A fresh machine may have no package lists yet.
    apt(&["install", "-y", "softhsm2"]).or_else(|_| {
        apt(&["update"])?;
        apt(&["install", "-y", "softhsm2"])
    })
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tidy;
