//! Sending the outbox: pipelined, in order where order matters. The writes waiting are split
//! into lanes — the writes about one person (its local id) and one case (its `case_ref`), or
//! one referral, go in one lane, in the order they were put in the outbox — and up to
//! `PIPELINE` lanes are sent at once, each one write after the other. So a case is moved only
//! after it is opened, a flag raised only after its person is linked, while writes about
//! different persons do not wait for each other's round trips (an export of 20,000 rows is
//! sent at the hub's pace, not at one round trip per row).
//!
//! A write the hub cannot take now (it is unreachable, or busy) stops its lane, and the pass
//! ends once the lanes in flight are done: the rest waits for a backoff — later writes of
//! that lane may depend on it. A write the hub refuses for good goes to the dead-letter store
//! with the hub's reason, and its lane goes on.

use crate::hub::Hub;
use crate::retry::Backoff;
use crate::state::{Pending, State};
use crate::write::Write;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Instrument;

/// Lanes sent at once.
pub const PIPELINE: usize = 32;
/// Writes read from the outbox per pass.
const BATCH: u32 = 1024;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub sent: u64,
    pub dead_lettered: u64,
    /// The hub could not be reached (or was busy): the rest waits.
    pub blocked: bool,
    /// How long the hub asked to wait (`RetryInfo`), when it said.
    pub retry_after: Option<Duration>,
}

/// What orders a write: the person, case or referral it is about.
fn keys(w: &Write) -> Vec<String> {
    match w {
        Write::Link { local_id, .. } | Write::RaiseFlag { local_id, .. } => {
            vec![format!("person:{local_id}")]
        }
        Write::OpenCase {
            case_ref, local_id, ..
        } => vec![format!("person:{local_id}"), format!("case:{case_ref}")],
        Write::MoveCase { case_ref, .. } => vec![format!("case:{case_ref}")],
        Write::AnswerReferral { referral_id, .. } => vec![format!("referral:{referral_id}")],
    }
}

/// Splits writes (in outbox order) into lanes: writes sharing a person, a case or a referral
/// share a lane, in outbox order.
fn lanes(batch: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut lanes: Vec<Vec<Pending>> = Vec::new();
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    for p in batch {
        let keys = keys(&p.write);
        let mut found: Vec<usize> = keys
            .iter()
            .filter_map(|k| lane_of.get(k).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        let lane = match found.split_first() {
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
            Some((&first, rest)) => {
                // A write joining two lanes joins them for good, in outbox order.
                for &other in rest {
                    let moved = std::mem::take(&mut lanes[other]);
                    lanes[first].extend(moved);
                    for l in lane_of.values_mut() {
                        if *l == other {
                            *l = first;
                        }
                    }
                }
                lanes[first].sort_by_key(|p| p.seq);
                first
            }
        };
        for k in keys {
            lane_of.insert(k, lane);
        }
        lanes[lane].push(p);
    }
    lanes.retain(|l| !l.is_empty());
    lanes
}

/// Sends one lane in order; stops at a write the hub cannot take now, and tells the other
/// lanes (`stop`) not to start another write.
async fn send_lane(
    hub: &Hub,
    state: &State,
    lane: Vec<Pending>,
    stop: &AtomicBool,
) -> anyhow::Result<Drained> {
    let mut done = Drained::default();
    for p in lane {
        if stop.load(Ordering::Acquire) {
            done.blocked = true;
            return Ok(done);
        }
        // The write's span: the hub's span of the call joins its trace. No local id in it.
        let span = tracing::info_span!(
            target: "relais::rpc",
            "send",
            otel.name = p.write.kind(),
            otel.kind = "client",
            relais.outbox_seq = p.seq,
        );
        match hub.send(&p, state).instrument(span).await {
            Ok(()) => {
                state.sent(p.seq).await?;
                done.sent += 1;
            }
            Err(r) if r.retryable() => {
                tracing::info!(seq = p.seq, code = ?r.code, error = %r.message, "hub not reachable; the outbox waits");
                state.attempt_failed(p.seq, &r.message).await?;
                stop.store(true, Ordering::Release);
                done.retry_after = r.retry_after;
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
    Ok(done)
}

/// Sends what waits in the outbox until it is empty or the hub is out of reach.
pub async fn drain_once(hub: &Hub, state: &State) -> anyhow::Result<Drained> {
    let mut done = Drained::default();
    loop {
        let batch = state.pending(BATCH).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let stop = AtomicBool::new(false);
        let passes: Vec<anyhow::Result<Drained>> = futures::stream::iter(
            lanes(batch)
                .into_iter()
                .map(|lane| send_lane(hub, state, lane, &stop)),
        )
        .buffer_unordered(PIPELINE)
        .collect()
        .await;
        for pass in passes {
            let pass = pass?;
            done.sent += pass.sent;
            done.dead_lettered += pass.dead_lettered;
            done.blocked |= pass.blocked;
            done.retry_after = done.retry_after.max(pass.retry_after);
        }
        if done.blocked {
            return Ok(done);
        }
    }
}

/// Drains for ever: immediately when woken, otherwise every `idle`; after a blocked pass,
/// waits as long as the hub asked (`RetryInfo`), or else a backoff with jitter.
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
            let wait = match pass.retry_after {
                Some(asked) => {
                    tracing::info!(
                        wait_ms = asked.as_millis() as u64,
                        "the hub asked to slow down; the outbox waits as long as it said"
                    );
                    asked
                }
                None => backoff.next_delay(),
            };
            tokio::time::sleep(wait).await;
        } else {
            backoff.reset();
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: i64, write: Write) -> Pending {
        Pending {
            seq,
            request_id: format!("r{seq}"),
            write,
            source: String::new(),
            attempts: 0,
        }
    }

    fn link(local: &str) -> Write {
        Write::Link {
            local_id: local.into(),
            pivot: None,
        }
    }

    fn open(case: &str, local: &str) -> Write {
        Write::OpenCase {
            case_ref: case.into(),
            local_id: local.into(),
            procedure: "F1342".into(),
            theme: String::new(),
            missing_documents: vec![],
        }
    }

    fn mv(case: &str) -> Write {
        Write::MoveCase {
            case_ref: case.into(),
            to: "sent".into(),
            reason: String::new(),
            missing_documents: None,
        }
    }

    #[test]
    fn writes_about_one_person_or_case_keep_their_order_in_one_lane() {
        let batch = vec![
            pending(1, link("A")),
            pending(2, link("B")),
            pending(3, mv("C2")),
            pending(4, open("C1", "A")),
            pending(5, mv("C1")),
            pending(6, open("C2", "B")),
            pending(7, link("D")),
        ];
        let seqs: Vec<Vec<i64>> = lanes(batch)
            .into_iter()
            .map(|l| l.into_iter().map(|p| p.seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![1, 4, 5], vec![2, 3, 6], vec![7]]);
    }
}
