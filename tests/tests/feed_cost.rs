//! The feed and the audit cost what the entitled partners need (issue 9): the audit records
//! what left the hub, not what a subscription scanned; a subscription reads only the changes
//! about persons its partner is tied to; the principal cache never outlives a suspension, on
//! any replica.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;

/// Every audit entry, in order.
async fn audit(hub: &TestHub) -> Vec<relais_hub::audit::AuditEntry> {
    hub.hub
        .store
        .audit_page(0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.doc).unwrap())
        .collect()
}

/// The person's access report, as JSON.
async fn access_report(hub: &TestHub, person: &str) -> serde_json::Value {
    let report = hub
        .admin
        .clone()
        .get_access_report(pb::GetAccessReportRequest {
            person_id: person.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&report.json).unwrap()
}

async fn verify(hub: &TestHub) -> pb::VerifyAuditResponse {
    hub.admin
        .clone()
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn who(i: usize) -> pb::PivotIdentity {
    pivot("Habitant", &format!("N{i}"), "1950-01-01", "31483")
}

#[tokio::test]
async fn an_unrelated_partner_replaying_the_feed_adds_no_audit_entry() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let stranger = hub
        .partner("asso-lointaine", PartnerKind::Association)
        .await;
    for i in 0..30 {
        bus.link(&format!("B{i}"), who(i)).await;
        bus.raise(&format!("B{i}"), "SANS_INTERNET").await;
        bus.open_case(&format!("B{i}"), "F1342").await;
    }
    let before = audit(&hub).await.len();
    let rows_before = hub.hub.store.feed_rows_read();

    // Replayed from 0 three times: nothing is given, nothing is written, nothing is read.
    for _ in 0..3 {
        assert!(stranger.feed_until_caught_up(0).await.is_empty());
    }
    assert_eq!(audit(&hub).await.len(), before, "no entry for a scan");
    assert_eq!(
        hub.hub.store.feed_rows_read(),
        rows_before,
        "no change about a person it has no tie with is even read"
    );

    // The writer receiving what it wrote itself is no disclosure either.
    let own = bus.feed_until_caught_up(0).await;
    assert_eq!(own.len(), 60);
    assert_eq!(
        audit(&hub).await.len(),
        before,
        "no entry for its own writes"
    );
    assert!(verify(&hub).await.intact);
}

#[tokio::test]
async fn a_delivered_batch_adds_one_entry_per_person_and_the_report_lists_only_what_was_given() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let mut persons = Vec::new();
    for i in 0..3 {
        persons.push(bus.link(&format!("B{i}"), who(i)).await.person_id);
        mairie.link(&format!("M{i}"), who(i)).await;
        bus.grant(
            &format!("B{i}"),
            partner("mairie-aspet"),
            &["digital", "mobility"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    // Two flags each for the first two persons; the third gets a social flag, which the
    // consent does not open: refused, and not asked for.
    for i in 0..2 {
        bus.raise(&format!("B{i}"), "SANS_INTERNET").await;
        bus.raise(&format!("B{i}"), "SANS_TRANSPORT").await;
    }
    bus.raise("B2", "ISOLEMENT").await;
    let before = audit(&hub).await.len();

    let events = mairie.feed_until_caught_up(0).await;
    let flags: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.resource, Some(pb::change_event::Resource::Flag(_))))
        .collect();
    assert_eq!(flags.len(), 4, "{events:?}");

    let added: Vec<_> = audit(&hub).await.split_off(before);
    assert_eq!(
        added.len(),
        2,
        "one entry per person given something: {added:#?}"
    );
    for entry in &added {
        assert_eq!(entry.principal, "mairie-aspet");
        assert_eq!(entry.action, "deliver:feed");
        assert_eq!(entry.categories, vec!["digital", "mobility"]);
        assert_eq!(entry.decision, "allow");
        assert!(entry.person.is_some_and(|p| p.to_string() != persons[2]));
    }
    assert!(verify(&hub).await.intact);

    // The third person's report lists what was written and read at the counter, no refused
    // delivery that nobody asked for.
    let json = access_report(&hub, &persons[2]).await;
    let deliveries: Vec<_> = json["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("deliver:"))
        .collect();
    assert!(deliveries.is_empty(), "{deliveries:?}");
    // The first person's report lists the one delivery.
    let json = access_report(&hub, &persons[0]).await;
    let deliveries = json["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "deliver:feed" && e["partner"] == "mairie-aspet")
        .count();
    assert_eq!(deliveries, 1);
}

#[tokio::test]
async fn a_partner_tied_to_one_percent_of_persons_reads_one_percent_of_the_changes() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    for i in 0..200 {
        bus.link(&format!("B{i}"), who(i)).await;
    }
    // Tied to 2 persons of 200.
    mairie.link("M0", who(0)).await;
    mairie.link("M1", who(1)).await;
    for i in 0..200 {
        bus.raise(&format!("B{i}"), "SANS_INTERNET").await;
    }
    let rows_before = hub.hub.store.feed_rows_read();
    let events = mairie.feed_until_caught_up(0).await;
    assert!(events.is_empty(), "no consent: nothing given");
    let read = hub.hub.store.feed_rows_read() - rows_before;
    assert_eq!(read, 2, "the changes about its 2 persons, of 200");

    // Live: changes about others do not make it read anything.
    let mut live = mairie
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        live.next().await.unwrap().unwrap().payload,
        Some(pb::subscribe_response::Payload::CaughtUp(_))
    ));
    let rows_before = hub.hub.store.feed_rows_read();
    for i in 2..50 {
        bus.open_case(&format!("B{i}"), "F1342").await;
    }
    bus.open_case("B0", "F1342").await;
    bus.grant(
        "B0",
        partner("mairie-aspet"),
        &["case_status"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let case = bus.open_case("B0", "F16873").await;
    // Its person's earlier case may come first (the consent opens it too); the new one comes.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("delivered live")
            .unwrap()
            .unwrap();
        let Some(pb::subscribe_response::Payload::Event(event)) = event.payload else {
            panic!("an event");
        };
        let Some(pb::change_event::Resource::Case(delivered)) = event.resource else {
            panic!("a case");
        };
        assert_eq!(delivered.person_id, case.person_id, "only its person's");
        if delivered.id == case.id {
            break;
        }
    }
    let read = hub.hub.store.feed_rows_read() - rows_before;
    assert!(
        read <= 3,
        "only the changes about its person were read ({read})"
    );
}

#[tokio::test]
async fn subscriptions_of_one_partner_share_decisions_but_not_across_a_withdrawal() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    bus.link("B1", who(1)).await;
    mairie.link("M1", who(1)).await;
    let consent = bus
        .grant(
            "B1",
            partner("mairie-aspet"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    bus.raise("B1", "SANS_INTERNET").await;
    let flags = |events: &[pb::ChangeEvent]| {
        events
            .iter()
            .filter(|e| matches!(e.resource, Some(pb::change_event::Resource::Flag(_))))
            .count()
    };
    // Two connections of the same connector, one after the other: the same events.
    let first = mairie.feed_until_caught_up(0).await;
    let second = mairie.feed_until_caught_up(0).await;
    assert_eq!(flags(&first), 1);
    assert_eq!(
        first.iter().map(|e| e.position).collect::<Vec<_>>(),
        second.iter().map(|e| e.position).collect::<Vec<_>>()
    );

    // The withdrawal narrows access: what was decided before it is not given again, at once.
    bus.consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
            channel: "bus".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let after = mairie.feed_until_caught_up(0).await;
    assert_eq!(flags(&after), 0, "{after:?}");
    assert!(
        after
            .iter()
            .any(|e| matches!(e.resource, Some(pb::change_event::Resource::Redaction(_)))),
        "the redaction is delivered"
    );
    assert!(verify(&hub).await.intact);
}

/// Connections that do not move in step share too: one starting inside a stretch another
/// decided gets the events after its own cursor, from that stretch, without a new entry.
#[tokio::test]
async fn a_connection_starting_inside_a_decided_stretch_shares_it() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    bus.link("B1", who(1)).await;
    mairie.link("M1", who(1)).await;
    bus.grant(
        "B1",
        partner("mairie-aspet"),
        &["digital", "mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    for code in ["SANS_INTERNET", "SANS_TRANSPORT", "ELOIGNEMENT"] {
        bus.raise("B1", code).await;
    }
    // The first connection stays open (a group lives as long as one of its subscriptions).
    let (first, _open) = mairie.feed_open_until_caught_up(0).await;
    assert!(first.len() >= 3, "{first:?}");
    let entries = audit(&hub).await.len();
    let cursor = first[0].position;
    let second = mairie.feed_until_caught_up(cursor).await;
    assert_eq!(
        second.iter().map(|e| e.position).collect::<Vec<_>>(),
        first[1..].iter().map(|e| e.position).collect::<Vec<_>>(),
        "the events after its cursor, none twice"
    );
    let after = audit(&hub).await;
    assert_eq!(
        after.len(),
        entries,
        "decided and recorded once: {:?}",
        &after[entries.min(after.len())..]
    );
}

fn flags_in(events: &[pb::ChangeEvent]) -> Vec<pb::Flag> {
    events
        .iter()
        .filter_map(|e| match &e.resource {
            Some(pb::change_event::Resource::Flag(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

// Review attacks (kept as tests): entitlement without a link, ties made later, answers to a
// referral, own flags after an unlink, reserved ids.

#[tokio::test]
async fn review_the_alert_plan_and_a_consent_reach_partners_without_a_link() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let sp = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let caf = hub
        .partner("asso-solidarite", PartnerKind::Association)
        .await;
    mairie.link("M1", who(1)).await;
    mairie.raise("M1", "REGISTRE_VULNERABLES").await;
    // A consent naming a partner that has no link to the person.
    mairie
        .grant(
            "M1",
            partner("asso-solidarite"),
            &["social"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    mairie.raise("M1", "ISOLEMENT").await;
    let got = flags_in(&caf.feed_until_caught_up(0).await);
    assert_eq!(
        got.len(),
        1,
        "the consented flag reaches the grantee: {got:?}"
    );
    assert_eq!(got[0].code, "ISOLEMENT");

    hub.admin
        .clone()
        .set_alert_plan(pb::SetAlertPlanRequest {
            active: true,
            reason: "canicule".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let mut plan = sp
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: Some(pb::RequestContext {
                purpose: pb::Purpose::PlanAlerte as i32,
                agent: "cellule-crise".into(),
            }),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(m) = plan.message().await.unwrap() {
        match m.payload {
            Some(pb::subscribe_response::Payload::Event(e)) => seen.push(e),
            Some(pb::subscribe_response::Payload::CaughtUp(_)) => break,
            None => {}
        }
    }
    let codes: Vec<_> = flags_in(&seen).into_iter().map(|f| f.code).collect();
    assert!(
        codes.contains(&"REGISTRE_VULNERABLES".to_string()),
        "under the alert plan the registry reaches the sous-préfecture: {codes:?}"
    );
}

#[tokio::test]
async fn review_a_partner_linking_later_replays_the_earlier_changes() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B0", who(0)).await;
    bus.grant(
        "B0",
        kind(PartnerKind::Mairie),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.raise("B0", "SANS_INTERNET").await;
    // A mairie that joins the hub afterwards: nothing for it, until it links the person…
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    assert!(flags_in(&mairie.feed_until_caught_up(0).await).is_empty());
    mairie.link("M0", who(0)).await;
    // …then a replay from 0 finds the flag raised before the link.
    let got = flags_in(&mairie.feed_until_caught_up(0).await);
    assert_eq!(got.len(), 1, "{got:?}");
}

#[tokio::test]
async fn review_the_answer_to_a_referral_is_audited_when_it_reaches_the_sender() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let sp = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    bus.link("B1", who(1)).await;
    let case = bus.open_case("B1", "F1342").await;
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
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: case.id.clone(),
            to_partner: "sp-saint-gaudens".into(),
            reason: "renouvellement CNI".into(),
            requested_action: "rendez-vous".into(),
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let cursor = bus
        .feed_until_caught_up(0)
        .await
        .last()
        .map_or(0, |e| e.position);
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
    sp.cases
        .clone()
        .answer_referral(pb::AnswerReferralRequest {
            context: ctx(),
            referral_id: sent.id.clone(),
            expected_version: acked.version,
            answer: "rendez-vous fixé le 9 décembre".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let before = audit(&hub).await.len();
    let events = bus.feed_until_caught_up(cursor).await;
    assert_eq!(events.len(), 2, "acknowledged, answered: {events:?}");
    let added: Vec<_> = audit(&hub).await.split_off(before);
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(added[0].principal, "cc-comminges");
    assert_eq!(added[0].action, "deliver:feed");
}

#[tokio::test]
async fn review_a_flag_retracted_by_the_administrator_after_an_unlink_reaches_its_source() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", who(1)).await;
    let flag = bus.raise("B1", "SANS_INTERNET").await;
    let cursor = bus
        .feed_until_caught_up(0)
        .await
        .last()
        .map_or(0, |e| e.position);
    bus.persons
        .clone()
        .unlink_person(pb::UnlinkPersonRequest {
            context: ctx(),
            local_id: "B1".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    hub.admin
        .clone()
        .retract_flag(pb::AdminServiceRetractFlagRequest {
            flag_id: flag.id.clone(),
            reason: "erreur de saisie".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let got = flags_in(&bus.feed_until_caught_up(cursor).await);
    assert_eq!(got.len(), 1, "the retraction reaches the bus");
    assert_eq!(got[0].id, flag.id);
}

#[tokio::test]
async fn review_a_partner_cannot_take_the_name_the_hub_writes_under() {
    let hub = TestHub::start().await;
    for id in ["admin", "hub", "system"] {
        let (_key, csr_pem) = relais_hub::pki::new_key_and_csr(id).unwrap();
        let refused = hub
            .admin
            .clone()
            .add_partner(pb::AddPartnerRequest {
                id: id.into(),
                kind: PartnerKind::Association as i32,
                name: "Imposteur".into(),
                territory: vec!["31483".into()],
                cog_vintage: 0,
                csr_pem,
                request_id: new_request_id(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{id}");
        assert_eq!(violated_fields(&refused), vec!["id"]);
    }
}

#[tokio::test]
async fn review_a_consent_granted_between_two_connections_reaches_the_second_at_once() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    bus.link("B0", who(0)).await;
    bus.raise("B0", "SANS_INTERNET").await;
    // The first connection decides the stretch from 0: nothing for the mairie.
    assert!(flags_in(&mairie.feed_until_caught_up(0).await).is_empty());
    // The consent ties the mairie to the person; a second connection, at once, is not served
    // the stretch decided before it.
    bus.grant(
        "B0",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    assert_eq!(flags_in(&mairie.feed_until_caught_up(0).await).len(), 1);
}

async fn summary(p: &Partner) -> Result<pb::GetPersonSummaryResponse, tonic::Status> {
    p.summary_of("B1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_takes_effect_on_the_next_call_on_every_replica_despite_the_cache() {
    let Some((a, b)) =
        TestHub::two_replicas("a_suspension_takes_effect_on_the_next_call_on_every_replica").await
    else {
        return;
    };

    let on_a = a
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let on_b = Partner::connect("cc-comminges", &b.url(), on_a.bundle.clone()).await;
    on_a.link("B1", who(1)).await;
    for round in 0..3 {
        // Both replicas have the partner in their cache.
        for _ in 0..5 {
            summary(&on_a).await.unwrap();
            summary(&on_b).await.unwrap();
        }
        a.admin
            .clone()
            .suspend_partner(pb::SuspendPartnerRequest {
                id: "cc-comminges".into(),
                reason: format!("contrôle {round}"),
                request_id: new_request_id(),
            })
            .await
            .unwrap();
        for p in [&on_b, &on_a] {
            let refused = summary(p).await.unwrap_err();
            assert_eq!(refused.code(), Code::PermissionDenied, "round {round}");
        }
        b.admin
            .clone()
            .resume_partner(pb::ResumePartnerRequest {
                id: "cc-comminges".into(),
                request_id: new_request_id(),
            })
            .await
            .unwrap();
        summary(&on_a).await.unwrap();
        summary(&on_b).await.unwrap();
    }

    // A revoked certificate too.
    let fingerprint = on_a.bundle.fingerprint().unwrap();
    b.admin
        .clone()
        .revoke_certificate(pb::RevokeCertificateRequest {
            fingerprint,
            reason: "perdu".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    assert_eq!(
        summary(&on_a).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
