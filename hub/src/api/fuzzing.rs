//! Entry points for the fuzzers (`hub/fuzz`): bytes in, as a client would send them, through
//! the same decoding (the services' codec) and the same parsing and validation the handlers
//! run, down to the documents rendered from what was accepted. Nothing here may panic, in debug
//! or release, whatever the bytes; an error is a fine answer.

use super::convert;
use crate::documents;
use crate::domain::case::{Procedure, parse_documents};
use crate::domain::consent::{Consent, ConsentId, Grantee, StatusChange};
use crate::domain::ids::free_text;
use crate::domain::pivot::{MatchingKey, PivotIdentity};
use crate::domain::{
    AgentId, CaseId, DataCategory, Day, FlagCode, FlagId, LocalId, PartnerId, PersonId, ReferralId,
    RequestId, Theme, Timestamp,
};
use crate::error::Violations;
use prost::Message;
use relais_proto::v1 as pb;
use std::collections::HashMap;

/// The requests a fuzzer can build: the first byte picks the message, the rest is its
/// encoding.
pub fn check_request(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    // A fixed instant: the checks compare dates with "now".
    let now = Timestamp::from_micros(1_796_000_000_000_000);
    match kind % 10 {
        0 => {
            if let Ok(r) = pb::LinkPersonRequest::decode(bytes) {
                context(r.context.as_ref());
                let _ = LocalId::parse(&r.local_id);
                let _ = RequestId::parse(&r.request_id);
                let _ = PersonId::parse(&r.person_id);
                if let Some(p) = &r.pivot {
                    pivot(p, now);
                }
            }
        }
        1 => {
            if let Ok(r) = pb::ResolvePersonRequest::decode(bytes) {
                context(r.context.as_ref());
                match &r.by {
                    Some(pb::resolve_person_request::By::Pivot(p)) => pivot(p, now),
                    Some(pb::resolve_person_request::By::LocalId(l)) => {
                        let _ = LocalId::parse(l);
                    }
                    None => {}
                }
            }
        }
        2 => {
            if let Ok(r) = pb::RaiseFlagRequest::decode(bytes) {
                context(r.context.as_ref());
                person(r.person.as_ref());
                let _ = FlagCode::parse(&r.code);
                let _ = free_text(&r.note, 280);
                if let Ok(Some(until)) = Day::parse_optional(&r.valid_until) {
                    let _ = until < now.day();
                    let _ = until.to_string();
                }
            }
        }
        3 => {
            if let Ok(r) = pb::OpenCaseRequest::decode(bytes) {
                context(r.context.as_ref());
                person(r.person.as_ref());
                let _ = Procedure::parse(&r.procedure);
                let _ = parse_documents(&r.missing_documents);
                let _ = Day::parse_optional(&r.due_date);
                let _ = convert::case_status_from_pb(r.initial_status);
                let _ = Theme::parse(&r.theme);
            }
        }
        4 => {
            if let Ok(r) = pb::TransitionCaseRequest::decode(bytes) {
                context(r.context.as_ref());
                let _ = CaseId::parse(&r.case_id);
                let _ = convert::case_status_from_pb(r.to_status);
                let _ = free_text(&r.reason, 1000);
                if let Some(d) = &r.missing_documents {
                    let _ = parse_documents(&d.items);
                }
                let _ = CaseId::parse(&r.duplicate_of);
                let _ = PartnerId::parse(&r.redirect_to_partner);
                let _ = Procedure::parse(&r.redirect_procedure);
            }
        }
        5 => {
            if let Ok(r) = pb::SendReferralRequest::decode(bytes) {
                context(r.context.as_ref());
                let _ = CaseId::parse(&r.case_id);
                let _ = free_text(&r.reason, 1000);
                let _ = free_text(&r.requested_action, 1000);
                let _ = Day::parse_optional(&r.due_date);
                let _ = PartnerId::parse(&r.to_partner);
            }
        }
        6 => {
            if let Ok(r) = pb::GrantConsentRequest::decode(bytes) {
                grant_consent(&r, now);
            }
        }
        7 => {
            if let Ok(r) = pb::ListFlagsRequest::decode(bytes) {
                context(r.context.as_ref());
                person(r.person.as_ref());
                let mut v = Violations::new();
                let page = convert::page(r.page_size, &r.page_token, &mut v);
                let _ = convert::page_token(page.after.as_deref().unwrap_or(""));
            }
        }
        8 => {
            if let Ok(r) = pb::GrantMandateRequest::decode(bytes) {
                context(r.context.as_ref());
                person(r.person.as_ref());
                for t in &r.themes {
                    let _ = Theme::parse(t);
                }
                if let Ok(d) = convert::duration_from_pb(r.duration) {
                    // The expiry is computed from now and the duration.
                    let _ = Timestamp::from_micros(now.micros() + d.micros()).day();
                }
                let _ = convert::method_from_pb(r.method);
                if let Some(a) = &r.mandatary {
                    let _ = PartnerId::parse(&a.partner);
                    let _ = AgentId::parse(&a.agent);
                }
            }
        }
        _ => {
            if let Ok(r) = pb::RetractFlagRequest::decode(bytes) {
                context(r.context.as_ref());
                let _ = FlagId::parse(&r.flag_id);
                let _ = free_text(&r.reason, 280);
                let _ = ReferralId::parse(&r.request_id);
            }
        }
    }
}

