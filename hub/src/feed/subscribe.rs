//! One subscription: a task that reads the change log after the subscriber's cursor, filters
//! each event through the policy, and hands it to a bounded channel. The channel is the
//! backpressure: when the subscriber reads slowly, HTTP/2 flow control stops tonic from
//! draining the channel, the channel fills, and this task waits — it holds at most
//! `buffer` events plus one batch, and never slows the other subscribers, which have their
//! own tasks.

use crate::audit::AuditEntry;
use crate::config::FeedConfig;
use crate::domain::Purpose;
use crate::domain::change::{ChangeRecord, ChangeResource, Disclosure};
use crate::domain::ids::{AgentId, LocalId, PartnerId, PersonId};
use crate::domain::partner::{Partner, PartnerStatus};
use crate::error::{Error, Result};
use crate::policy::{Access, Facts, Gate, Viewer};
use crate::store::DynStore;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
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

/// How often an idle subscription checks that its partner is still active and its certificate
/// still valid (a suspension or a revocation ends it within this time; an expiry ends it at
/// the certificate's `not_after`).
const STATUS_CHECK: Duration = Duration::from_secs(5);

/// Who subscribes: a partner, through one of its agents (its connector), for a purpose.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub partner: PartnerId,
    pub agent: AgentId,
    pub purpose: Purpose,
    /// Fingerprint of the certificate it subscribed with.
    pub certificate: String,
}

/// Starts a subscription task for `subscriber` from `after`.
pub fn spawn_subscription(
    store: DynStore,
    gate: Arc<Gate>,
    subscriber: Subscriber,
    after: u64,
    config: &FeedConfig,
) -> mpsc::Receiver<Result<FeedItem>> {
    let (tx, rx) = mpsc::channel(config.subscriber_buffer);
    let batch = config.batch_size;
    let span = tracing::info_span!("subscription", partner = %subscriber.partner, after);
    tokio::spawn(
        async move {
            let sub = Subscription {
                store: &store,
                gate: &gate,
                partner: &subscriber.partner,
                agent: &subscriber.agent,
                purpose: subscriber.purpose,
                certificate: &subscriber.certificate,
                batch,
                tx: &tx,
            };
            if let Err(e) = sub.run(after).await {
                tracing::info!(error = %e, "subscription ended");
                // The subscriber may be gone already; then nobody is left to tell.
                let _ = tx.send(Err(e)).await;
            }
        }
        .instrument(span),
    );
    rx
}

struct Subscription<'a> {
    store: &'a DynStore,
    gate: &'a Gate,
    partner: &'a PartnerId,
    agent: &'a AgentId,
    purpose: Purpose,
    certificate: &'a str,
    batch: u32,
    tx: &'a mpsc::Sender<Result<FeedItem>>,
}

