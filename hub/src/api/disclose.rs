//! What an answer may say when it is not data. Data items go through `policy::Access`, item by
//! item; everything else an answer can carry — an error message, a `created` flag, a link
//! outcome, a consent record — is decided here, so that a partner that may not know a person
//! learns nothing from any of them:
//!
//! - a person the caller may not know gets the same code and message as a person that does not
//!   exist, with no hub id, after the same work (the refusal is audited off the caller's path);
//! - a record (flag, case, referral, consent, mandate) the caller may not see is "not found",
//!   naming back only the id the caller sent;
//! - a link conflict names no person (`Error::link_conflict`);
//! - consent records and mandates are shown only to who collected them, whom they name, and
//!   the administrator.

use crate::audit::AuditEntry;
use crate::domain::consent::{Consent, Grantee, Mandate};
use crate::domain::flag::Flag;
use crate::domain::{Partner, PartnerId};
use crate::error::Error;
use crate::store::DynStore;

/// The answer for a person the caller may not know, and for a person that does not exist.
pub(crate) fn no_person() -> Error {
    Error::NotFound {
        what: "person",
        id: String::new(),
    }
}

/// The answer for a record the caller may not see, and for one that does not exist: only the
/// id it sent comes back.
pub(crate) fn no_record(what: &'static str, sent: impl ToString) -> Error {
    Error::not_found(what, sent)
}

/// Records a refusal in the audit without making the caller wait for it: a hidden person must
/// not answer slower than an unknown one.
pub(crate) fn audit_in_background(store: &DynStore, entry: AuditEntry) {
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.record_access(vec![entry], vec![]).await {
            tracing::error!(error = %e, "refusal not audited");
        }
    });
}

/// May `partner` see this consent record? Its collector and the partners it names.
pub(crate) fn consent_visible(partner: &Partner, c: &Consent) -> bool {
    c.collected_by == partner.id || names(&c.grantee, partner)
}

/// May `partner` see this mandate? Its collector and the mandatary's partner.
pub(crate) fn mandate_visible(partner: &Partner, m: &Mandate) -> bool {
    m.collected_by == partner.id || m.partner == partner.id
}

fn names(g: &Grantee, partner: &Partner) -> bool {
    match g {
        Grantee::Partner { partner: p } | Grantee::Agent { partner: p, .. } => *p == partner.id,
        Grantee::Kind { kind } => *kind == partner.kind,
    }
}

/// Tell us once: the same difficulty raised by several partners is shown once to a reader who
/// may see more than one of them — its own flag if it raised one, else the most surely known
/// (attested, then observed, then declared), the first raised among those.
/// Retracted flags (history) are shown as they are.
pub(crate) fn fold_flags<'a>(
    flags: impl IntoIterator<Item = &'a Flag>,
    me: &PartnerId,
) -> Vec<&'a Flag> {
    let flags: Vec<&Flag> = flags.into_iter().collect();
    let mut shown: Vec<&Flag> = Vec::with_capacity(flags.len());
    for f in &flags {
        if f.retraction.is_some() {
            shown.push(f);
            continue;
        }
        let first_of_code = flags
            .iter()
            .filter(|o| o.retraction.is_none() && o.code == f.code)
            .min_by_key(|o| {
                (
                    &o.source_partner != me,
                    std::cmp::Reverse(o.qualified().how),
                    o.raised_at,
                    o.id,
                )
            })
            .is_some_and(|o| o.id == f.id);
        if first_of_code {
            shown.push(f);
        }
    }
    shown
}

/// One page of a list, cut *after* deciding what the caller may see: a page holds up to
/// `size` visible items, and a next-page token is given only when a further visible item
/// exists. Cutting before filtering would let empty pages and tokens count the hidden items
/// (and name their ids). `keep` decides and records an item that will be answered; `peek`
/// only decides the one look-ahead item, which is not answered and so not recorded.
pub(crate) async fn visible_page<T, Fut>(
    after: Option<String>,
    size: u32,
    mut fetch: impl FnMut(Option<String>, u32) -> Fut,
    key: impl Fn(&T) -> String,
    mut keep: impl FnMut(&T) -> bool,
    mut peek: impl FnMut(&T) -> bool,
) -> crate::error::Result<(Vec<T>, String)>
where
    Fut: std::future::Future<Output = crate::error::Result<Vec<T>>>,
{
    // Rows are read in chunks a little larger than the page, to need few round trips when
    // most rows are visible.
    let chunk = size.saturating_add(1).max(16);
    let mut cursor = after;
    let mut out: Vec<T> = Vec::new();
    loop {
        let rows = fetch(cursor.clone(), chunk).await?;
        let exhausted = rows.len() < chunk as usize;
        for row in rows {
            cursor = Some(key(&row));
            if out.len() == size as usize {
                if peek(&row) {
                    let token = out.last().map(&key).unwrap_or_default();
                    return Ok((out, super::convert::page_token(&token)));
                }
            } else if keep(&row) {
                out.push(row);
            }
        }
        if exhausted {
            return Ok((out, String::new()));
        }
    }
}