fn context(ctx: Option<&pb::RequestContext>) {
    let mut v = Violations::new();
    let _ = convert::context(ctx, &mut v);
    let _ = v.finish();
}

fn person(p: Option<&pb::PersonRef>) {
    match p.and_then(|p| p.r#ref.as_ref()) {
        Some(pb::person_ref::Ref::PersonId(id)) => {
            let _ = PersonId::parse(id);
        }
        Some(pb::person_ref::Ref::LocalId(id)) => {
            let _ = LocalId::parse(id);
        }
        None => {}
    }
}

fn pivot(p: &pb::PivotIdentity, now: Timestamp) {
    if let Ok(id) = super::persons::pivot(p, "pivot", now.day()) {
        let key = MatchingKey::from_bytes([7; 32]);
        let _ = key.key(&id);
    }
    let _ = PivotIdentity::parse(
        "pivot",
        &p.family_name,
        &p.first_given_name,
        &p.birth_date,
        &p.birth_place_cog,
    );
}

/// A consent request as the handler validates it; when valid, the record is built and its
/// receipt rendered (a far expiry once overflowed there).
fn grant_consent(r: &pb::GrantConsentRequest, now: Timestamp) {
    context(r.context.as_ref());
    person(r.person.as_ref());
    let categories: Vec<DataCategory> = r
        .categories
        .iter()
        .filter_map(|c| DataCategory::parse(c).ok())
        .collect();
    let purposes: Vec<_> = r
        .purposes
        .iter()
        .filter_map(|p| convert::purpose_from_pb(*p).ok())
        .collect();
    let expires_at = match &r.expires_at {
        Some(t) => match convert::timestamp_from_pb(t) {
            Ok(t) => Some(t),
            Err(_) => return,
        },
        None => None,
    };
    let (Ok(basis), Ok(method), Ok(witness), Ok(notice), Ok(evidence)) = (
        convert::legal_basis_from_pb(r.legal_basis),
        convert::method_from_pb(r.method),
        free_text(&r.witness, 200),
        free_text(&r.notice_version, 64),
        free_text(&r.evidence_ref, 200),
    ) else {
        return;
    };
    let _ = convert::channel_from_pb(r.channel);
    let grantee = match r.grantee.as_ref().and_then(|g| g.grantee.as_ref()) {
        Some(pb::grantee::Grantee::Partner(p)) => match PartnerId::parse(p) {
            Ok(partner) => Grantee::Partner { partner },
            Err(_) => return,
        },
        Some(pb::grantee::Grantee::Kind(k)) => match convert::partner_kind_from_pb(*k) {
            Ok(kind) => Grantee::Kind { kind },
            Err(_) => return,
        },
        _ => return,
    };
    let (Ok(collector), Ok(agent)) = (PartnerId::parse("mairie-aspet"), AgentId::parse("a-1"))
    else {
        return;
    };
    let consent = Consent {
        id: ConsentId::new(),
        person: PersonId::new(),
        grantee,
        categories,
        purposes,
        legal_basis: basis,
        collected_by: collector,
        collected_by_agent: agent,
        method,
        witness,
        notice_version: notice,
        notice_language: "fr".into(),
        evidence_ref: evidence,
        granted_at: now,
        expires_at,
        withdrawal: None,
        history: vec![StatusChange {
            at: now,
            status: crate::domain::consent::RecordState::Granted,
            by: "mairie-aspet".into(),
            agent: "a-1".into(),
            channel: method.as_str().into(),
        }],
        version: 1,
        channel: None,
        countersignature: None,
    };
    let _ = convert::consent(&consent, now);
    let _ = documents::consent_receipt(
        &consent,
        &HashMap::new(),
        &crate::config::TerritoryConfig::default(),
        now,
    );
}

#[cfg(test)]
mod tests {
    /// The fuzz corpus kept in the repository is replayed by every `cargo test`, without
    /// cargo-fuzz: what once made a fuzzer find something stays checked.
    #[test]
    fn the_fuzz_corpus_replays_without_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/requests");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            super::check_request(&bytes);
            replayed += 1;
        }
        assert!(
            replayed >= 10,
            "{replayed} corpus entries in {}",
            dir.display()
        );
    }
}
