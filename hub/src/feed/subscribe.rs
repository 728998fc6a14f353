//! One subscription: a task that reads the change log after the subscriber's cursor, filters
//! each event through the policy, and hands it to a bounded channel. The channel is the
//! backpressure: when the subscriber reads slowly, HTTP/2 flow control stops tonic from
//! draining the channel, the channel fills, and this task waits — it holds at most
//! `buffer` events plus one batch, and never slows the other subscribers, which have their
//! own tasks.

use crate::config::FeedConfig;
use crate::domain::Purpose;
use crate::domain::change::{ChangeRecord, ChangeResource};
use crate::domain::ids::{AgentId, LocalId, PartnerId, PersonId};
use crate::domain::partner::{Partner, PartnerStatus};
use crate::error::{Error, Result};
use crate::policy::{Access, Gate, Viewer};
use crate::store::{DynStore, Principal};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

/// What a subscriber receives.
#[derive(Debug, Clone)]
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

/// Subscriptions of one partner, agent and purpose share what was decided for a stretch of
/// the feed: the first to reach a cursor reads the changes, decides and records them (one
/// audit entry per person); the others reaching the same cursor soon after deliver the same,
/// without reading or deciding again — unless a write that may narrow access committed in
/// between (`Store::decisions_epoch`), or `FRESH` has passed. So the hub's work per event
/// follows the partners entitled to it, not the number of their connections.
#[derive(Debug, Default)]
pub struct Groups {
    groups: std::sync::Mutex<HashMap<GroupKey, Weak<Group>>>,
}

type GroupKey = (PartnerId, AgentId, Purpose);

impl Groups {
    fn join(&self, key: GroupKey) -> Arc<Group> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade) {
            return group;
        }
        groups.retain(|_, g| g.strong_count() > 0);
        let group = Arc::new(Group::default());
        groups.insert(key, Arc::downgrade(&group));
        group
    }
}

#[derive(Debug, Default)]
struct Group {
    /// The latest stretches decided, oldest first.
    recent: tokio::sync::Mutex<VecDeque<Arc<Decided>>>,
}

/// A stretch of the feed, decided and recorded.
#[derive(Debug)]
struct Decided {
    from: u64,
    /// Where the cursor goes after it.
    next: u64,
    /// Change rows read (0: nothing new up to `next`).
    read: usize,
    epoch: u64,
    /// Read in the alert plan's mode (every change).
    everything: bool,
    /// When its facts were read.
    at: Instant,
    items: Vec<FeedItem>,
}

/// How many decided stretches a group remembers, and for how long they are shared.
const SHARED: usize = 32;
const FRESH: Duration = Duration::from_secs(1);

impl FeedItem {
    /// The feed position it stands for.
    fn position(&self) -> u64 {
        match self {
            FeedItem::Event { change, .. } => change.position,
            FeedItem::CaughtUp(position) => *position,
        }
    }
}