impl Subscription<'_> {
    /// The partner as it is now, and how long its certificate stays valid; a suspended
    /// partner's subscription ends, and so does one whose certificate was revoked or expired.
    async fn partner(&self) -> Result<(Partner, Duration)> {
        let now = self.gate.now();
        match self
            .store
            .principal_by_fingerprint(self.certificate)
            .await?
        {
            Some((_, record)) => {
                if let Some(why) = record.refused_at(now) {
                    return Err(Error::Unauthenticated(format!(
                        "certificate {} is {why}: the subscription ends",
                        self.certificate
                    )));
                }
                let until = record
                    .revoked_at
                    .map_or(record.not_after, |r| r.min(record.not_after));
                let left = Duration::from_micros(
                    until.micros().saturating_sub(now.micros()).max(0) as u64,
                );
                match self.store.get_partner(self.partner).await? {
                    Some(p) if p.status == PartnerStatus::Active => Ok((p, left)),
                    _ => Err(Error::PermissionDenied(format!(
                        "partner `{}` is suspended: its subscription ends",
                        self.partner
                    ))),
                }
            }
            None => Err(Error::Unauthenticated(format!(
                "certificate {} is no longer registered: the subscription ends",
                self.certificate
            ))),
        }
    }

    async fn run(&self, after: u64) -> Result<()> {
        let mut head = self.store.watch_head();
        let mut cursor = after;
        let mut live = false;
        loop {
            let (partner, valid_for) = self.partner().await?;
            let changes = self.store.changes_after(cursor, self.batch).await?;
            if changes.is_empty() {
                if !live {
                    live = true;
                    if self.tx.send(Ok(FeedItem::CaughtUp(cursor))).await.is_err() {
                        return Ok(());
                    }
                }
                tokio::select! {
                    changed = head.wait_for(|h| *h > cursor) => {
                        if changed.is_err() {
                            return Err(Error::Unavailable("the hub is shutting down".into()));
                        }
                    }
                    () = self.tx.closed() => return Ok(()),
                    () = tokio::time::sleep(STATUS_CHECK.min(valid_for)) => {}
                }
                continue;
            }
            // Facts per person, read once per batch: decisions are made now, at delivery, so a
            // withdrawal applies to the very next batch. The batch's decisions are audited in
            // one transaction, before any of its events leaves the hub.
            let mut facts: HashMap<PersonId, (Facts, Vec<LocalId>)> = HashMap::new();
            let mut audit = Vec::new();
            let mut disclosures = Vec::new();
            let mut deliver = Vec::new();
            for change in changes {
                cursor = change.position;
                let Some(entry) = self
                    .decide(&partner, &change, &mut facts, &mut disclosures)
                    .await?
                else {
                    continue;
                };
                let allowed = entry.decision != "deny";
                audit.push(entry);
                if !allowed {
                    continue;
                }
                let person = change.resource.person();
                let local_ids = match facts.get(&person) {
                    Some((_, ids)) => ids.clone(),
                    None => self.store.local_ids(self.partner, person).await?,
                };
                deliver.push(FeedItem::Event {
                    change: Box::new(change),
                    local_ids,
                });
            }
            // A consent ended between the decisions and this record withholds what it covered:
            // decision and disclosure are one step.
            let withheld: std::collections::HashSet<_> = self
                .store
                .record_access(audit, disclosures)
                .await?
                .into_iter()
                .collect();
            for item in deliver {
                if let FeedItem::Event { change, .. } = &item
                    && change
                        .resource
                        .item()
                        .is_some_and(|i| withheld.contains(&i))
                {
                    continue;
                }
                if self.tx.send(Ok(item)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// Decides one event for this subscriber: its audit entry (the decision is in it), or none
    /// for a redaction meant for another partner.
    async fn decide(
        &self,
        partner: &Partner,
        change: &ChangeRecord,
        facts: &mut HashMap<PersonId, (Facts, Vec<LocalId>)>,
        disclosures: &mut Vec<Disclosure>,
    ) -> Result<Option<AuditEntry>> {
        let action = format!("deliver:{}", change.kind.as_str());
        let detail = format!("feed position {}", change.position);
        // Redactions and consent notices are for one partner each, and carry no data the
        // rules would decide on.
        if let Some(mine) = change.resource.is_for(self.partner) {
            if !mine {
                return Ok(None);
            }
            let mut entry = AuditEntry::new(
                change.committed_at,
                self.partner.as_str(),
                self.agent.as_str(),
                action,
            );
            entry.person = Some(change.resource.person());
            entry.detail = detail;
            entry.records = match &change.resource {
                ChangeResource::Redaction(r) => vec![r.record.clone()],
                ChangeResource::ConsentNotice(n) => vec![format!("consent:{}", n.consent)],
                _ => vec![],
            };
            return Ok(Some(entry));
        }
        let person = change.resource.person();
        if let Entry::Vacant(entry) = facts.entry(person) {
            let f = self.gate.facts(partner, person).await?;
            let ids = self.store.local_ids(self.partner, person).await?;
            entry.insert((f, ids));
        }
        let person_facts = facts[&person].0.clone();
        let viewer = Viewer {
            partner,
            agent: self.agent,
            purpose: self.purpose,
        };
        let mut access = Access::new(self.gate, viewer, person_facts);
        match &change.resource {
            ChangeResource::Flag(f) => access.flag(f),
            ChangeResource::Case(c) => access.case(c),
            ChangeResource::Referral(r) => access.referral(r),
            ChangeResource::Redaction(_) | ChangeResource::ConsentNotice(_) => false,
        };
        let (entry, disclosed) = access.finish(action, detail);
        disclosures.extend(disclosed);
        Ok(Some(entry))
    }
}
