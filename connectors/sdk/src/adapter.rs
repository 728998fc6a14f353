//! The contract of an adapter (see connectors/README.md): read the partner's system and turn
//! what is new into writes; apply what the hub sends; delete what is redacted.

use crate::state::State;
use relais_proto::v1 as pb;

/// An event of the feed, as the adapter receives it.
#[derive(Debug, Clone)]
pub enum Received {
    Flag(pb::Flag),
    Case(pb::Case),
    Referral(pb::Referral),
}

/// An item of the partner's work queue, in the hub's priority order (`ListWorkQueue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// `case:<id>` or `referral:<id>`, as the status rows are keyed.
    pub key: String,
    /// 1 for the first item of the queue.
    pub rank: i32,
    /// Why it stands there, in plain French.
    pub explanation: String,
}

#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// A short name for logs (`csv`, `http`, `sql`).
    fn name(&self) -> &'static str;

    /// Reads what is new in the partner's system and puts the writes in the outbox (through
    /// `State::enqueue`, atomically with what marks it as imported). Returns how many writes.
    async fn poll(&self, state: &State) -> anyhow::Result<u64>;

    /// Applies an event of the feed to the partner's system. Must be idempotent: after a
    /// crash the same event may come again.
    async fn apply(&self, event: &Received, local_ids: &[String]) -> anyhow::Result<()>;

    /// Deletes from the partner's system what the hub no longer shares with it.
    async fn redact(&self, redaction: &pb::Redaction, local_ids: &[String]) -> anyhow::Result<()>;

    /// Tells the partner about writes the hub refused (dead letters), where the people who
    /// made the data will see them (the csv adapter's errors file). Adapters without such a
    /// place keep the default: `relais-connector dlq list` shows them.
    async fn rejected(&self, letters: &[crate::state::DeadLetter]) -> anyhow::Result<()> {
        let _ = letters;
        Ok(())
    }

    /// Writes the partner's work queue beside its statuses: each open case's and awaiting
    /// referral's rank and reason; items not in `queue` have none. Adapters without a place
    /// for it keep the default.
    async fn prioritise(&self, queue: &[Priority]) -> anyhow::Result<()> {
        let _ = queue;
        Ok(())
    }

    /// For adapters the partner's software pushes to (an HTTP endpoint): serves until the
    /// process stops, enqueuing what arrives and calling `wake` so the outbox goes at once.
    /// Adapters that only poll keep the default, which waits for ever.
    async fn serve(
        &self,
        state: State,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<()> {
        let _ = (state, wake);
        std::future::pending::<()>().await;
        Ok(())
    }
}
