//! The existence oracle: for every call that can name a person — by hub id, by traits, through
//! a flag, a case, a referral, a consent record or a mandate — a partner that may not know the
//! person gets exactly the answer it gets for a person (or record) that does not exist, once
//! what it sent itself is taken out of the message.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;

/// Code and message, with the ids the caller sent replaced by a placeholder.
fn seen<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, sent: &[&str]) -> String {
    match r {
        Ok(resp) => {
            let mut text = format!("OK {:?}", resp.into_inner());
            for s in sent {
                text = text.replace(s, "<sent>");
            }
            text
        }
        Err(s) => {
            let mut message = s.message().to_string();
            for id in sent {
                message = message.replace(id, "<sent>");
            }
            format!("{:?} {message}", s.code())
        }
    }
}

fn random_person() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_record() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn a_hidden_person_answers_exactly_like_one_that_does_not_exist() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    let hidden = bus.link("B1", rose.clone()).await.person_id;
    let flag = bus.raise("B1", "PERTE_AUTONOMIE").await;
    let case = bus.open_case("B1", "F1342").await;
    let consent = bus
        .grant(
            "B1",
            partner("cc-comminges"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await
        .id;
    let mandate = bus
        .consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("B1")),
            mandatary: Some(pb::AgentRef {
                partner: "cc-comminges".into(),
                agent: "mediateur-1".into(),
            }),
            themes: vec!["papiers".into()],
            duration: pb::MandateDuration::OneMonth as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .mandate
        .unwrap()
        .id;
    let nobody = random_person();
    let mut checked = 0;

    // Calls naming the person by hub id.
    macro_rules! by_person {
        ($name:literal, |$p:ident| $call:expr) => {{
            let h = {
                let $p = person(&hidden);
                seen($call, &[&hidden])
            };
            let n = {
                let $p = person(&nobody);
                seen($call, &[&nobody])
            };
            assert_eq!(h, n, "{}", $name);
            assert!(h.starts_with("NotFound"), "{}: {h}", $name);
            checked += 1;
        }};
    }
    by_person!("GetPersonSummary", |p| mairie
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(p),
            include_history: true,
        })
        .await);
    by_person!("ListFlags", |p| mairie
        .flags
        .clone()
        .list_flags(pb::ListFlagsRequest {
            context: ctx(),
            person: Some(p),
            include_retracted: true,
            page_size: 0,
            page_token: String::new(),
        })
        .await);
    by_person!("ListCases", |p| mairie
        .cases
        .clone()
        .list_cases(pb::ListCasesRequest {
            context: ctx(),
            person: Some(p),
            statuses: vec![],
            page_size: 0,
            page_token: String::new(),
        })
        .await);
    by_person!("RaiseFlag", |p| mairie
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(p),
            code: "SANS_INTERNET".into(),
            note: String::new(),
            valid_until: String::new(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await);
    by_person!("OpenCase", |p| mairie
        .cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(p),
            procedure: "F1342".into(),
            missing_documents: vec![],
            due_date: String::new(),
            initial_status: 0,
            request_id: new_request_id(),
            theme: String::new(),
        })
        .await);
    by_person!("GrantConsent", |p| {
        let mut request = consent_request(
            "x",
            partner("mairie-aspet"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        );
        request.person = Some(p);
        mairie.consent.clone().grant_consent(request).await
    });
    by_person!("ListConsents", |p| mairie
        .consent
        .clone()
        .list_consents(pb::ListConsentsRequest {
            context: ctx(),
            person: Some(p),
        })
        .await);
    by_person!("ListMandates", |p| mairie
        .consent
        .clone()
        .list_mandates(pb::ListMandatesRequest {
            context: ctx(),
            person: Some(p),
        })
        .await);
    by_person!("GrantMandate", |p| mairie
        .consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(p),
            mandatary: Some(pb::AgentRef {
                partner: String::new(),
                agent: "agent-1".into(),
            }),
            themes: vec!["papiers".into()],
            duration: pb::MandateDuration::OneDay as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await);

    // Linking a local id to a hub id.
    let link_to = |id: String, local_id: &'static str| {
        let mut persons = mairie.persons.clone();
        async move {
            persons
                .link_person(pb::LinkPersonRequest {
                    context: ctx(),
                    local_id: local_id.into(),
                    pivot: None,
                    person_id: id,
                    request_id: new_request_id(),
                })
                .await
        }
    };
    assert_eq!(
        seen(link_to(hidden.clone(), "M1").await, &[&hidden]),
        seen(link_to(nobody.clone(), "M1").await, &[&nobody]),
        "LinkPerson by hub id"
    );
    checked += 1;

    // By traits: resolving, and linking (neutral outcome, same for a new and a known person).
    let resolve = |traits: pb::PivotIdentity| {
        let mut persons = mairie.persons.clone();
        async move {
            persons
                .resolve_person(pb::ResolvePersonRequest {
                    context: ctx(),
                    by: Some(pb::resolve_person_request::By::Pivot(traits)),
                })
                .await
        }
    };
    let ghost = pivot("Fantome", "Jean", "1950-01-01", "31483");
    assert_eq!(
        seen(resolve(rose.clone()).await, &[]),
        seen(resolve(ghost.clone()).await, &[]),
        "ResolvePerson by traits"
    );
    checked += 1;
    let known = mairie.link("M2", rose.clone()).await;
    let new = mairie.link("M3", ghost).await;
    assert_eq!(known.outcome, new.outcome, "LinkPerson by traits");
    assert_eq!(known.outcome, pb::LinkOutcome::LinkedByPivot as i32);
    checked += 1;
    // (The mairie is now linked to Mme Castet: the record checks below use a partner that
    // still has no tie with her.)
    let association = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;

    // Records naming the person: a flag, a case, a consent record, a mandate.
    macro_rules! by_record {
        ($name:literal, $real:expr, |$id:ident| $call:expr) => {{
            let real: String = $real;
            let fake = random_record();
            let h = {
                let $id = real.clone();
                seen($call, &[&real])
            };
            let n = {
                let $id = fake.clone();
                seen($call, &[&fake])
            };
            assert_eq!(h, n, "{}", $name);
            assert!(h.starts_with("NotFound"), "{}: {h}", $name);
            checked += 1;
        }};
    }
    by_record!("RetractFlag", flag.id.clone(), |id| association
        .flags
        .clone()
        .retract_flag(pb::RetractFlagRequest {
            context: ctx(),
            flag_id: id,
            expected_version: 1,
            reason: String::new(),
            request_id: new_request_id(),
        })
        .await);
    by_record!("GetCase", case.id.clone(), |id| association
        .cases
        .clone()
        .get_case(pb::GetCaseRequest {
            context: ctx(),
            case_id: id,
        })
        .await);
    by_record!("TransitionCase", case.id.clone(), |id| association
        .cases
        .clone()
        .transition_case(pb::TransitionCaseRequest {
            case_id: id,
            ..transition(&case, pb::CaseStatus::Sent)
        })
        .await);
    by_record!("SendReferral", case.id.clone(), |id| association
        .cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: id,
            to_partner: "cc-comminges".into(),
            reason: "suite".into(),
            requested_action: String::new(),
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await);
    by_record!("WithdrawConsent", consent.clone(), |id| association
        .consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: id,
            channel: "guichet".into(),
            request_id: new_request_id(),
        })
        .await);
    by_record!("GetConsentReceipt", consent.clone(), |id| association
        .consent
        .clone()
        .get_consent_receipt(pb::GetConsentReceiptRequest {
            context: ctx(),
            consent_id: id,
        })
        .await);
    by_record!("RevokeMandate", mandate.clone(), |id| association
        .consent
        .clone()
        .revoke_mandate(pb::RevokeMandateRequest {
            context: ctx(),
            mandate_id: id,
            channel: "guichet".into(),
            request_id: new_request_id(),
        })
        .await);
    assert!(checked >= 18, "{checked} calls compared");
}
