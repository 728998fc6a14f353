//! Qualified difficulties: each flag says how it is known (declared, observed, attested), by
//! whom and when, and when to check it again; a stronger qualification upgrades the flag its
//! source holds, history kept; past its review day it shows as "à revoir", still shared.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use sqlx::sqlite::SqlitePool;
use tonic::Code;

fn how(f: &pb::Flag) -> pb::Qualification {
    pb::Qualification::try_from(f.qualification.as_ref().expect("qualified").qualification).unwrap()
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn day(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

async fn summary_flags(p: &Partner, local_id: &str) -> Vec<pb::Flag> {
    p.summary_of(local_id).await.expect("summary").flags
}

#[tokio::test]
async fn a_stronger_qualification_upgrades_the_flag_and_keeps_its_history() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;

    // Older clients send no qualification: declared, with the territory's review delay.
    let declared = bus.raise("B1", "ELOIGNEMENT").await;
    assert_eq!(how(&declared), pb::Qualification::Declared);
    let q = declared.qualification.clone().unwrap();
    assert_eq!(q.partner, "cc-comminges");
    assert_eq!(q.agent, "agent-1");
    assert_eq!(declared.review_on, day(today() + time::Duration::days(365)));
    assert!(!declared.to_review);
    assert!(declared.qualification_history.is_empty());

    // The bus drives there: observed. The same flag, upgraded.
    let observed = bus
        .qualify("B1", "ELOIGNEMENT", pb::Qualification::Observed, "")
        .await
        .unwrap();
    assert!(!observed.created && observed.requalified, "{observed:?}");
    let flag = observed.flag.unwrap();
    assert_eq!(flag.id, declared.id);
    assert_eq!(flag.version, declared.version + 1);
    assert_eq!(how(&flag), pb::Qualification::Observed);
    assert_eq!(flag.qualification_history.len(), 1);
    assert_eq!(
        flag.qualification_history[0].qualification,
        pb::Qualification::Declared as i32
    );

    // Said again, less surely: nothing changes.
    let again = bus
        .qualify("B1", "ELOIGNEMENT", pb::Qualification::Declared, "")
        .await
        .unwrap();
    assert!(!again.created && !again.requalified);
    assert_eq!(again.flag.unwrap().version, flag.version);

    // Its subscriber hears of the upgrade, qualified.
    let events = bus.feed_until_caught_up(0).await;
    let last = events
        .iter()
        .rev()
        .find_map(|e| match &e.resource {
            Some(pb::change_event::Resource::Flag(f)) => Some(f.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.version, flag.version);
    assert_eq!(how(&last), pb::Qualification::Observed);
}

#[tokio::test]
async fn attested_needs_evidence_and_a_review_day_must_be_ahead() {
    let hub = TestHub::start().await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    cd.link("U1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let refused = cd
        .qualify("U1", "PERTE_AUTONOMIE", pb::Qualification::Attested, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["evidence"]);

    let past = cd
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local("U1")),
            code: "PERTE_AUTONOMIE".into(),
            qualification: 99,
            review_on: day(today()),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&past), ["qualification", "review_on"]);

    let attested = cd
        .qualify(
            "U1",
            "PERTE_AUTONOMIE",
            pb::Qualification::Attested,
            "notification APA du département",
        )
        .await
        .unwrap();
    assert!(attested.created);
    let flag = attested.flag.unwrap();
    assert_eq!(
        flag.qualification.unwrap().evidence,
        "notification APA du département"
    );
    assert_eq!(flag.review_on, day(today() + time::Duration::days(730)));
}

/// A reader who may see the same difficulty from two partners is shown the most surely known;
/// a partner raising what another already holds, known as surely, is answered with that flag.
#[tokio::test]
async fn readers_see_the_most_surely_known_and_tell_us_once_respects_it() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let aspet = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    let who = pivot("Castet", "Rose", "1943-02-17", "31021");
    for p in [&bus, &aspet, &cd] {
        p.link("P", who.clone()).await;
    }
    for p in [&bus, &aspet] {
        p.grant(
            "P",
            kind(PartnerKind::Departement),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    bus.grant(
        "P",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let from_bus = bus
        .qualify("P", "SANS_INTERNET", pb::Qualification::Observed, "")
        .await
        .unwrap()
        .flag
        .unwrap();

    // The mairie would only say "declared": the bus's observed flag is the answer.
    let told = aspet
        .qualify("P", "SANS_INTERNET", pb::Qualification::Declared, "")
        .await
        .unwrap();
    assert!(!told.created);
    assert_eq!(told.flag.unwrap().id, from_bus.id);

    // It has seen the operator's letter cutting the line: attested, its own flag.
    let own = aspet
        .qualify(
            "P",
            "SANS_INTERNET",
            pb::Qualification::Attested,
            "courrier de résiliation de l'opérateur",
        )
        .await
        .unwrap();
    assert!(own.created);
    let own = own.flag.unwrap();
    assert_ne!(own.id, from_bus.id);

    // The département sees the difficulty once: the attested one.
    let seen = summary_flags(&cd, "P").await;
    let internet: Vec<_> = seen.iter().filter(|f| f.code == "SANS_INTERNET").collect();
    assert_eq!(internet.len(), 1, "{seen:?}");
    assert_eq!(internet[0].id, own.id);
    assert_eq!(how(internet[0]), pb::Qualification::Attested);
}

/// Past its review day a flag shows as "à revoir" and is still shared; the same
/// qualification then confirms it, with a new review day.
#[tokio::test]
async fn past_its_review_day_a_flag_is_to_review_still_shared_and_confirmed_again() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let aspet = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let who = pivot("Castet", "Rose", "1943-02-17", "31021");
    bus.link("B1", who.clone()).await;
    aspet.link("R1", who).await;
    bus.grant(
        "B1",
        partner("mairie-aspet"),
        &["mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let flag = bus
        .qualify("B1", "SANS_TRANSPORT", pb::Qualification::Observed, "")
        .await
        .unwrap()
        .flag
        .unwrap();
    // A year goes by: the stored review day is now behind us.
    let yesterday = day(today() - time::Duration::days(1));
    let db = SqlitePool::connect(&format!(
        "sqlite://{}",
        hub.dir.path().join("relais.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE flags SET doc = json_set(doc, '$.review_on', ?) WHERE id = ?")
        .bind(&yesterday)
        .bind(&flag.id)
        .execute(&db)
        .await
        .unwrap();

    let seen = summary_flags(&aspet, "R1").await;
    assert_eq!(seen.len(), 1, "still shared");
    assert!(seen[0].to_review);
    assert_eq!(seen[0].review_on, yesterday);

    // Declared is weaker: it does not confirm an observed flag.
    let weaker = bus
        .qualify("B1", "SANS_TRANSPORT", pb::Qualification::Declared, "")
        .await
        .unwrap();
    assert!(!weaker.requalified);
    // The agent checks with her: observed again, a new review day.
    let confirmed = bus
        .qualify("B1", "SANS_TRANSPORT", pb::Qualification::Observed, "")
        .await
        .unwrap();
    assert!(confirmed.requalified, "{confirmed:?}");
    let flag = confirmed.flag.unwrap();
    assert!(!flag.to_review);
    assert_eq!(flag.review_on, day(today() + time::Duration::days(365)));
    assert_eq!(flag.qualification_history.len(), 1);
    assert!(!summary_flags(&aspet, "R1").await[0].to_review);
}

/// Review findings: a partner holding the code upgrades its own flag even when another's is
/// readable; the new valid_until and note go with an upgrade; evidence is checked and shown
/// only to its source; a review day is at most ten years ahead.
#[tokio::test]
async fn review_own_flag_upgrades_evidence_stays_with_its_source_and_days_are_bounded() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let aspet = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let who = pivot("Castet", "Rose", "1943-02-17", "31021");
    bus.link("P", who.clone()).await;
    aspet.link("P", who).await;
    for (from, to) in [(&bus, "mairie-aspet"), (&aspet, "cc-comminges")] {
        from.grant(
            "P",
            partner(to),
            &["digital", "administrative"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    let own = bus
        .qualify("P", "SANS_INTERNET", pb::Qualification::Observed, "")
        .await
        .unwrap()
        .flag
        .unwrap();
    aspet
        .qualify(
            "P",
            "SANS_INTERNET",
            pb::Qualification::Attested,
            "courrier de résiliation de l'opérateur",
        )
        .await
        .unwrap();
    let up = bus
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local("P")),
            code: "SANS_INTERNET".into(),
            qualification: pb::Qualification::Attested as i32,
            evidence: "courrier de résiliation de l'opérateur".into(),
            note: "vu le courrier".into(),
            valid_until: day(today() + time::Duration::days(400)),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(up.requalified, "{up:?}");
    let flag = up.flag.unwrap();
    assert_eq!(flag.id, own.id, "its own flag");
    assert_eq!(flag.note, "vu le courrier");
    assert_eq!(flag.valid_until, "", "open-ended before: still open-ended");

    // What attests it is its source's to read.
    let seen = summary_flags(&aspet, "P").await;
    let mine = seen.iter().find(|f| f.code == "SANS_INTERNET").unwrap();
    assert_eq!(mine.source_partner, "mairie-aspet", "its own shown first");
    let bus_seen = summary_flags(&bus, "P").await;
    let bus_flag = bus_seen.iter().find(|f| f.code == "SANS_INTERNET").unwrap();
    assert_eq!(
        bus_flag.qualification.as_ref().unwrap().evidence,
        "courrier de résiliation de l'opérateur"
    );
    let events = aspet.feed_until_caught_up(0).await;
    for e in &events {
        if let Some(pb::change_event::Resource::Flag(f)) = &e.resource
            && f.source_partner == "cc-comminges"
        {
            assert_eq!(f.qualification.as_ref().unwrap().evidence, "", "{f:?}");
        }
    }

    // Evidence: only attested, without numbers; review days within ten years.
    for (how, evidence, review) in [
        (pb::Qualification::Declared, "dit au bus", String::new()),
        (
            pb::Qualification::Attested,
            "carte n° 1234567890",
            String::new(),
        ),
        (pb::Qualification::Observed, "", "2200-01-01".to_string()),
    ] {
        let refused = bus
            .flags
            .clone()
            .raise_flag(pb::RaiseFlagRequest {
                context: ctx(),
                person: Some(local("P")),
                code: "DEMARCHE_DIFFICILE".into(),
                qualification: how as i32,
                evidence: evidence.into(),
                review_on: review.clone(),
                request_id: new_request_id(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let expected = if review.is_empty() {
            "evidence"
        } else {
            "review_on"
        };
        assert_eq!(violated_fields(&refused), [expected], "{evidence} {review}");
    }
}
