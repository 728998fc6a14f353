//! Consent in action: a withdrawal takes effect at once and redacts what was delivered; a
//! mandate lets the médiateur follow the person's procedures; the person's access report tells
//! who received what.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::Duration;
use tokio_stream::StreamExt;

async fn next_event(stream: &mut tonic::Streaming<pb::SubscribeResponse>) -> pb::ChangeEvent {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event arrives")
            .expect("the stream is open")
            .expect("no error");
        if let Some(pb::subscribe_response::Payload::Event(e)) = message.payload {
            return e;
        }
    }
}

async fn subscribe(p: &Partner) -> tonic::Streaming<pb::SubscribeResponse> {
    p.sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn summary(p: &Partner, local_id: &str) -> pb::GetPersonSummaryResponse {
    summary_as(p, local_id, "agent-1").await
}

async fn summary_as(p: &Partner, local_id: &str, agent: &str) -> pb::GetPersonSummaryResponse {
    p.persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: Some(pb::RequestContext {
                purpose: pb::Purpose::Accompagnement as i32,
                agent: agent.into(),
            }),
            person: Some(local(local_id)),
            include_history: false,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn a_withdrawal_redacts_what_was_delivered_and_nothing_is_shown_after(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let asso = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    bus.link("B1", rose.clone()).await;
    asso.link("A1", rose.clone()).await;
    mairie.link("M1", rose).await;
    let consent = bus
        .grant(
            "B1",
            kind(PartnerKind::Association),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;

    let mut asso_feed = subscribe(&asso).await;
    let mut mairie_feed = subscribe(&mairie).await;
    let flag = bus.raise("B1", "SANS_INTERNET").await;
    let received = next_event(&mut asso_feed).await;
    assert_eq!(received.kind, pb::ChangeKind::FlagRaised as i32);
    assert_eq!(summary(&asso, "A1").await.flags.len(), 1);

    // She tells the bus agent she no longer wants the association to see it.
    let withdrawn = bus
        .consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
            channel: "bus".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.redacted_partners, ["asso-mediation"]);
    assert_eq!(
        withdrawn.consent.unwrap().state,
        pb::RecordState::Withdrawn as i32
    );

    let redaction = next_event(&mut asso_feed).await;
    assert_eq!(redaction.kind, pb::ChangeKind::Redacted as i32);
    match redaction.resource {
        Some(pb::change_event::Resource::Redaction(r)) => {
            assert_eq!(r.flag_ids, std::slice::from_ref(&flag.id));
            assert_eq!(r.categories, ["digital"]);
            assert_eq!(r.record, format!("consent:{}", consent.id));
        }
        other => panic!("expected a redaction, got {other:?}"),
    }
    assert_eq!(
        redaction.local_ids,
        ["A1"],
        "the connector finds its copy by its own id"
    );
    assert!(
        summary(&asso, "A1").await.flags.is_empty(),
        "the next summary no longer shows it"
    );

    // The mairie never received the flag: it receives nothing, not even the redaction.
    bus.raise("B1", "SANS_TRANSPORT").await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), mairie_feed.next()).await;
    match nothing {
        Err(_) => {}
        Ok(Some(Ok(m))) => {
            assert!(
                !matches!(m.payload, Some(pb::subscribe_response::Payload::Event(_))),
                "the mairie got {m:?}"
            )
        }
        Ok(other) => panic!("{other:?}"),
    }
}

