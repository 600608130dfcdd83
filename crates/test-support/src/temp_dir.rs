//! A directory that exists for one test and is removed when it ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh, empty directory under the system temporary directory, removed on drop.
///
/// Tests that open database files need a place no other test touches, including tests running at the same
/// time in other processes.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory; `label` appears in its name to tell whose leftovers are whose.
    ///
    /// Panics if the directory cannot be created, since no test can go on without it.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!("strongroom-{label}-{}-{count}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        if let Err(error) = std::fs::create_dir(&path) {
            panic!(
                "cannot create the temporary directory {}: {error}",
                path.display()
            );
        }
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A directory left behind costs disk space, not correctness, so a failure here is not worth a panic
        // that could hide the test's own failure.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
