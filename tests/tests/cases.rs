//! The case lifecycle of DESIGN.md, rule by rule, and referrals (fiches navettes).

use relais_tests::proto::{self as pb, CaseStatus as S, PartnerKind};
use relais_tests::*;
use tonic::Code;

const ALL: [S; 15] = [
    S::Draft,
    S::Sent,
    S::Acknowledged,
    S::InProgress,
    S::WaitingPerson,
    S::WaitingDocuments,
    S::WaitingThirdParty,
    S::WaitingAppointment,
    S::Accepted,
    S::Refused,
    S::Redirected,
    S::Cancelled,
    S::Abandoned,
    S::Closed,
    S::Duplicate,
];

/// The lifecycle as DESIGN.md states it, written independently of the hub's code.
fn allowed(from: S) -> Vec<S> {
    let mut next = match from {
        S::Draft => vec![S::Sent],
        S::Sent => vec![S::Acknowledged],
        S::Acknowledged => vec![S::InProgress],
        S::InProgress => vec![
            S::WaitingPerson,
            S::WaitingDocuments,
            S::WaitingThirdParty,
            S::WaitingAppointment,
            S::Accepted,
            S::Refused,
            S::Redirected,
            S::Cancelled,
            S::Abandoned,
        ],
        S::WaitingPerson | S::WaitingDocuments | S::WaitingThirdParty | S::WaitingAppointment => {
            vec![S::InProgress]
        }
        S::Accepted | S::Refused | S::Redirected | S::Cancelled | S::Abandoned => vec![S::Closed],
        S::Closed | S::Duplicate | S::Unspecified => vec![],
    };
    if !matches!(from, S::Closed | S::Duplicate) {
        next.push(S::Duplicate);
    }
    next
}

/// A legal path from draft to `to`.
fn path(to: S) -> Vec<S> {
    let head = [S::Sent, S::Acknowledged, S::InProgress];
    match to {
        S::Draft => vec![],
        S::Sent => vec![S::Sent],
        S::Acknowledged => head[..2].to_vec(),
        S::InProgress => head.to_vec(),
        S::Closed => [&head[..], &[S::Accepted, S::Closed]].concat(),
        S::Duplicate => vec![S::Duplicate],
        s => [&head[..], &[s]].concat(),
    }
}

struct Fixture {
    _hub: TestHub,
    bus: Partner,
    original: pb::Case,
}

async fn fixture(backend: Backend) -> Fixture {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    hub.partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    // A redirection hands the case to the sous-préfecture: she agreed to it.
    bus.grant(
        "B1",
        partner("sp-saint-gaudens"),
        &["case_status"],
        &[pb::Purpose::Orientation],
    )
    .await;
    let original = bus.open_case("B1", "F1342").await;
    Fixture {
        _hub: hub,
        bus,
        original,
    }
}

impl Fixture {
    async fn case_in(&self, state: S) -> pb::Case {
        let mut case = self.bus.open_case("B1", "F1342").await;
        for step in path(state) {
            case = self
                .attempt(&case, step)
                .await
                .expect("legal path")
                .r#case
                .unwrap();
        }
        assert_eq!(case.status, state as i32);
        case
    }

