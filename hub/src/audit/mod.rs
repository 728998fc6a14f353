//! The audit log: every access and every decision, append-only and hash-chained. Each entry's
//! hash covers its sequence number, the previous entry's hash and its own content, so changing,
//! removing or reordering any entry breaks the chain at that entry. The head hash can be written
//! down outside the hub (printed in the register) to detect a rewrite of the whole chain.

use crate::domain::{PersonId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// Partner id, or `admin`.
    pub principal: String,
    pub agent: String,
    /// `read:<Method>`, `write:<Method>`, `deliver:feed` (one delivered batch, one person;
    /// `deliver:<kind>` before migration 0004), `admin:<Method>`.
    pub action: String,
    pub person: Option<PersonId>,
    /// Categories of data given (reads, deliveries) or written.
    pub categories: Vec<String>,
    /// Of `categories`, those a read gave only from the caller's own records (what it wrote
    /// itself): it consulted them, nobody shared them with it. Absent from older entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<String>,
    /// Categories asked for but refused.
    pub denied: Vec<String>,
    pub purpose: Option<String>,
    /// `allow`, `deny`, or `partial` (some categories refused).
    pub decision: String,
    /// The rules that decided.
    pub policies: Vec<String>,
    /// The consent records or mandates behind the decision.
    pub records: Vec<String>,
    pub detail: String,
    /// The client certificate a partner's call came with (its fingerprint): every act under a
    /// partner's name leads to the certificate, and so to whoever had it issued.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
}

tokio::task_local! {
    /// The certificate of the partner call being served.
    static CERTIFICATE: String;
}

/// Runs `f` as the call of the certificate `fingerprint`: the audit entries made inside name it.
pub async fn with_certificate<F: std::future::Future>(fingerprint: String, f: F) -> F::Output {
    CERTIFICATE.scope(fingerprint, f).await
}

/// The certificate of the call being served, if any.
pub fn current_certificate() -> String {
    CERTIFICATE.try_with(Clone::clone).unwrap_or_default()
}

impl AuditEntry {
    /// An entry for `principal`/`agent` doing `action` now, allowed, with nothing else filled.
    pub fn new(at: Timestamp, principal: &str, agent: &str, action: String) -> Self {
        Self {
            at,
            principal: principal.to_string(),
            agent: agent.to_string(),
            action,
            person: None,
            categories: vec![],
            own: vec![],
            denied: vec![],
            purpose: None,
            decision: "allow".into(),
            policies: vec![],
            records: vec![],
            detail: String::new(),
            certificate: current_certificate(),
        }
    }
}

/// The hash of entry `seq` whose document is `doc`, after `prev`.
pub fn chain_hash(seq: u64, prev: &str, doc: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(prev.as_bytes());
    h.update(doc.as_bytes());
    hex::encode(h.finalize())
}

/// A stored entry as read back for verification.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: u64,
    pub doc: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Where verification starts: after purged entries, the last purged entry's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

impl Anchor {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    /// The first entry found broken, and what is wrong with it.
    pub broken: Option<(u64, String)>,
    pub head: Anchor,
}

/// Walks entries in stored order from the anchor. Verification is incremental: feed it pages
/// with `step`, then `finish`.
pub struct Verifier {
    expected_seq: u64,
    prev: String,
    checked: u64,
    broken: Option<(u64, String)>,
}

impl Verifier {
    pub fn new(anchor: &Anchor) -> Self {
        Self {
            expected_seq: anchor.seq + 1,
            prev: anchor.hash.clone(),
            checked: 0,
            broken: None,
        }
    }

    /// Checks the next entry; returns false once a break was found.
    pub fn step(&mut self, e: &StoredEntry) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let problem = if e.seq != self.expected_seq {
            if e.seq > self.expected_seq {
                Some((
                    self.expected_seq,
                    format!(
                        "entries {} to {} are missing (removed)",
                        self.expected_seq,
                        e.seq - 1
                    ),
                ))
            } else {
                Some((e.seq, format!("entry {} is out of order", e.seq)))
            }
        } else if e.prev_hash != self.prev {
            Some((
                e.seq,
                format!(
                    "entry {} does not follow the entry before it (moved or the one before was changed)",
                    e.seq
                ),
            ))
        } else if chain_hash(e.seq, &e.prev_hash, &e.doc) != e.hash {
            Some((
                e.seq,
                format!("entry {} was changed after it was written", e.seq),
            ))
        } else if serde_json::from_str::<AuditEntry>(&e.doc).is_err() {
            Some((
                e.seq,
                format!("entry {} is not a readable audit entry", e.seq),
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            self.broken = Some(p);
            return false;
        }
        self.checked += 1;
        self.expected_seq = e.seq + 1;
        self.prev = e.hash.clone();
        true
    }

    pub fn finish(self) -> Verification {
        Verification {
            checked: self.checked,
            broken: self.broken,
            head: Anchor {
                seq: self.expected_seq - 1,
                hash: self.prev,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<StoredEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let doc = serde_json::to_string(&AuditEntry::new(
                    Timestamp::from_micros(seq as i64),
                    "mairie-aspet",
                    "a",
                    format!("read:{seq}"),
                ))
                .unwrap();
                let hash = chain_hash(seq, &prev, &doc);
                let e = StoredEntry {
                    seq,
                    doc,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[StoredEntry]) -> Verification {
        let mut v = Verifier::new(&Anchor::genesis());
        for e in entries {
            if !v.step(e) {
                break;
            }
        }
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let v = verify(&chain(5));
        assert_eq!(v.broken, None);
        assert_eq!(v.checked, 5);
        assert_eq!(v.head.seq, 5);
    }

    #[test]
    fn changes_removals_and_reorders_are_found_where_they_are() {
        let mut changed = chain(5);
        changed[2].doc = changed[2].doc.replace("read:3", "read:X");
        assert_eq!(verify(&changed).broken.unwrap().0, 3);

        let mut removed = chain(5);
        removed.remove(3);
        assert_eq!(verify(&removed).broken.unwrap().0, 4);

        let mut swapped = chain(5);
        let (a, b) = (swapped[1].doc.clone(), swapped[2].doc.clone());
        swapped[1].doc = b;
        swapped[2].doc = a;
        assert_eq!(verify(&swapped).broken.unwrap().0, 2);
    }
}
