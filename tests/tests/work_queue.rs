//! The work queue: a partner's open cases and the referrals awaiting it, in a transparent
//! priority order with reasons in plain French; a difficulty it may not read changes nothing.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;

fn in_days(days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

async fn open(p: &Partner, local_id: &str, due: &str) -> pb::Case {
    p.cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local(local_id)),
            procedure: "F1342".into(),
            due_date: due.into(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .expect("open case")
        .into_inner()
        .r#case
        .expect("case")
}

async fn queue(p: &Partner) -> Vec<pb::WorkItem> {
    p.cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: ctx(),
            ..Default::default()
        })
        .await
        .expect("work queue")
        .into_inner()
        .items
}

#[tokio::test]
async fn the_queue_is_ordered_by_what_the_partner_may_read_and_says_why() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    let people = [
        ("A", "Abadie"),
        ("B", "Barrère"),
        ("C", "Castet"),
        ("D", "Dupuy"),
    ];
    for (id, name) in people {
        let who = pivot(name, "Marie", "1944-04-04", "31021");
        ccas.link(id, who.clone()).await;
        bus.link(id, who.clone()).await;
        cd.link(id, who).await;
    }
    // A: due in five days. B: the bus saw she lives far away, and she agreed the CCAS knows.
    // C: the département knows of a health difficulty the CCAS may not read. D: nothing.
    let a = open(&ccas, "A", &in_days(5)).await;
    let b = open(&ccas, "B", "").await;
    let c = open(&ccas, "C", "").await;
    let d = open(&ccas, "D", "").await;
    bus.grant(
        "B",
        partner("mairie-aspet"),
        &["mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.qualify("B", "ELOIGNEMENT", pb::Qualification::Observed, "")
        .await
        .unwrap();
    cd.qualify(
        "C",
        "PERTE_AUTONOMIE",
        pb::Qualification::Attested,
        "notification APA du département",
    )
    .await
    .unwrap();

    let items = queue(&ccas).await;
    let case_of = |i: &pb::WorkItem| match &i.item {
        Some(pb::work_item::Item::Case(c)) => c.id.clone(),
        other => panic!("{other:?}"),
    };
    let order: Vec<String> = items.iter().map(case_of).collect();
    assert_eq!(order[0], a.id, "the nearest deadline first: {items:?}");
    assert_eq!(items[0].explanation, "échéance dans 5 jours");
    assert_eq!(order[1], b.id);
    assert_eq!(items[1].explanation, "habite loin (constaté)");
    assert_eq!(items[1].local_ids, ["B"]);
    // C's hidden difficulty changes nothing: C and D stand exactly alike.
    let rest: Vec<&pb::WorkItem> = items[2..].iter().collect();
    assert_eq!(rest.len(), 2);
    let mut ids: Vec<String> = rest.iter().map(|i| case_of(i)).collect();
    ids.sort();
    let mut expected = vec![c.id.clone(), d.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(rest[0].score, rest[1].score);
    assert_eq!(rest[0].explanation, "");
    assert_eq!(rest[1].explanation, "");
    assert_eq!(
        items.iter().map(|i| i.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    // A fiche navette the bus sends it, due in two days, comes into its queue with its reasons.
    bus.grant(
        "D",
        partner("mairie-aspet"),
        &["referrals", "case_status"],
        &[pb::Purpose::Orientation],
    )
    .await;
    let bus_case = bus.open_case("D", "F1342").await;
    bus.cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: bus_case.id,
            to_partner: "mairie-aspet".into(),
            reason: "aide pour le dossier".into(),
            requested_action: "rappeler".into(),
            due_date: in_days(2),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let items = queue(&ccas).await;
    assert_eq!(items.len(), 5);
    let Some(pb::work_item::Item::Referral(r)) = &items[0].item else {
        panic!("the referral due in two days comes first: {items:?}");
    };
    assert_eq!(r.from_partner, "cc-comminges");
    assert_eq!(items[0].explanation, "échéance dans 2 jours");

    // Paging keeps the order.
    let first = ccas
        .cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: ctx(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let second = ccas
        .cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: ctx(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.items[0].rank, 3);
    assert_eq!(second.items[0].explanation, items[2].explanation);

    // Only the persons on the page are read, and recorded: one entry for a page of one.
    let reads = |hub: &TestHub| {
        let store = hub.hub.store.clone();
        async move {
            store
                .audit_page(0, 100_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.doc.contains("\"read:ListWorkQueue\""))
                .count()
        }
    };
    let before = reads(&hub).await;
    ccas.cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: ctx(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reads(&hub).await, before + 1);

    // A forged token, or an outcome among the statuses, is refused with its field.
    for (token, statuses) in [
        (
            "cmVsYWlzLnYxOjE4NDQ2NzQ0MDczNzA5NTUxNjE1".to_string(),
            vec![],
        ),
        (String::new(), vec![pb::CaseStatus::Accepted as i32]),
    ] {
        let refused = ccas
            .cases
            .clone()
            .list_work_queue(pb::ListWorkQueueRequest {
                context: ctx(),
                page_token: token,
                statuses,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }
}

fn case_ids(items: &[pb::WorkItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i.item {
            Some(pb::work_item::Item::Case(c)) => c.id.clone(),
            Some(pb::work_item::Item::Referral(r)) => r.id.clone(),
            None => String::new(),
        })
        .collect()
}

#[tokio::test]
async fn the_priorities_are_a_versioned_setting_with_a_dry_run_history_and_rollback() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    for (id, name) in [("A", "Abadie"), ("B", "Barrère")] {
        ccas.link(id, pivot(name, "Marie", "1944-04-04", "31021"))
            .await;
    }
    // A: due in twenty days; B: an APA renewal of the catalogue due in twenty-five days.
    let a = open(&ccas, "A", &in_days(20)).await;
    let b = ccas
        .cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("B")),
            procedure: "local:apa-renouvellement".into(),
            due_date: in_days(25),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .r#case
        .unwrap();
    let items = queue(&ccas).await;
    assert_eq!(case_ids(&items), [b.id.clone(), a.id.clone()]);
    assert_eq!(
        items[0].explanation,
        "échéance dans 25 jours (le droit à l'APA perdu après)"
    );

    let mut admin = hub.admin.clone();
    // Version 0: the commented built-in defaults.
    let current = admin
        .get_priorities(pb::GetPrioritiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.version.unwrap().version, 0);
    assert!(current.text.contains("[[procedures]]"));

    // A text with a mistake says where.
    let wrong = admin
        .dry_run_priorities(pb::DryRunPrioritiesRequest {
            text: "[waiting]\nafter_days = 7\nper_jour = 1\n".into(),
            partner: "mairie-aspet".into(),
            purpose: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!wrong.valid);
    assert_eq!((wrong.errors[0].line, wrong.errors[0].column), (3, 1));

    // Without the catalogue, A comes first: the dry run lists both items' moves, nothing
    // changes until it is activated.
    // (A section left out keeps its built-in value: the catalogue is emptied explicitly.)
    let flat = format!(
        "procedures = []\n{}",
        current
            .text
            .split("# The territory's catalogue")
            .next()
            .unwrap()
    );
    let dry = admin
        .dry_run_priorities(pb::DryRunPrioritiesRequest {
            text: flat.clone(),
            partner: "mairie-aspet".into(),
            purpose: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dry.valid, "{dry:?}");
    assert_eq!(dry.items, 2);
    assert_eq!(dry.current_version, 0);
    let moves: Vec<(String, i32, i32)> = dry
        .changes
        .iter()
        .map(|c| (c.item_id.clone(), c.rank_before, c.rank_after))
        .collect();
    assert_eq!(
        moves,
        [(a.id.clone(), 2, 1), (b.id.clone(), 1, 2)],
        "{dry:?} {flat}"
    );
    // Ranks only, and each person whose item moved has the dry run in their audit.
    let dry_runs = hub
        .hub
        .store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.doc.contains("dry run of candidate priorities"))
        .count();
    assert_eq!(dry_runs, 1 + 2);
    assert_eq!(case_ids(&queue(&ccas).await), [b.id.clone(), a.id.clone()]);

    // Activation needs an author and a comment; then the queue follows it.
    let refused = admin
        .set_priorities(pb::SetPrioritiesRequest {
            text: flat.clone(),
            author: "".into(),
            comment: "".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["author", "comment"]);
    let refused = admin
        .set_priorities(pb::SetPrioritiesRequest {
            text: "[deadlines]\nwindow_days = 0\n".into(),
            author: "Claire Sentenac".into(),
            comment: "test".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["text"]);
    let v1 = admin
        .set_priorities(pb::SetPrioritiesRequest {
            text: flat,
            author: "Claire Sentenac".into(),
            comment: "catalogue en révision".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(case_ids(&queue(&ccas).await), [a.id.clone(), b.id.clone()]);

    // Rollback: to the defaults' text again, as version 2, in the history.
    let defaults = current.text.clone();
    let v2 = admin
        .set_priorities(pb::SetPrioritiesRequest {
            text: defaults,
            author: "Claire Sentenac".into(),
            comment: "retour au catalogue".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(case_ids(&queue(&ccas).await), [b.id.clone(), a.id.clone()]);
    let back = admin
        .rollback_priorities(pb::RollbackPrioritiesRequest {
            to_version: 0,
            author: "Claire Sentenac".into(),
            comment: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!((back.version, back.restores), (v2.version + 1, 1));
    assert_eq!(case_ids(&queue(&ccas).await), [a.id.clone(), b.id.clone()]);
    let history = admin
        .list_priorities_versions(pb::ListPrioritiesVersionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.active, 3);
    assert_eq!(history.versions.len(), 3);
    assert_eq!(history.versions[2].comment, "rollback to version 1");

    // A request id used for one method is not replayed for another with the same fields.
    let reused = new_request_id();
    admin
        .rollback_rules(pb::RollbackRulesRequest {
            to_version: 1,
            author: "Claire Sentenac".into(),
            comment: "test".into(),
            request_id: reused.clone(),
        })
        .await
        .unwrap();
    let refused = admin
        .rollback_priorities(pb::RollbackPrioritiesRequest {
            to_version: 1,
            author: "Claire Sentenac".into(),
            comment: "test".into(),
            request_id: reused,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["request_id"]);

    // Each change is in the audit, under the administrator.
    let audited = hub
        .hub
        .store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.doc.contains("priorities changed by Claire Sentenac"))
        .count();
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn the_queue_filters_by_commune_only_where_the_partner_may_know_where_they_live() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    for (id, name) in [("A", "Abadie"), ("B", "Barrère"), ("C", "Castet")] {
        let who = pivot(name, "Marie", "1944-04-04", "31021");
        ccas.link(id, who.clone()).await;
        bus.link(id, who).await;
    }
    let a = open(&ccas, "A", "").await;
    let b = open(&ccas, "B", "").await;
    let _c = open(&ccas, "C", "").await;
    let live = |p: &Partner, id: &str, commune: &str| {
        let mut persons = p.persons.clone();
        let (id, commune) = (id.to_string(), commune.to_string());
        async move {
            persons
                .set_residence(pb::SetResidenceRequest {
                    context: ctx(),
                    person: Some(local(&id)),
                    commune,
                    request_id: new_request_id(),
                })
                .await
        }
    };
    // The CCAS records A in Aspet; the bus records B in Aspet too, which the CCAS may not
    // know; C lives in Saint-Gaudens.
    let said = live(&ccas, "A", "31020").await.unwrap().into_inner();
    assert_eq!(said.commune_name, "Aspet");
    live(&bus, "B", "31020").await.unwrap();
    live(&ccas, "C", "31483").await.unwrap();
    let refused = live(&ccas, "A", "Aspet").await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["commune"]);

    let in_aspet = |p: Partner| async move {
        p.cases
            .clone()
            .list_work_queue(pb::ListWorkQueueRequest {
                context: ctx(),
                commune: "31020".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .items
    };
    assert_eq!(
        case_ids(&in_aspet(ccas.clone()).await),
        std::slice::from_ref(&a.id)
    );
    // Once B agrees that the CCAS knows who she is and where she lives, she is there too.
    bus.grant(
        "B",
        partner("mairie-aspet"),
        &["identity"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let mut both = case_ids(&in_aspet(ccas.clone()).await);
    both.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(both, expected);
    let refused = ccas
        .cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: ctx(),
            commune: "Aspet".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["commune"]);
}

#[tokio::test]
async fn rolling_back_the_first_version_restores_the_built_in_defaults() {
    let hub = TestHub::start().await;
    let mut admin = hub.admin.clone();
    let defaults = admin
        .get_priorities(pb::GetPrioritiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .text;
    admin
        .set_priorities(pb::SetPrioritiesRequest {
            text: "[referrals]\noverdue = 40\n".into(),
            author: "Claire Sentenac".into(),
            comment: "les fiches navettes d'abord".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let back = admin
        .rollback_priorities(pb::RollbackPrioritiesRequest {
            to_version: 0,
            author: "Claire Sentenac".into(),
            comment: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(back.version, 2);
    assert_eq!(back.comment, "rollback to the built-in defaults");
    let now = admin
        .get_priorities(pb::GetPrioritiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.text, defaults);
    // Nothing before the defaults.
    let refused = admin
        .rollback_priorities(pb::RollbackPrioritiesRequest {
            to_version: 7,
            author: "Claire Sentenac".into(),
            comment: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_dry_run_never_tells_the_administrator_who_has_a_health_difficulty() {
    let hub = TestHub::start().await;
    let due_in_5 = in_days(5);
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    for (id, name) in [("A", "Abadie"), ("B", "Barrère"), ("C", "Castet")] {
        cd.link(id, pivot(name, "Marie", "1944-04-04", "31020"))
            .await;
        // A first (due in five days), then B, then C.
        open(&cd, id, if id == "A" { &due_in_5 } else { "" }).await;
    }
    // B's handicap is the département's own flag: its queue may weigh it…
    cd.qualify(
        "B",
        "HANDICAP",
        pb::Qualification::Attested,
        "décision MDPH",
    )
    .await
    .unwrap();
    // …but a dry run weighting only the handicap moves nothing the administrator sees.
    let dry = hub
        .admin
        .clone()
        .dry_run_priorities(pb::DryRunPrioritiesRequest {
            text: "[difficulties.codes]\nHANDICAP = 1000\n".into(),
            partner: "departement-31".into(),
            purpose: pb::Purpose::Instruction as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dry.valid);
    assert_eq!(dry.items, 3);
    assert!(dry.changes.is_empty(), "{:?}", dry.changes);
    // Activated, the same text does put B first in the département's own queue.
    hub.admin
        .clone()
        .set_priorities(pb::SetPrioritiesRequest {
            text: "[difficulties.codes]\nHANDICAP = 1000\n".into(),
            author: "Claire Sentenac".into(),
            comment: "essai".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let first = cd
        .cases
        .clone()
        .list_work_queue(pb::ListWorkQueueRequest {
            context: Some(pb::RequestContext {
                purpose: pb::Purpose::Instruction as i32,
                agent: "agent-1".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(first[0].local_ids, ["B"], "{first:?}");
}