    async fn attempt(
        &self,
        case: &pb::Case,
        to: S,
    ) -> Result<pb::TransitionCaseResponse, tonic::Status> {
        let mut request = transition(case, to);
        match to {
            S::Refused => request.reason = "pièces non conformes".into(),
            S::Duplicate => request.duplicate_of = self.original.id.clone(),
            S::Redirected => request.redirect_to_partner = "sp-saint-gaudens".into(),
            _ => {}
        }
        self.bus
            .cases
            .clone()
            .transition_case(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

async fn every_transition_of_the_lifecycle_is_allowed_or_refused_as_designed(backend: Backend) {
    let f = fixture(backend).await;
    let mut checked = 0;
    for from in ALL {
        let legal = allowed(from);
        // Refused transitions change nothing, so one case per state serves them all.
        let case = f.case_in(from).await;
        for to in ALL.into_iter().filter(|to| !legal.contains(to)) {
            let refused = f.attempt(&case, to).await.unwrap_err();
            assert_eq!(
                refused.code(),
                Code::FailedPrecondition,
                "{from:?} → {to:?}"
            );
            let message = refused.message();
            let from_name = from
                .as_str_name()
                .trim_start_matches("CASE_STATUS_")
                .to_lowercase();
            assert!(
                message.contains(&format!("`{from_name}`")),
                "names the state: {message}"
            );
            for next in &legal {
                let next = next
                    .as_str_name()
                    .trim_start_matches("CASE_STATUS_")
                    .to_lowercase();
                assert!(message.contains(&next), "names allowed `{next}`: {message}");
            }
            checked += 1;
        }
        let after = f
            .bus
            .cases
            .clone()
            .get_case(pb::GetCaseRequest {
                context: ctx(),
                case_id: case.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .r#case
            .unwrap();
        assert_eq!(
            after.version, case.version,
            "a refused transition writes nothing"
        );
        for to in legal {
            let case = f.case_in(from).await;
            let moved = f
                .attempt(&case, to)
                .await
                .unwrap_or_else(|s| panic!("{from:?} → {to:?}: {s:?}"));
            let moved_case = moved.r#case.unwrap();
            assert_eq!(moved_case.status, to as i32);
            assert_eq!(moved_case.version, case.version + 1);
            let last = moved_case.history.last().unwrap();
            assert_eq!((last.from_status, last.to_status), (from as i32, to as i32));
            assert_eq!(last.partner, "cc-comminges");
            if to == S::Redirected {
                let child = moved.child_case.expect("a redirection opens a child case");
                assert_eq!(child.owner_partner, "sp-saint-gaudens");
                assert_eq!(child.parent_case_id, moved_case.id);
                assert_eq!(child.status, S::Sent as i32);
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} transitions checked");
}

async fn outcome_rules_need_their_details_and_only_the_holder_moves_a_case(backend: Backend) {
    let f = fixture(backend).await;
    let case = f.case_in(S::InProgress).await;
    let mut refuse = transition(&case, S::Refused);
    refuse.reason = String::new();
    let err = f
        .bus
        .cases
        .clone()
        .transition_case(refuse)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["reason"]);

    let err = f
        .bus
        .cases
        .clone()
        .transition_case(transition(&case, S::Redirected))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["redirect_to_partner"]);

    let err = f
        .bus
        .cases
        .clone()
        .transition_case(transition(&case, S::Duplicate))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["duplicate_of"]);

    // Missing documents travel with the move to waiting_documents.
    let mut waiting = transition(&case, S::WaitingDocuments);
    waiting.missing_documents = Some(pb::DocumentList {
        items: vec!["avis d'imposition 2025".into()],
    });
    let moved = f
        .bus
        .cases
        .clone()
        .transition_case(waiting)
        .await
        .unwrap()
        .into_inner()
        .r#case
        .unwrap();
    assert_eq!(moved.missing_documents, ["avis d'imposition 2025"]);
    let stale = f
        .bus
        .cases
        .clone()
        .transition_case(transition(&case, S::WaitingPerson))
        .await
        .unwrap_err();
    assert_eq!(
        stale.code(),
        Code::Aborted,
        "expected version {} is stale",
        case.version
    );
}

async fn a_referral_goes_to_the_sous_prefecture_and_comes_back_answered(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let sp = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let other = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let case = bus.open_case("B1", "F1342").await;

    // A fiche navette goes only where the person agreed.
    let send = |to: &str| pb::SendReferralRequest {
        context: ctx(),
        case_id: case.id.clone(),
        to_partner: to.into(),
        reason: "renouvellement CNI, pas de moyen de transport".into(),
        requested_action: "rendez-vous au bus mardi à Aspet".into(),
        due_date: String::new(),
        request_id: new_request_id(),
    };
    let refused = bus
        .cases
        .clone()
        .send_referral(send("sp-saint-gaudens"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    bus.grant(
        "B1",
        partner("sp-saint-gaudens"),
        &["referrals", "case_status"],
        &[pb::Purpose::Orientation],
    )
    .await;

    let sent = bus
        .cases
        .clone()
        .send_referral(send("sp-saint-gaudens"))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(sent.state, pb::ReferralState::Sent as i32);

    // The sous-préfecture finds it in its inbox, and sees the case it is about.
    let inbox = sp
        .cases
        .clone()
        .list_referrals(pb::ListReferralsRequest {
            context: ctx(),
            direction: pb::ReferralDirection::Inbound as i32,
            states: vec![],
            page_size: 0,
            page_token: String::new(),
            overdue_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert_eq!(inbox.len(), 1);
    sp.cases
        .clone()
        .get_case(pb::GetCaseRequest {
            context: ctx(),
            case_id: case.id.clone(),
        })
        .await
        .expect("the recipient sees the case");
    // A third partner sees neither.
    let hidden = other
        .cases
        .clone()
        .get_referral(pb::GetReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);

    // Only the recipient acknowledges.
    let err = bus
        .cases
        .clone()
        .acknowledge_referral(pb::AcknowledgeReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: sent.version,
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let acked = sp
        .cases
        .clone()
        .acknowledge_referral(pb::AcknowledgeReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: sent.version,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let answered = sp
        .cases
        .clone()
        .answer_referral(pb::AnswerReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: acked.version,
            answer: "rendez-vous fixé le 9 décembre, apporter photo et justificatif".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(answered.state, pb::ReferralState::Answered as i32);

    // The bus sees the answer on its feed.
    let events = bus.feed_until_caught_up(0).await;
    let last = events.last().unwrap();
    match &last.resource {
        Some(pb::change_event::Resource::Referral(r)) => {
            assert_eq!(r.state, pb::ReferralState::Answered as i32);
            assert!(r.answer.starts_with("rendez-vous fixé"));
        }
        other => panic!("expected the answered referral, got {other:?}"),
    }

    let closed = bus
        .cases
        .clone()
        .close_referral(pb::CloseReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: answered.version,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(closed.state, pb::ReferralState::Closed as i32);
    assert_eq!(closed.history.len(), 3);
    let late = sp
        .cases
        .clone()
        .answer_referral(pb::AnswerReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: closed.version,
            answer: "trop tard".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
}

on_both_backends!(
    every_transition_of_the_lifecycle_is_allowed_or_refused_as_designed,
    outcome_rules_need_their_details_and_only_the_holder_moves_a_case,
    a_referral_goes_to_the_sous_prefecture_and_comes_back_answered,
);
