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
    /// The hub did not answer at all (down, or the network cut): probe until it does.
    pub unreachable: bool,
}

/// How often a connector whose hub is out of reach tries it again: queued writes leave within
/// this long once it is back.
pub const PROBE: Duration = Duration::from_secs(2);

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

/// The person or case a write brings into being, on which later writes depend.
fn founding_key(w: &Write) -> Option<String> {
    match w {
        Write::Link { local_id, .. } => Some(format!("person:{local_id}")),
        Write::OpenCase { case_ref, .. } => Some(format!("case:{case_ref}")),
        _ => None,
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
    // The persons and cases whose link or opening the hub refused in this lane, with the
    // line it came from: a later write about them that fails too is reported as depending on
    // it, not as a refusal of its own.
    let mut refused: HashMap<String, Option<i64>> = HashMap::new();
    for p in lane {
        if stop.load(Ordering::Acquire) {
            done.blocked = true;
            return Ok(done);
        }
        // A write about a person (or case) whose link (or opening) the hub refused in this
        // lane is not sent: it could land on whoever the local id already names at the hub.
        if let Some((key, line)) = keys(&p.write)
            .iter()
            .find_map(|k| refused.get(k).map(|line| (k.clone(), *line)))
        {
            let what = if key.starts_with("case:") {
                "la démarche"
            } else {
                "la personne"
            };
            let reason = match line {
                Some(l) => format!("non transmise : {what} (ligne {l}) a été refusée par le hub"),
                None => format!("non transmise : {what} a été refusée par le hub"),
            };
            state
                .dead_letter(&p, crate::state::DEPENDENT, &reason)
                .await?;
            if let Some(k) = founding_key(&p.write) {
                refused.entry(k).or_insert(p.line);
            }
            done.dead_lettered += 1;
            continue;
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
                tracing::debug!(seq = p.seq, code = ?r.code, error = %r.message, "hub not reachable; the outbox waits");
                state.attempt_failed(p.seq, &r.message).await?;
                stop.store(true, Ordering::Release);
                done.retry_after = r.retry_after;
                if r.code == tonic::Code::Unavailable {
                    hub.reset().await;
                }
                done.unreachable = matches!(
                    r.code,
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                );
                done.blocked = true;
                return Ok(done);
            }
            Err(r) => {
                tracing::warn!(seq = p.seq, write = %p.write.describe(), code = ?r.code, reason = %r.message, "hub refused a write; dead-lettered");
                state
                    .dead_letter(&p, &format!("{:?}", r.code), &r.message)
                    .await?;
                if let Some(key) = founding_key(&p.write) {
                    refused.entry(key).or_insert(p.line);
                }
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
            done.unreachable |= pass.unreachable;
            done.retry_after = done.retry_after.max(pass.retry_after);
        }
        if done.blocked {
            return Ok(done);
        }
    }
}

/// Drains for ever: immediately when woken, otherwise every `idle`. When the hub is out of
/// reach, says so once and probes it every [`PROBE`] (or when woken), says when it answers
/// again, and sends what waited at once; when it asks to slow down (`RetryInfo`), waits as long
/// as it said; when it is busy without saying, a backoff with jitter. Dead letters are reported
/// to `adapter` (its errors file) as they come.
pub async fn drain(
    hub: &Hub,
    state: &State,
    wake: &tokio::sync::Notify,
    idle: Duration,
    adapter: Option<&dyn crate::Adapter>,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    // Dead letters a crash left unreported.
    report_dead_letters(state, adapter).await;
    let mut waited = false;
    loop {
        let pass = drain_once(hub, state).await?;
        if pass.dead_lettered > 0 {
            report_dead_letters(state, adapter).await;
        }
        if !pass.blocked {
            backoff.reset();
            if waited || pass.sent > 0 || pass.dead_lettered > 0 {
                tracing::info!(
                    sent = pass.sent,
                    refused = pass.dead_lettered,
                    "outbox drained: every write waiting was sent"
                );
            }
            waited = false;
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
            continue;
        }
        waited = true;
        if let Some(asked) = pass.retry_after {
            tracing::info!(
                wait_ms = asked.as_millis() as u64,
                "the hub asked to slow down; the outbox waits as long as it said"
            );
            tokio::time::sleep(asked).await;
        } else if pass.unreachable {
            wait_for_hub(hub, state, wake).await;
        } else {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// Probes the hub every [`PROBE`] (or when woken) until it answers; logs when it goes out of
/// reach and when it is back.
async fn wait_for_hub(hub: &Hub, state: &State, wake: &tokio::sync::Notify) {
    let waiting = state.counts().await.map_or(0, |(n, _)| n);
    tracing::warn!(
        waiting,
        probe_s = PROBE.as_secs(),
        "the hub is out of reach: the outbox keeps the writes and tries the hub again every few seconds"
    );
    let since = std::time::Instant::now();
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(PROBE) => {}
        }
        match hub.position().await {
            Err(r) if r.retryable() => {
                if r.code == tonic::Code::Unavailable {
                    hub.reset().await;
                }
                tracing::debug!(code = ?r.code, "the hub is still out of reach");
            }
            // It answered (even a refusal): the outbox tries again.
            _ => {
                let waiting = state.counts().await.map_or(0, |(n, _)| n);
                tracing::info!(
                    after_s = since.elapsed().as_secs(),
                    waiting,
                    "the hub is reachable again: sending the writes waiting"
                );
                return;
            }
        }
    }
}

/// Tells the adapter about dead letters it has not heard of (it writes them in its errors
/// file, for the people who made the data); kept for the next time when it cannot.
pub async fn report_dead_letters(state: &State, adapter: Option<&dyn crate::Adapter>) {
    let Some(adapter) = adapter else {
        return;
    };
    let letters = match state.unreported().await {
        Ok(l) if l.is_empty() => return,
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "reading the dead letters failed");
            return;
        }
    };
    match adapter.rejected(&letters).await {
        Ok(()) => {
            let seqs: Vec<i64> = letters.iter().map(|l| l.seq).collect();
            if let Err(e) = state.reported(&seqs).await {
                tracing::warn!(error = %format!("{e:#}"), "marking dead letters reported failed");
            }
        }
        Err(e) => tracing::warn!(
            error = %format!("{e:#}"),
            "reporting refused writes to the partner failed; retried after the next refusal"
        ),
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
            line: None,
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
