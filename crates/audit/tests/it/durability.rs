//! An acknowledged event survives `kill -9`.
//!
//! The test re-executes its own binary as a child that records events as fast as it can and
//! prints each acknowledged id; the parent kills it with SIGKILL mid-stream, reopens the audit
//! directory, and looks for every acknowledged id.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use strongroom_audit::{AuditLog, LookupQuery, verify};
use time::OffsetDateTime;

use crate::support::{ACCOUNT, REGION, TempDir, config, encrypt};

/// Set in the child's environment to the directory it should write to.
const CHILD_DIR: &str = "STRONGROOM_AUDIT_SIGKILL_CHILD_DIR";
/// How many acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 500;

/// The child half: does nothing unless the parent started this binary to play the child.
#[test]
fn sigkill_child() {
    let dir = match std::env::var(CHILD_DIR) {
        Ok(dir) => std::path::PathBuf::from(dir),
        Err(_) => return,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let log = AuditLog::open(config(&dir)).await.unwrap();
        for _ in 0..16 {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    let event = encrypt(ACCOUNT, ACCOUNT, REGION);
                    let id = event.event_id.clone();
                    log.record(vec![event]).await.unwrap();
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "ACK {id}").unwrap();
                    stdout.flush().unwrap();
                }
            });
        }
        // The parent kills us long before this.
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = TempDir::new("sigkill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability::sigkill_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = HashSet::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // The test harness may print its own text on the same line before the first id.
        if let Some(position) = line.find("ACK ") {
            acked.insert(line[position + 4..].trim().to_owned());
        }
        if acked.len() >= ACKS_BEFORE_KILL {
            break;
        }
    }
    // `Child::kill` sends SIGKILL: no destructor, flush or shutdown code runs in the child.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "the child stopped after {} acknowledgements",
        acked.len()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let log = AuditLog::open(config(&dir.0)).await.unwrap();
        let mut found = HashSet::new();
        let mut query = LookupQuery::default();
        loop {
            let page = log.lookup(ACCOUNT, query.clone()).await.unwrap();
            found.extend(page.events.into_iter().map(|event| event.event_id));
            match page.next_token {
                Some(token) => query.next_token = Some(token),
                None => break,
            }
        }
        let lost: Vec<&String> = acked.difference(&found).collect();
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged events were lost, for example {:?}",
            lost.len(),
            acked.len(),
            lost.first()
        );

        // Recovery delivered the journal; the trail it left verifies.
        log.flush_now().await.unwrap();
        let now = OffsetDateTime::now_utc();
        let report = verify(
            log.dir(),
            ACCOUNT,
            REGION,
            now - time::Duration::hours(1),
            now + time::Duration::hours(1),
            &[log.public_key_der()],
        );
        assert!(report.is_ok(), "{report}");
    });
}
