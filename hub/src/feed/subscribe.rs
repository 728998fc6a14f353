//! One subscription: a task that reads the change log after the subscriber's cursor, filters
//! each event through the policy, and hands it to a bounded channel. The channel is the
//! backpressure: when the subscriber reads slowly, HTTP/2 flow control stops tonic from
//! draining the channel, the channel fills, and this task waits — it holds at most
//! `buffer` events plus one batch, and never slows the other subscribers, which have their
//! own tasks.

use crate::domain::Purpose;
use crate::domain::change::ChangeRecord;
use crate::domain::ids::{LocalId, PartnerId, PersonId};
use crate::domain::partner::PartnerStatus;
use crate::error::{Error, Result};
use crate::policy;
use crate::store::{DynStore, Relation};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// What a subscriber receives.
#[derive(Debug)]
pub enum FeedItem {
    Event {
        change: Box<ChangeRecord>,
        /// The subscriber's local ids for the event's person.
        local_ids: Vec<LocalId>,
    },
    /// Everything committed up to this position has been delivered; what follows is live.
    CaughtUp(u64),
}

/// How often an idle subscription checks that its partner is still active.
const STATUS_CHECK: Duration = Duration::from_secs(15);

/// Starts a subscription task for `partner` from `after`.
pub fn spawn_subscription(
    store: DynStore,
    partner: PartnerId,
    purpose: Purpose,
    after: u64,
    batch: u32,
    buffer: usize,
) -> mpsc::Receiver<Result<FeedItem>> {
    let (tx, rx) = mpsc::channel(buffer);
    let span = tracing::info_span!("subscription", partner = %partner, after);
    tokio::spawn(
        async move {
            if let Err(e) = run(&store, &partner, purpose, after, batch, &tx).await {
                tracing::info!(error = %e, "subscription ended");
                // The subscriber may be gone already; then nobody is left to tell.
                let _ = tx.send(Err(e)).await;
            }
        }
        .instrument(span),
    );
    rx
}

async fn still_active(store: &DynStore, partner: &PartnerId) -> Result<()> {
    match store.get_partner(partner).await? {
        Some(p) if p.status == PartnerStatus::Active => Ok(()),
        _ => Err(Error::PermissionDenied(format!(
            "partner `{partner}` is suspended: its subscription ends"
        ))),
    }
}

async fn run(
    store: &DynStore,
    partner: &PartnerId,
    purpose: Purpose,
    after: u64,
    batch: u32,
    tx: &mpsc::Sender<Result<FeedItem>>,
) -> Result<()> {
    let mut head = store.watch_head();
    let mut cursor = after;
    let mut live = false;
    loop {
        still_active(store, partner).await?;
        let changes = store.changes_after(cursor, batch).await?;
        if changes.is_empty() {
            if !live {
                live = true;
                if tx.send(Ok(FeedItem::CaughtUp(cursor))).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                changed = head.wait_for(|h| *h > cursor) => {
                    if changed.is_err() {
                        return Err(Error::Unavailable("the hub is shutting down".into()));
                    }
                }
                () = tx.closed() => return Ok(()),
                () = tokio::time::sleep(STATUS_CHECK) => {}
            }
            continue;
        }
        // Facts per person, fetched once per batch: decisions are made now, at delivery.
        let mut relations: HashMap<PersonId, (Relation, Vec<LocalId>)> = HashMap::new();
        for change in changes {
            cursor = change.position;
            let person = change.resource.person();
            if let Entry::Vacant(entry) = relations.entry(person) {
                let relation = store.relation(partner, person).await?;
                let local_ids = store.local_ids(partner, person).await?;
                entry.insert((relation, local_ids));
            }
            let (relation, local_ids) = &relations[&person];
            let decision = policy::change_delivery(partner, &change, *relation, purpose);
            if !decision.allowed() {
                continue;
            }
            let item = FeedItem::Event {
                change: Box::new(change),
                local_ids: local_ids.clone(),
            };
            if tx.send(Ok(item)).await.is_err() {
                return Ok(());
            }
        }
    }
}