async fn a_mandate_lets_the_mediateur_follow_the_apa_file_until_it_is_revoked(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let departement = hub.partner("cd31", PartnerKind::Departement).await;
    let asso = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    departement.link("APA-7781", rose.clone()).await;
    asso.link("A1", rose).await;

    // The médiateur's mandate is signed at her home (themes: social procedures).
    let granted = asso
        .consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("A1")),
            mandatary: Some(pb::AgentRef {
                partner: String::new(),
                agent: "mediateur-1".into(),
            }),
            themes: vec!["social".into()],
            duration: pb::MandateDuration::SixMonths as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.printable_text.contains("6 mois"));
    assert!(granted.printable_html.contains("Mandat d'accompagnement"));
    let mandate = granted.mandate.unwrap();

    let apa = departement
        .cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("APA-7781")),
            procedure: "local:apa-renouvellement".into(),
            missing_documents: vec![],
            due_date: String::new(),
            initial_status: pb::CaseStatus::Sent as i32,
            request_id: new_request_id(),
            theme: "social".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .r#case
        .unwrap();
    let apa = departement
        .move_case(&apa, pb::CaseStatus::Acknowledged)
        .await;
    let apa = departement
        .move_case(&apa, pb::CaseStatus::InProgress)
        .await;
    let mut waiting = transition(&apa, pb::CaseStatus::WaitingDocuments);
    waiting.missing_documents = Some(pb::DocumentList {
        items: vec!["avis d'imposition 2025".into()],
    });
    departement
        .cases
        .clone()
        .transition_case(waiting)
        .await
        .unwrap();
    // An identity-card case (papiers) is not covered by the mandate.
    departement
        .cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("APA-7781")),
            procedure: "F1342".into(),
            missing_documents: vec![],
            due_date: String::new(),
            initial_status: 0,
            request_id: new_request_id(),
            theme: "papiers".into(),
        })
        .await
        .unwrap();

    let seen = summary_as(&asso, "A1", "mediateur-1").await;
    assert_eq!(seen.cases.len(), 1, "{:?}", seen.cases);
    assert_eq!(
        seen.cases[0].status,
        pb::CaseStatus::WaitingDocuments as i32
    );
    assert_eq!(seen.cases[0].missing_documents, ["avis d'imposition 2025"]);
    assert!(
        summary_as(&asso, "A1", "autre-agent")
            .await
            .cases
            .is_empty(),
        "the mandate names one agent"
    );

    let revoked = asso
        .consent
        .clone()
        .revoke_mandate(pb::RevokeMandateRequest {
            context: ctx(),
            mandate_id: mandate.id,
            channel: "telephone".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.redacted_partners, ["asso-mediation"]);
    assert!(
        summary_as(&asso, "A1", "mediateur-1")
            .await
            .cases
            .is_empty()
    );
}

async fn the_access_report_tells_the_person_who_received_what_and_why(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    let person = bus.link("B1", rose.clone()).await.person_id;
    mairie.link("M1", rose).await;
    let consent = bus
        .grant(
            "B1",
            partner("mairie-aspet"),
            &["mobility"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    bus.raise("B1", "SANS_TRANSPORT").await;
    bus.raise("B1", "PERTE_AUTONOMIE").await;
    assert_eq!(
        summary(&mairie, "M1").await.flags.len(),
        1,
        "mobility only, not health"
    );

    let receipt = bus
        .consent
        .clone()
        .get_consent_receipt(pb::GetConsentReceiptRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(receipt.text.contains("REÇU DE VOTRE ACCORD DE PARTAGE"));
    let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat(&receipt.text).contains("vos difficultés à vous déplacer"));
    assert!(receipt.html.starts_with("<!DOCTYPE html>"));

    let report = hub
        .admin
        .clone()
        .get_access_report(pb::GetAccessReportRequest {
            person_id: person.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&report.json).unwrap();
    let exchanges = json["exchanges"].as_array().unwrap();
    let mairie_read = exchanges
        .iter()
        .find(|e| e["partner"] == "mairie-aspet" && e["action"] == "read:GetPersonSummary")
        .expect("the mairie's read is reported");
    assert_eq!(mairie_read["categories"], serde_json::json!(["mobility"]));
    assert_eq!(mairie_read["refused"], serde_json::json!(["health"]));
    assert_eq!(mairie_read["purpose"], "accompagnement");
    assert_eq!(json["consents"].as_array().unwrap().len(), 1);
    assert!(
        report
            .html
            .contains("Vos informations partagées par Relais")
    );
    assert!(
        report.html.contains("Partner mairie-aspet"),
        "partners are named"
    );
    assert!(
        report
            .text
            .contains("a reçu vos difficultés à vous déplacer")
    );
    assert!(!report.text.contains(&person), "no internal id");
}

on_both_backends!(
    a_withdrawal_redacts_what_was_delivered_and_nothing_is_shown_after,
    a_mandate_lets_the_mediateur_follow_the_apa_file_until_it_is_revoked,
    the_access_report_tells_the_person_who_received_what_and_why,
);
