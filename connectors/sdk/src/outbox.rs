//! Sending the outbox: in order, one write at a time. A write the hub cannot take now (it is
//! unreachable, or busy) stops the drain until a backoff has passed — later writes may depend
//! on it (a case moved after it is opened). A write the hub refuses for good goes to the
//! dead-letter store with the hub's reason, and the drain goes on.

use crate::hub::Hub;
use crate::retry::Backoff;
use crate::state::State;
use std::time::Duration;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub sent: u64,
    pub dead_lettered: u64,
    /// The hub could not be reached (or was busy): the rest waits.
    pub blocked: bool,
}

/// Sends what waits in the outbox until it is empty or the hub is out of reach.
pub async fn drain_once(hub: &Hub, state: &State) -> anyhow::Result<Drained> {
    let mut done = Drained::default();
    loop {
        let batch = state.pending(100).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for p in batch {
            match hub.send(&p, state).await {
                Ok(()) => {
                    state.sent(p.seq).await?;
                    done.sent += 1;
                }
                Err(r) if r.retryable() => {
                    tracing::info!(seq = p.seq, code = ?r.code, error = %r.message, "hub not reachable; the outbox waits");
                    state.attempt_failed(p.seq, &r.message).await?;
                    if r.code == tonic::Code::Unavailable {
                        hub.reset().await;
                    }
                    done.blocked = true;
                    return Ok(done);
                }
                Err(r) => {
                    tracing::warn!(seq = p.seq, write = %p.write.describe(), code = ?r.code, reason = %r.message, "hub refused a write; dead-lettered");
                    state
                        .dead_letter(&p, &format!("{:?}", r.code), &r.message)
                        .await?;
                    done.dead_lettered += 1;
                }
            }
        }
    }
}

/// Drains for ever: immediately when woken, otherwise every `idle`; after a blocked pass,
/// waits a backoff with jitter.
pub async fn drain(
    hub: &Hub,
    state: &State,
    wake: &tokio::sync::Notify,
    idle: Duration,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let pass = drain_once(hub, state).await?;
        if pass.blocked {
            tokio::time::sleep(backoff.next_delay()).await;
        } else {
            backoff.reset();
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}
