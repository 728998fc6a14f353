//! The hub's state as a process: stopping or not, database reachable or not. Calls are
//! refused at once (`UNAVAILABLE`) in either case instead of waiting on a pool timeout, the
//! health service follows the database (`NOT_SERVING` while it is unreachable, so a load
//! balancer takes the replica out), and feed subscriptions end when the hub stops.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Lifecycle {
    stopping: watch::Sender<bool>,
    database_up: AtomicBool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            stopping: watch::channel(false).0,
            database_up: AtomicBool::new(true),
        }
    }
}

impl Lifecycle {
    /// Starts stopping: new calls are refused, subscriptions end.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Turns true when the hub starts stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub fn database_up(&self) -> bool {
        self.database_up.load(Ordering::Relaxed)
    }

    /// Records the last health check; true when it changed.
    pub fn set_database_up(&self, up: bool) -> bool {
        self.database_up.swap(up, Ordering::Relaxed) != up
    }
}
