//! The audit log detects tampering where it happened; the access rules are administered
//! safely: validated with locations, dry-run without effect, versioned, rolled back.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use sqlx::sqlite::SqlitePool;
use tonic::Code;

async fn verify(hub: &TestHub) -> pb::VerifyAuditResponse {
    hub.admin
        .clone()
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn changing_removing_or_reordering_an_audit_entry_is_found_at_that_entry() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    for code in [
        "ELOIGNEMENT",
        "SANS_INTERNET",
        "SANS_TRANSPORT",
        "ISOLEMENT",
    ] {
        bus.raise("B1", code).await;
    }
    let intact = verify(&hub).await;
    assert!(intact.intact, "{intact:?}");
    assert!(intact.entries_checked >= 6, "{intact:?}");

    let db = SqlitePool::connect(&format!(
        "sqlite://{}",
        hub.dir.path().join("relais.db").display()
    ))
    .await
    .unwrap();
    let row = |seq: i64| {
        let db = db.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, Option<String>, String, String, String)>(
                "SELECT seq, at, person_id, doc, prev_hash, hash FROM audit WHERE seq = ?",
            )
            .bind(seq)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // Altered: an agent's name changed in entry 4.
    let original = row(4).await;
    sqlx::query("UPDATE audit SET doc = replace(doc, 'agent-1', 'agent-9') WHERE seq = 4")
        .execute(&db)
        .await
        .unwrap();
    let broken = verify(&hub).await;
    assert!(!broken.intact);
    assert_eq!(broken.first_bad_seq, 4, "{broken:?}");
    assert!(broken.problem.contains("changed"), "{}", broken.problem);
    sqlx::query("UPDATE audit SET doc = ? WHERE seq = 4")
        .bind(&original.3)
        .execute(&db)
        .await
        .unwrap();
    assert!(verify(&hub).await.intact);

    // Removed: entry 3 deleted.
    let removed = row(3).await;
    sqlx::query("DELETE FROM audit WHERE seq = 3")
        .execute(&db)
        .await
        .unwrap();
    let broken = verify(&hub).await;
    assert_eq!(broken.first_bad_seq, 3, "{broken:?}");
    assert!(broken.problem.contains("missing"), "{}", broken.problem);
    sqlx::query(
        "INSERT INTO audit (seq, at, person_id, doc, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(removed.0)
    .bind(removed.1)
    .bind(&removed.2)
    .bind(&removed.3)
    .bind(&removed.4)
    .bind(&removed.5)
    .execute(&db)
    .await
    .unwrap();
    assert!(verify(&hub).await.intact);

    // Reordered: entries 2 and 3 swapped (contents and hashes move together).
    let (two, three) = (row(2).await, row(3).await);
    for (seq, r) in [(2, &three), (3, &two)] {
        sqlx::query("UPDATE audit SET at = ?, person_id = ?, doc = ?, prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(r.1)
            .bind(&r.2)
            .bind(&r.3)
            .bind(&r.4)
            .bind(&r.5)
            .bind(seq)
            .execute(&db)
            .await
            .unwrap();
    }
    let broken = verify(&hub).await;
    assert_eq!(broken.first_bad_seq, 2, "{broken:?}");
}

fn question(person: &str, category: &str) -> pb::AccessQuestion {
    pb::AccessQuestion {
        partner: "mairie-aspet".into(),
        agent: "agent-1".into(),
        person_id: person.into(),
        category: category.into(),
        purpose: pb::Purpose::Accompagnement as i32,
        code: String::new(),
        theme: String::new(),
        write: false,
    }
}

async fn rules_are_validated_dry_run_versioned_and_rolled_back(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    let person = bus.link("B1", rose.clone()).await.person_id;
    mairie.link("M1", rose).await;
    bus.grant(
        "B1",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.raise("B1", "SANS_INTERNET").await;
    let visible = || {
        let mairie = mairie.clone();
        async move {
            mairie
                .persons
                .clone()
                .get_person_summary(pb::GetPersonSummaryRequest {
                    context: ctx(),
                    person: Some(local("M1")),
                    include_history: false,
                })
                .await
                .unwrap()
                .into_inner()
                .flags
                .len()
        }
    };
    assert_eq!(visible().await, 1);
    let mut admin = hub.admin.clone();
    let current = admin
        .get_rules(pb::GetRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.version.as_ref().unwrap().version, 1);

    // An invalid rule set is refused with its place.
    let invalid = "@id(\"x\")\npermit (principal, action, resource)\nwhen { context.purpos == \"instruction\" };\n";
    let checked = admin
        .validate_rules(pb::ValidateRulesRequest {
            text: invalid.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.valid);
    assert_eq!(
        (checked.errors[0].line, checked.errors[0].rule.as_str()),
        (3, "x")
    );
    let refused = admin
        .set_rules(pb::SetRulesRequest {
            text: invalid.into(),
            author: "m.dupont".into(),
            comment: "typo".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("line 3"),
        "{}",
        refused.message()
    );

    // A candidate that keeps digital data from the mairies, tried without effect.
    let candidate = format!(
        "{}\n@id(\"numerique-hors-mairies\")\n@reason(\"test\")\nforbid (principal, action == Relais::Action::\"read\", resource)\nwhen {{ principal.kind == \"mairie\" && resource.category == \"digital\" }};\n",
        current.text
    );
    let tried = admin
        .test_rules(pb::TestRulesRequest {
            text: candidate.clone(),
            questions: vec![question(&person, "digital")],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tried.valid, "{:?}", tried.errors);
    assert!(!tried.candidate[0].allowed);
    assert_eq!(tried.candidate[0].rules, ["numerique-hors-mairies"]);
    assert!(tried.current[0].allowed);
    assert_eq!(visible().await, 1, "a dry run changes nothing");

    let v2 = admin
        .set_rules(pb::SetRulesRequest {
            text: candidate,
            author: "m.dupont@cc-comminges.fr".into(),
            comment: "pas de numérique pour les mairies".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(visible().await, 0, "in force at once");
    let explained = admin
        .explain(pb::ExplainRequest {
            question: Some(question(&person, "digital")),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert!(!explained.allowed);
    assert_eq!(explained.rules, ["numerique-hors-mairies"]);
    assert_eq!(
        explained.consent_state, "granted",
        "the consent is there; the rule denies"
    );

    let v3 = admin
        .rollback_rules(pb::RollbackRulesRequest {
            to_version: 0,
            author: "m.dupont@cc-comminges.fr".into(),
            comment: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!((v3.version, v3.restores), (3, 1));
    assert_eq!(
        visible().await,
        1,
        "the rollback restores the previous decisions"
    );
    let history = admin
        .list_rules_versions(pb::ListRulesVersionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.active, 3);
    let authors: Vec<_> = history.versions.iter().map(|v| v.author.as_str()).collect();
    assert_eq!(
        authors,
        [
            "relais",
            "m.dupont@cc-comminges.fr",
            "m.dupont@cc-comminges.fr"
        ]
    );
    assert_eq!(
        history.versions[1].comment,
        "pas de numérique pour les mairies"
    );
}

on_both_backends!(
    rules_are_validated_dry_run_versioned_and_rolled_back,
    writes_failing_inside_a_group_commit_leave_the_chain_whole,
);

/// Writes that fail inside a group commit (a stale version: only the first of thirty moves of
/// one case can win) are undone alone: the writes committed beside them in the same batches —
/// new cases, reads that record their audit entry — keep one unbroken chain.
async fn writes_failing_inside_a_group_commit_leave_the_chain_whole(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("G1", pivot("Abadie", "Jean", "1950-05-01", "31483"))
        .await;
    bus.raise("G1", "SANS_INTERNET").await;
    let case = bus.open_case("G1", "F1342").await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let bus = bus.clone();
        let case = case.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    bus.open_case("G1", "F1342").await;
                    None
                }
                1 => {
                    bus.summary_of("G1").await.expect("summary");
                    None
                }
                _ => Some(bus.try_move(&case, pb::CaseStatus::Sent).await),
            }
        }));
    }
    let mut moved = 0;
    for t in tasks {
        if let Some(result) = t.await.unwrap() {
            match result {
                Ok(_) => moved += 1,
                Err(status) => assert!(
                    matches!(status.code(), Code::Aborted | Code::FailedPrecondition),
                    "{status:?}"
                ),
            }
        }
    }
    assert_eq!(moved, 1, "one move of version {} wins", case.version);
    let report = verify(&hub).await;
    assert!(report.intact, "{report:?}");
    let cases = bus
        .cases
        .clone()
        .list_cases(pb::ListCasesRequest {
            context: ctx(),
            person: Some(local("G1")),
            statuses: vec![],
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cases.cases.len(), 11, "the ten new cases and the first");
}
