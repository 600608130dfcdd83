//! The background health monitor that brings degraded HSMs back.

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cluster::ClusterInner;

/// Probes every HSM of a cluster periodically on its own thread; dropping it stops the thread.
///
/// It holds the cluster weakly, so it never keeps a dropped cluster's sessions open.
#[derive(Debug)]
pub struct HealthMonitor {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HealthMonitor {
    pub(crate) fn spawn(cluster: Weak<ClusterInner>, interval: Duration) -> HealthMonitor {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    // A message or a dropped sender both mean stop.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                cluster.probe_all();
            }
        });
        HealthMonitor {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic in a probe has already been reported by the thread itself.
            let _ = thread.join();
        }
    }
}
