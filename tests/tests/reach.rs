//! How to reach the person: the channels they state, naming the partner that holds the contact
//! details (never the details), and advice derived from the difficulties the reader may read —
//! advice from a health difficulty only for a partner that may read health.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;

fn channel(kind: pb::Channel, via: &str, note: &str) -> pb::ContactChannel {
    pb::ContactChannel {
        channel: kind as i32,
        via: via.into(),
        note: note.into(),
        label: String::new(),
    }
}

async fn set(
    p: &Partner,
    local_id: &str,
    profile: pb::AccessibilityProfile,
) -> Result<pb::AccessibilityProfile, tonic::Status> {
    p.persons
        .clone()
        .set_accessibility(pb::SetAccessibilityRequest {
            context: ctx(),
            person: Some(local(local_id)),
            profile: Some(profile),
            request_id: new_request_id(),
        })
        .await
        .map(|r| r.into_inner().profile.expect("profile"))
}

async fn get(p: &Partner, local_id: &str, purpose: pb::Purpose) -> pb::GetAccessibilityResponse {
    p.persons
        .clone()
        .get_accessibility(pb::GetAccessibilityRequest {
            context: Some(pb::RequestContext {
                purpose: purpose as i32,
                agent: "agent-1".into(),
            }),
            person: Some(local(local_id)),
        })
        .await
        .expect("get accessibility")
        .into_inner()
}

