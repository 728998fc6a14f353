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

/// The data directory's lock (`relais.lock`, an exclusive `flock` held while the hub runs, and
/// released by the system if the process dies): a second hub started on the same directory
/// refuses to start, naming the first one's process and address, instead of sharing its SQLite
/// database, its keys and its certificates.
pub struct DataDirLock {
    lock: nix::fcntl::Flock<std::fs::File>,
}

impl DataDirLock {
    pub fn acquire(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use std::io::Read;
        let path = data_dir.join("relais.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut held = DataDirLock { lock };
                held.write(&format!("pid {}\n", std::process::id()));
                Ok(held)
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().replace('\n', ", ");
                anyhow::bail!(
                    "another Relais hub uses the data directory {} ({}): stop it first, or give this one its own data_dir",
                    data_dir.display(),
                    if holder.is_empty() {
                        "it is starting".to_string()
                    } else {
                        holder
                    }
                )
            }
            Err((_, e)) => anyhow::bail!("locking {}: {e}", path.display()),
        }
    }

    /// Says who holds the lock (the process, and its address once it listens).
    pub fn write(&mut self, holder: &str) {
        use std::io::{Seek, Write};
        let file: &mut std::fs::File = &mut self.lock;
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(holder.as_bytes());
        let _ = file.sync_all();
    }
}
