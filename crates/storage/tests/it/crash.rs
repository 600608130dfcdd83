//! A writer killed with SIGKILL loses nothing it acknowledged.
//!
//! The test binary plays both parts: the parent test re-runs this binary, filtered to the child test, with
//! an environment variable naming the database directory.
//! The child writes as fast as it can and prints a line after each acknowledged write; the parent kills it
//! mid-stream, reopens the file, and looks for every acknowledged record.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use strongroom_storage::Store;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_test_support::TempDir;
use strongroom_test_support::fixtures::{key_id, namespace, sample_alias, sample_key};
use strongroom_types::{AliasRecord, Namespace};

/// Names the database directory for the child; its absence makes the child test a no-op.
const CHILD_DIR: &str = "STRONGROOM_STORAGE_CRASH_CHILD_DIR";

/// Prefixes the child's acknowledgement lines, to tell them from the test harness's own output.
const ACK: &str = "strongroom-acked ";

/// How many writers the child runs at once, so the kill lands while several transactions are open.
const WRITERS: u32 = 4;

/// How many acknowledgements the parent waits for before it kills the child.
const KILL_AFTER: usize = 200;

/// The child stops on its own after this many keys, in case nobody kills it.
const CHILD_LIMIT: u32 = 100_000;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = TempDir::new("sqlite-crash");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "crash::child_writes_until_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("the child's stdout");
    let mut lines = BufReader::new(stdout).lines();

    let mut acked = BTreeSet::new();
    while acked.len() < KILL_AFTER {
        match lines.next() {
            Some(Ok(line)) => record_ack(&line, &mut acked),
            Some(Err(error)) => panic!("reading the child's output: {error}"),
            None => break,
        }
    }
    child.kill().expect("kill the child");
    // Acknowledgements the child wrote before it died are still in the pipe.
    for line in lines {
        record_ack(&line.expect("reading the child's output"), &mut acked);
    }
    let status = child.wait().expect("wait for the child");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child died of SIGKILL, not on its own: {status:?}"
    );
    assert!(
        acked.len() >= KILL_AFTER,
        "the child acknowledged only {} writes",
        acked.len()
    );

    let path = dir.path().join("crash.sqlite");
    let integrity: String = rusqlite::Connection::open(&path)
        .and_then(|connection| connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "the file is intact after the kill");

    let store = SqliteStore::open(&path).expect("reopen after the kill");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let home = home();
        for &n in &acked {
            let key = sample_key(&home, n);
            let read = store.key(&home, &key.key_id).await.expect("key");
            assert_eq!(
                read.as_ref(),
                Some(&key),
                "acknowledged key {n} survives the kill"
            );
            let alias = alias_of(&home, n);
            let read = store.alias(&home, &alias.name).await.expect("alias");
            assert_eq!(
                read,
                Some(alias),
                "acknowledged alias {n} survives the kill"
            );
        }
        let listed = store
            .list_keys(&home, None, usize::MAX)
            .await
            .expect("list_keys");
        let unacked = listed.len() - acked.len();
        assert!(
            unacked <= WRITERS as usize,
            "{unacked} keys were written but never acknowledged"
        );
    });
}

/// The child half of [`acknowledged_writes_survive_sigkill`]; run alone it does nothing.
#[test]
fn child_writes_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let store: Arc<dyn Store> = match SqliteStore::open(&Path::new(&dir).join("crash.sqlite")) {
        Ok(store) => Arc::new(store),
        Err(error) => panic!("child: open: {error}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                let home = home();
                for n in (writer..CHILD_LIMIT).step_by(WRITERS as usize) {
                    store
                        .insert_key(&sample_key(&home, n))
                        .await
                        .expect("child: insert_key");
                    store
                        .insert_alias(&alias_of(&home, n))
                        .await
                        .expect("child: insert_alias");
                    let mut stdout = std::io::stdout().lock();
                    // A failed write means the parent is gone; stop rather than write forever.
                    if writeln!(stdout, "{ACK}{n}")
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
        for writer in writers {
            writer.await.expect("child: writer");
        }
    });
}

fn record_ack(line: &str, acked: &mut BTreeSet<u32>) {
    if let Some(number) = line.strip_prefix(ACK) {
        acked.insert(
            number
                .trim()
                .parse()
                .unwrap_or_else(|error| panic!("bad acknowledgement {line:?}: {error}")),
        );
    }
}

fn home() -> Namespace {
    namespace("333333333333", "us-west-2")
}

fn alias_of(home: &Namespace, n: u32) -> AliasRecord {
    sample_alias(home, &format!("alias/crash-{n}"), &key_id(n))
}
