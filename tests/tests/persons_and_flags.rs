//! "Tell us once": two partners find the same person by traits and see each other's flags.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use tonic::Code;

async fn two_partners_reach_the_same_person_by_traits_and_see_each_others_flag(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;

    let first = bus
        .link(
            "BUS-0001",
            pivot("Dupont-Lefèvre", "Élodie", "1951-03-08", "31021"),
        )
        .await;
    // Linking by traits never tells whether the person was new: that, too, would be
    // personal data.
    assert_eq!(first.outcome, pb::LinkOutcome::LinkedByPivot as i32);
    let second = ccas
        .link(
            "REG-17",
            pivot("DUPONT LEFEVRE", "ELODIE", "1951-03-08", "31021"),
        )
        .await;
    // Before she agrees, the mairie is linked to the same person but is not told that anyone
    // else knows her.
    assert_eq!(second.outcome, pb::LinkOutcome::LinkedByPivot as i32);
    assert_eq!(first.person_id, second.person_id, "one person, known once");

    // Another birth date is another person.
    let other = ccas
        .link(
            "REG-18",
            pivot("Dupont-Lefèvre", "Élodie", "1951-03-09", "31021"),
        )
        .await;
    assert_eq!(other.outcome, pb::LinkOutcome::LinkedByPivot as i32);
    assert_ne!(other.person_id, first.person_id);

    let flag = bus.raise("BUS-0001", "SANS_INTERNET").await;
    assert_eq!(flag.source_partner, "cc-comminges");
    assert_eq!(flag.label, "Pas d'équipement ou de connexion");
    ccas.raise("REG-17", "ELOIGNEMENT").await;

    // Without consent each sees only its own flag.
    let own_only = ccas
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(local("REG-17")),
            include_history: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own_only.flags.len(), 1);
    assert_eq!(own_only.flags[0].code, "ELOIGNEMENT");

    // At the bus she agrees that the mairies and the communauté see her difficulties and know
    // her, to help her with her procedures.
    for grantee in [
        kind(PartnerKind::Mairie),
        kind(PartnerKind::CommunauteDeCommunes),
    ] {
        bus.grant(
            "BUS-0001",
            grantee,
            &["mobility", "digital", "identity"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    // Now a link by traits says that she was known.
    let third = ccas
        .link(
            "REG-99",
            pivot("Dupont Lefevre", "elodie", "1951-03-08", "31021"),
        )
        .await;
    assert_eq!(third.outcome, pb::LinkOutcome::MatchedByPivot as i32);

    let summary = ccas
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(local("REG-17")),
            include_history: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut codes: Vec<_> = summary.flags.iter().map(|f| f.code.as_str()).collect();
    codes.sort();
    assert_eq!(codes, ["ELOIGNEMENT", "SANS_INTERNET"]);
    assert_eq!(summary.local_ids, ["REG-17", "REG-99"]);

    // The bus sees the mairie's flag through its own local id.
    let listed = bus
        .flags
        .clone()
        .list_flags(pb::ListFlagsRequest {
            context: ctx(),
            person: Some(local("BUS-0001")),
            include_retracted: false,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.flags.len(), 2);

    // Resolving by traits gives the same hub id and the caller's own local ids.
    let resolved = ccas
        .persons
        .clone()
        .resolve_person(pb::ResolvePersonRequest {
            context: ctx(),
            by: Some(pb::resolve_person_request::By::Pivot(pivot(
                "dupont lefevre",
                "élodie",
                "1951-03-08",
                "31021",
            ))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.person_id, first.person_id);
    assert_eq!(resolved.local_ids, ["REG-17", "REG-99"]);
}

async fn a_raised_code_is_not_raised_twice_and_retraction_keeps_history(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    ccas.link("M1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    // She agreed that the mairies see her mobility difficulties.
    bus.grant(
        "B1",
        kind(PartnerKind::Mairie),
        &["mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let flag = bus.raise("B1", "SANS_TRANSPORT").await;

    // Tell us once: the CCAS, which may read the bus's flag, gets it back, not a second one.
    let raise = |code: &'static str| {
        let ccas = ccas.clone();
        async move {
            ccas.flags
                .clone()
                .raise_flag(pb::RaiseFlagRequest {
                    context: ctx(),
                    person: Some(local("M1")),
                    code: code.into(),
                    note: String::new(),
                    valid_until: String::new(),
                    request_id: new_request_id(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let again = raise("SANS_TRANSPORT").await;
    assert!(!again.created);
    assert_eq!(again.flag.unwrap().id, flag.id);

    // A flag belongs to who raised it: the CCAS may read it but not retract it.
    let retract = |who: &Partner, version: i64, reason: &str| {
        let flags = who.flags.clone();
        let request = pb::RetractFlagRequest {
            context: ctx(),
            flag_id: flag.id.clone(),
            expected_version: version,
            reason: reason.into(),
            request_id: new_request_id(),
        };
        async move { flags.clone().retract_flag(request).await }
    };
    let refused = retract(&ccas, flag.version, "a trouvé un covoiturage")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let retracted = retract(&bus, flag.version, "a trouvé un covoiturage")
        .await
        .unwrap()
        .into_inner()
        .flag
        .unwrap();
    assert_eq!(retracted.status, pb::FlagStatus::Retracted as i32);
    assert_eq!(retracted.retracted_by_partner, "cc-comminges");

    let list = |include_retracted| {
        let bus = bus.clone();
        async move {
            bus.flags
                .clone()
                .list_flags(pb::ListFlagsRequest {
                    context: ctx(),
                    person: Some(local("B1")),
                    include_retracted,
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .flags
        }
    };
    assert!(list(false).await.is_empty());
    let history = list(true).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].retraction_reason, "a trouvé un covoiturage");

    // Retracting again with the old version is stale.
    let stale = retract(&bus, flag.version, "").await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
}

async fn a_partner_without_any_tie_to_a_person_does_not_learn_it_exists(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let prefecture = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let linked = bus
        .link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    bus.raise("B1", "SANS_INTERNET").await;

    let denied = prefecture
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(person(&linked.person_id)),
            include_history: false,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::NotFound);
    let unknown = prefecture
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(person(&uuid::Uuid::now_v7().to_string())),
            include_history: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        Code::NotFound,
        "unrelated and unknown look alike"
    );
    assert!(prefecture.feed_until_caught_up(0).await.is_empty());
    assert_eq!(bus.feed_until_caught_up(0).await.len(), 1);

    // No person-level data for statistics, even to a linked partner.
    let stats = bus
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: Some(pb::RequestContext {
                purpose: pb::Purpose::Statistique as i32,
                agent: "analyst".into(),
            }),
            person: Some(local("B1")),
            include_history: false,
        })
        .await
        .unwrap_err();
    assert_eq!(stats.code(), Code::NotFound);
}

on_both_backends!(
    two_partners_reach_the_same_person_by_traits_and_see_each_others_flag,
    a_raised_code_is_not_raised_twice_and_retraction_keeps_history,
    a_partner_without_any_tie_to_a_person_does_not_learn_it_exists,
);