#[tokio::test]
async fn the_person_says_how_to_be_reached_and_readers_get_advice_they_may_read() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    let asso = hub.partner("secours-31", PartnerKind::Association).await;
    let castet = pivot("Castet", "Jeanne", "1941-02-11", "31020");
    for p in [&ccas, &cd, &asso] {
        p.link("JC", castet.clone()).await;
    }

    // Contact details are refused, with the field; a telephone channel names its holder.
    let refused = set(
        &ccas,
        "JC",
        pb::AccessibilityProfile {
            channels: vec![
                channel(pb::Channel::Telephone, "", ""),
                channel(
                    pb::Channel::Proche,
                    "mairie-aspet",
                    "sa fille au 06 12 34 56 78",
                ),
                channel(pb::Channel::Courrier, "nobody-here", ""),
                channel(pb::Channel::Unspecified, "", ""),
            ],
            best_times: "jeanne@example.org".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        violated_fields(&refused),
        [
            "profile.channels[0].via",
            "profile.channels[1].note",
            "profile.channels[2].via",
            "profile.channels[3].channel",
            "profile.best_times",
        ]
    );

    let profile = set(
        &ccas,
        "JC",
        pb::AccessibilityProfile {
            channels: vec![
                channel(pb::Channel::Bus, "", "le mardi à Aspet"),
                channel(pb::Channel::Telephone, "mairie-aspet", "le matin"),
                channel(pb::Channel::Proche, "mairie-aspet", "sa fille"),
            ],
            interpreter: String::new(),
            large_print: true,
            best_times: "le matin, pas le mercredi".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(profile.version, 1);
    assert_eq!(profile.recorded_by, "mairie-aspet");
    assert_eq!(
        profile.channels[1].label,
        "par téléphone, joindre via Partner mairie-aspet (le matin)"
    );

    // Difficulties: no e-mail and no vehicle (the CCAS), loss of autonomy (the département).
    ccas.raise("JC", "SANS_EMAIL").await;
    ccas.raise("JC", "SANS_TRANSPORT").await;
    cd.qualify(
        "JC",
        "PERTE_AUTONOMIE",
        pb::Qualification::Attested,
        "notification APA du département",
    )
    .await
    .unwrap();

    // The CCAS reads its own profile and its own flags; the health advice is not for it.
    let at_ccas = get(&ccas, "JC", pb::Purpose::Instruction).await;
    assert!(at_ccas.profile.is_some());
    let texts: Vec<&str> = at_ccas.statements.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "pas d'e-mail : écrire par courrier",
            "pas de véhicule : proposer le bus ou un rendez-vous téléphonique",
        ]
    );

    // The département, without a case: neither the profile nor the CCAS's difficulties; its
    // own health difficulty gives its advice.
    let at_cd = get(&cd, "JC", pb::Purpose::Instruction).await;
    assert!(at_cd.profile.is_none());
    let texts: Vec<&str> = at_cd.statements.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        ["perte d'autonomie : proposer un rendez-vous à domicile"]
    );

    // A case in preparation is not enough; one in progress, for instruction, as a public
    // service: the profile (public task), but not for accompagnement, and not for an
    // association.
    let apa = cd.open_case("JC", "local:apa-renouvellement").await;
    assert!(
        get(&cd, "JC", pb::Purpose::Instruction)
            .await
            .profile
            .is_none(),
        "a draft case opened to read the profile gives nothing"
    );
    cd.move_case(&apa, pb::CaseStatus::Sent).await;
    assert!(
        get(&cd, "JC", pb::Purpose::Instruction)
            .await
            .profile
            .is_some()
    );
    assert!(
        get(&cd, "JC", pb::Purpose::Accompagnement)
            .await
            .profile
            .is_none()
    );
    let theirs = asso.open_case("JC", "F1342").await;
    asso.move_case(&theirs, pb::CaseStatus::Sent).await;
    let at_asso = get(&asso, "JC", pb::Purpose::Instruction).await;
    assert!(at_asso.profile.is_none());
    assert!(at_asso.statements.is_empty());

    // With the person's consent, the association reads it, and the non-health advice; the
    // health advice needs explicit consent to health data.
    ccas.grant(
        "JC",
        partner("secours-31"),
        &["accessibility", "digital", "mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    let at_asso = get(&asso, "JC", pb::Purpose::Accompagnement).await;
    assert_eq!(at_asso.profile.unwrap().channels.len(), 3);
    assert_eq!(at_asso.statements.len(), 2);
    assert!(
        at_asso
            .statements
            .iter()
            .all(|s| s.code != "PERTE_AUTONOMIE")
    );

    // A new statement replaces the old, as a new version.
    let again = set(
        &ccas,
        "JC",
        pb::AccessibilityProfile {
            channels: vec![channel(pb::Channel::Courrier, "mairie-aspet", "")],
            interpreter: "occitan".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.version, 2);
    assert_eq!(again.interpreter, "occitan");
}

#[tokio::test]
async fn a_merge_keeps_the_newer_residence_and_profile() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    // Two records of one person, made before anyone noticed.
    let kept = ccas
        .link("A", pivot("Castet", "Jeanne", "1941-02-11", "31020"))
        .await
        .person_id;
    let merged = ccas
        .link("B", pivot("Castet", "Jeane", "1941-02-11", "31020"))
        .await
        .person_id;
    assert_ne!(kept, merged);
    let live = |local_id: &'static str, commune: &'static str| {
        let mut persons = ccas.persons.clone();
        async move {
            persons
                .set_residence(pb::SetResidenceRequest {
                    context: ctx(),
                    person: Some(local(local_id)),
                    commune: commune.into(),
                    request_id: new_request_id(),
                })
                .await
                .unwrap()
        }
    };
    live("A", "31483").await;
    set(
        &ccas,
        "A",
        pb::AccessibilityProfile {
            channels: vec![channel(pb::Channel::Courrier, "mairie-aspet", "")],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The newer: she moved to Aspet and now prefers the telephone.
    live("B", "31020").await;
    set(
        &ccas,
        "B",
        pb::AccessibilityProfile {
            channels: vec![channel(pb::Channel::Telephone, "mairie-aspet", "")],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    hub.admin
        .clone()
        .merge_persons(pb::MergePersonsRequest {
            kept_person_id: kept.clone(),
            merged_person_id: merged.clone(),
            reason: "même personne, prénom mal orthographié".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let store = hub.hub.store.clone();
    let kept_id = relais_hub::domain::PersonId::parse(&kept).unwrap();
    let merged_id = relais_hub::domain::PersonId::parse(&merged).unwrap();
    let residence = store.residence(kept_id).await.unwrap().unwrap();
    assert_eq!(residence.commune.as_str(), "31020");
    assert!(store.residence(merged_id).await.unwrap().is_none());
    let profile = get(&ccas, "A", pb::Purpose::Instruction)
        .await
        .profile
        .unwrap();
    assert_eq!(profile.channels[0].channel, pb::Channel::Telephone as i32);
    assert!(store.accessibility(merged_id).await.unwrap().is_none());
}
