//! Following the hub's feed: each event is applied through the adapter, then the local copy and
//! the cursor are stored together — at-least-once, and applies are idempotent, so a crash
//! between the two only replays an event. A redaction deletes the local copies and tells the
//! adapter. On a lost connection, resubscribes from the stored cursor after a backoff.

use crate::adapter::{Adapter, Received};
use crate::hub::Hub;
use crate::retry::Backoff;
use crate::state::State;
use relais_proto::v1 as pb;
use std::time::Duration;
use tokio_stream::StreamExt;

fn item_key(r: &Received) -> (String, String, String) {
    match r {
        Received::Flag(f) => (
            format!("flag:{}", f.id),
            f.person_id.clone(),
            format!("{f:?}"),
        ),
        Received::Case(c) => (
            format!("case:{}", c.id),
            c.person_id.clone(),
            format!("{c:?}"),
        ),
        Received::Referral(x) => (
            format!("referral:{}", x.id),
            x.person_id.clone(),
            format!("{x:?}"),
        ),
    }
}

/// Applies one event; returns its position.
pub async fn apply(
    adapter: &dyn Adapter,
    state: &State,
    e: pb::ChangeEvent,
) -> anyhow::Result<u64> {
    use pb::change_event::Resource;
    match e.resource {
        // A consent another partner recorded opens to it data this partner wrote: nothing to
        // apply here; the runtime logs it for the partner's data protection officer.
        Some(Resource::ConsentNotice(n)) => {
            tracing::info!(
                consent = %n.consent_id,
                collected_by = %n.collected_by_partner,
                categories = ?n.categories,
                evidence = %n.evidence_ref,
                countersignature_required = n.countersignature_required,
                "consent recorded by another partner opens our data to it"
            );
            state.applied(e.position, None, &[]).await?;
        }
        Some(Resource::Redaction(r)) => {
            adapter.redact(&r, &e.local_ids).await?;
            let items: Vec<String> = r
                .flag_ids
                .iter()
                .map(|id| format!("flag:{id}"))
                .chain(r.case_ids.iter().map(|id| format!("case:{id}")))
                .chain(r.referral_ids.iter().map(|id| format!("referral:{id}")))
                .collect();
            state.applied(e.position, None, &items).await?;
        }
        Some(resource) => {
            let received = match resource {
                Resource::Flag(f) => Received::Flag(f),
                Resource::Case(c) => Received::Case(c),
                Resource::Referral(r) => Received::Referral(r),
                Resource::Redaction(_) | Resource::ConsentNotice(_) => {
                    unreachable!("handled above")
                }
            };
            adapter.apply(&received, &e.local_ids).await?;
            let (item, person, doc) = item_key(&received);
            state
                .applied(e.position, Some((&item, &person, &doc)), &[])
                .await?;
        }
        None => state.applied(e.position, None, &[]).await?,
    }
    Ok(e.position)
}

/// Follows the feed until `stop` says so; returns when caught up if `until_caught_up`.
pub async fn follow(
    hub: &Hub,
    state: &State,
    adapter: &dyn Adapter,
    until_caught_up: bool,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let after = state.cursor().await?;
        let mut stream = match hub.subscribe(after).await {
            Ok(s) => s,
            Err(r) => {
                tracing::info!(code = ?r.code, error = %r.message, "feed unreachable; retrying");
                hub.reset().await;
                // The hub says how long when the partner is over its rate (RetryInfo).
                tokio::time::sleep(r.retry_after.unwrap_or_else(|| backoff.next_delay())).await;
                continue;
            }
        };
        backoff.reset();
        while let Some(message) = stream.next().await {
            match message {
                Ok(m) => match m.payload {
                    Some(pb::subscribe_response::Payload::Event(e)) => {
                        apply(adapter, state, e).await?;
                    }
                    Some(pb::subscribe_response::Payload::CaughtUp(_)) if until_caught_up => {
                        return Ok(());
                    }
                    _ => {}
                },
                Err(s) => {
                    tracing::info!(code = ?s.code(), error = %s.message(), "feed interrupted; resuming from the cursor");
                    break;
                }
            }
        }
        hub.reset().await;
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