/// Starts a subscription task for `subscriber` from `after`.
pub fn spawn_subscription(
    store: DynStore,
    gate: Arc<Gate>,
    groups: &Groups,
    subscriber: Subscriber,
    after: u64,
    config: &FeedConfig,
) -> mpsc::Receiver<Result<FeedItem>> {
    let (tx, rx) = mpsc::channel(config.subscriber_buffer);
    let batch = config.batch_size;
    let group = groups.join((
        subscriber.partner.clone(),
        subscriber.agent.clone(),
        subscriber.purpose,
    ));
    let span = tracing::info_span!("subscription", partner = %subscriber.partner, after);
    tokio::spawn(
        async move {
            let sub = Subscription {
                store: &store,
                gate: &gate,
                group: &group,
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
    group: &'a Group,
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
    /// (Read through the principal cache, which suspensions and revocations clear.)
    async fn partner(&self) -> Result<(Partner, Duration)> {
        let now = self.gate.now();
        let Some((principal, record)) = self
            .store
            .principal_by_fingerprint(self.certificate)
            .await?
        else {
            return Err(Error::Unauthenticated(format!(
                "certificate {} is no longer registered: the subscription ends",
                self.certificate
            )));
        };
        if let Some(why) = record.refused_at(now) {
            return Err(Error::Unauthenticated(format!(
                "certificate {} is {why}: the subscription ends",
                self.certificate
            )));
        }
        let until = record
            .revoked_at
            .map_or(record.not_after, |r| r.min(record.not_after));
        let left = Duration::from_micros(until.micros().saturating_sub(now.micros()).max(0) as u64);
        match principal {
            Principal::Partner(p) if &p.id == self.partner && p.status == PartnerStatus::Active => {
                Ok((p, left))
            }
            _ => Err(Error::PermissionDenied(format!(
                "partner `{}` is suspended: its subscription ends",
                self.partner
            ))),
        }
    }

    async fn run(&self, after: u64) -> Result<()> {
        let mut head = self.store.watch_head();
        let mut cursor = after;
        let mut live = false;
        loop {
            let (partner, valid_for) = self.partner().await?;
            // Read up to the head as it is now; only the changes that may concern this
            // partner are read at all, and none when the newest that does is behind us.
            let upto = *head.borrow_and_update();
            // The alert plan's purpose may read changes outside the partner's audience
            // (`stretch` decides whether the plan is on).
            let decided = if upto > cursor
                && (self.purpose == Purpose::PlanAlerte
                    || self.store.latest_for(self.partner) > cursor)
            {
                Some(self.stretch(&partner, cursor, upto).await?)
            } else {
                None
            };
            let next = decided.as_ref().map_or(upto.max(cursor), |d| d.next);
            let Some(decided) = decided.filter(|d| d.read > 0) else {
                cursor = next;
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
            };
            // A stretch another subscription decided may begin before this cursor: what this
            // one delivered already is not sent again.
            let from = cursor;
            cursor = next;
            for item in decided.items.iter().filter(|i| i.position() > from) {
                if self.tx.send(Ok(item.clone())).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// The stretch of the feed after `from`: as decided by another subscription of the group
    /// moments ago, or read, decided and recorded now.
    async fn stretch(&self, partner: &Partner, from: u64, upto: u64) -> Result<Arc<Decided>> {
        let mut recent = self.group.recent.lock().await;
        // Read before deciding: a narrowing write during the decision makes it unshareable.
        let epoch = self.store.decisions_epoch();
        let at = Instant::now();
        // Under the préfet's alert plan, the plan's purpose reaches persons the partner has no
        // tie with (the rules decide): every change is read. Read after the epoch: a change of
        // plan moves it.
        let everything =
            self.purpose == Purpose::PlanAlerte && self.store.alert_plan().await?.active;
        recent.retain(|d| d.epoch == epoch && d.at.elapsed() < FRESH);
        // A stretch that covers this cursor is shared: its audit entries record what the
        // group (this partner, agent and purpose) was given, this subscription's part
        // included, so subscriptions that do not move in step still decide and record a
        // stretch once. One that read nothing is shared only if it reaches as far as this
        // reader must (or it would say "caught up" before the backlog).
        if let Some(d) = recent.iter().rev().find(|d| {
            d.everything == everything
                && d.from <= from
                && if d.read > 0 {
                    from < d.next
                } else {
                    d.next >= upto
                }
        }) {
            return Ok(d.clone());
        }
        let changes = if everything {
            let mut all = self.store.changes_after(from, self.batch).await?;
            all.retain(|c| c.position <= upto);
            all
        } else {
            self.store
                .changes_for(self.partner, from, upto, self.batch)
                .await?
        };
        let read = changes.len();
        let next = match changes.last() {
            Some(last) if read >= self.batch as usize => last.position,
            _ => upto,
        };
        let items = if read == 0 {
            vec![]
        } else {
            self.decide_batch(partner, changes).await?
        };
        let decided = Arc::new(Decided {
            from,
            next,
            read,
            epoch,
            everything,
            at,
            items,
        });
        if recent.len() >= SHARED {
            recent.pop_front();
        }
        recent.push_back(decided.clone());
        Ok(decided)
    }

    /// Decides a batch, now, at delivery (a withdrawal applies to the very next batch), and
    /// records what leaves: one audit entry per person given something it did not write or
    /// hold itself, with the disclosures, in one transaction before any of it leaves. Events
    /// refused, and those about persons the partner is no longer tied to, are skipped without
    /// an entry: they were neither asked for nor given.
    async fn decide_batch(
        &self,
        partner: &Partner,
        changes: Vec<ChangeRecord>,
    ) -> Result<Vec<FeedItem>> {
        let viewer = Viewer {
            partner,
            agent: self.agent,
            purpose: self.purpose,
        };
        let mut people: HashMap<PersonId, Person> = HashMap::new();
        let mut order: Vec<PersonId> = Vec::new();
        let mut deliver = Vec::new();
        for change in changes {
            let person = change.resource.person();
            if let Some(false) = change.resource.is_for(self.partner) {
                continue;
            }
            // A referral's reminder is for its recipient (due) or its sender (overdue) alone.
            if change
                .kind
                .reminds(&change.resource)
                .is_some_and(|p| p != self.partner)
            {
                continue;
            }
            if let Entry::Vacant(slot) = people.entry(person) {
                let facts = self.gate.facts(partner, person).await?;
                slot.insert(Person {
                    access: Access::new(self.gate, viewer, facts),
                    notices: Vec::new(),
                    first: None,
                    last: 0,
                    events: 0,
                    from_others: false,
                    local_ids: None,
                });
                order.push(person);
            }
            let Some(p) = people.get_mut(&person) else {
                continue;
            };
            let given = match &change.resource {
                ChangeResource::Redaction(r) => {
                    p.notices.push(r.record.clone());
                    true
                }
                ChangeResource::ConsentNotice(n) => {
                    p.notices.push(format!("consent:{}", n.consent));
                    true
                }
                // What the partner wrote itself is decided (it may no longer be entitled to
                // the record as it stands) but is not a disclosure.
                resource if change.principal == self.partner.as_str() => {
                    let mut own = Access::new(self.gate, viewer, p.access.facts.clone());
                    decide(&mut own, resource)
                }
                resource => decide(&mut p.access, resource),
            };
            if !given {
                continue;
            }
            // What another partner wrote leaves the hub, even about a record the subscriber
            // holds (the answer to its referral, a case redirected to it): audited.
            if change.principal != self.partner.as_str() {
                p.from_others = true;
                p.first.get_or_insert(change.position);
                p.last = change.position;
                p.events += 1;
            }
            if p.local_ids.is_none() {
                p.local_ids = Some(self.store.local_ids(self.partner, person).await?);
            }
            let local_ids = p.local_ids.clone().unwrap_or_default();
            deliver.push(FeedItem::Event {
                change: Box::new(change),
                local_ids,
            });
        }
        let mut audit = Vec::new();
        let mut disclosures = Vec::new();
        for person in order {
            let Some(p) = people.remove(&person) else {
                continue;
            };
            let detail = format!(
                "feed: {} event(s) written by others, positions {} to {}",
                p.events,
                p.first.unwrap_or_default(),
                p.last
            );
            let (mut entry, disclosed) = p.access.finish("deliver:feed".into(), detail);
            if disclosed.is_empty() && p.notices.is_empty() && !p.from_others {
                continue;
            }
            entry.records.extend(p.notices);
            entry.records.sort();
            entry.records.dedup();
            if entry.decision == "deny" {
                // Only notices were given.
                entry.decision = "allow".into();
            }
            audit.push(entry);
            disclosures.extend(disclosed);
        }
        // A consent ended between the decisions and this record withholds what it covered:
        // decision and disclosure are one step.
        let withheld: HashSet<_> = self
            .store
            .record_access(audit, disclosures)
            .await?
            .into_iter()
            .collect();
        deliver.retain(|item| match item {
            FeedItem::Event { change, .. } => change
                .resource
                .item()
                .is_none_or(|i| !withheld.contains(&i)),
            FeedItem::CaughtUp(_) => true,
        });
        Ok(deliver)
    }
}

/// One person's part of a batch.
struct Person<'a> {
    access: Access<'a>,
    /// Redactions and consent notices given (their records).
    notices: Vec<String>,
    /// The positions and number of the events given that others wrote.
    first: Option<u64>,
    last: u64,
    events: u32,
    from_others: bool,
    local_ids: Option<Vec<LocalId>>,
}

fn decide(access: &mut Access<'_>, resource: &ChangeResource) -> bool {
    match resource {
        ChangeResource::Flag(f) => access.flag(f),
        ChangeResource::Case(c) => access.case(c),
        ChangeResource::Referral(r) => access.referral(r),
        ChangeResource::Redaction(_) | ChangeResource::ConsentNotice(_) => false,
    }
}
