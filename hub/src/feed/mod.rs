//! The change feed. Writes append change events in their own transaction (see `store`); this
//! module delivers them to subscribers in position order, deciding at delivery time, per
//! event, whether the subscriber may receive it.

pub mod subscribe;

pub use subscribe::{FeedItem, Groups, Subscriber, spawn_subscription};
