//! The vector files: one JSON shape for all of them (suites of groups of tests, byte strings in hex), and
//! the bookkeeping that turns a file's cases into one assertion.

use std::path::PathBuf;

use serde::Deserialize;
use strongroom_types::KeySpec;

/// A vector file: suites, each from one source file or one section of it.
#[derive(Debug, Deserialize)]
pub(crate) struct File {
    pub(crate) suites: Vec<Suite>,
}

/// The cases of one source under one key spec.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Suite {
    pub(crate) source: String,
    pub(crate) key_spec: String,
    #[serde(default)]
    pub(crate) algorithm: Option<String>,
    /// Whether the source's parameters are those KMS uses for `algorithm`; when not, even the source's
    /// valid cases must be rejected.
    #[serde(default = "yes")]
    pub(crate) kms_parameters: bool,
    #[serde(default)]
    pub(crate) groups: Vec<Group>,
    #[serde(default)]
    pub(crate) tests: Vec<Case>,
    #[serde(default)]
    pub(crate) key_gen: Vec<KeyGen>,
}

fn yes() -> bool {
    true
}

/// Cases that share a key.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Group {
    #[serde(default)]
    pub(crate) public_key_der: Option<String>,
    #[serde(default)]
    pub(crate) private_key_pkcs8: Option<String>,
    #[serde(default)]
    pub(crate) private_seed: Option<String>,
    /// For groups that name their own algorithm (RSA signing, with one key per hash).
    #[serde(default)]
    pub(crate) algorithm: Option<String>,
    /// HMAC groups: the tag size in bits.
    #[serde(default)]
    pub(crate) tag_size: usize,
    pub(crate) tests: Vec<Case>,
}

/// One case. Which fields are present depends on the algorithm.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Case {
    pub(crate) tc_id: u32,
    pub(crate) comment: String,
    pub(crate) flags: Vec<String>,
    pub(crate) msg: String,
    pub(crate) ctx: String,
    pub(crate) sig: String,
    pub(crate) ct: String,
    pub(crate) label: String,
    pub(crate) key: String,
    pub(crate) tag: String,
    pub(crate) public: String,
    pub(crate) private: String,
    pub(crate) shared: String,
    pub(crate) seed: String,
    pub(crate) public_key: String,
    pub(crate) result: String,
}

impl Case {
    /// Whether the source calls the case valid (Wycheproof "valid", NIST "P").
    pub(crate) fn valid(&self) -> bool {
        self.result == "valid"
    }

    /// How a failure names the case.
    pub(crate) fn name(&self, suite: &Suite) -> String {
        let flags = if self.flags.is_empty() {
            String::new()
        } else {
            format!(" {:?}", self.flags)
        };
        format!(
            "{} tcId {} ({}{flags})",
            suite.source, self.tc_id, self.comment
        )
    }
}

/// A key generated from a seed, and the public key it must have.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyGen {
    pub(crate) tc_id: u32,
    pub(crate) seed: String,
    pub(crate) pk: String,
}

impl Suite {
    pub(crate) fn spec(&self) -> KeySpec {
        self.key_spec.parse().expect("a key spec")
    }
}

/// Reads `tests/vectors/<name>`.
pub(crate) fn load(name: &str) -> File {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes lowercase or uppercase hex.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Counts what a file's cases checked, and keeps every disagreement.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) accepted: usize,
    pub(crate) rejected: usize,
    pub(crate) failures: Vec<String>,
}

impl Tally {
    /// Records one outcome: `expected` is whether the case must succeed, `actual` what happened.
    pub(crate) fn check(&mut self, name: String, expected: bool, actual: Result<bool, String>) {
        match (expected, actual) {
            (true, Ok(true)) => self.accepted += 1,
            (false, Ok(false) | Err(_)) => self.rejected += 1,
            (true, Ok(false)) => self
                .failures
                .push(format!("{name}: rejected, expected accepted")),
            (true, Err(e)) => self
                .failures
                .push(format!("{name}: error {e}, expected accepted")),
            (false, Ok(true)) => self
                .failures
                .push(format!("{name}: accepted, expected rejected")),
        }
    }

    /// Records a failure that is not a yes/no outcome (a wrong value).
    pub(crate) fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Fails with every disagreement, and makes sure the file exercised both outcomes it should.
    pub(crate) fn finish(self, what: &str, min_accepted: usize, min_rejected: usize) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} cases disagree:\n{}",
            self.failures.len(),
            self.failures.len() + self.accepted + self.rejected,
            self.failures.join("\n")
        );
        assert!(
            self.accepted >= min_accepted && self.rejected >= min_rejected,
            "{what}: only {} accepted and {} rejected cases ran (expected at least {min_accepted} and {min_rejected})",
            self.accepted,
            self.rejected
        );
    }
}
