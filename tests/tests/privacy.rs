//! Privacy without side doors: one test for each way a partner could learn, through an answer
//! that is not the data itself, what the person did not agree to — found by trying the hub as
//! a registered but hostile partner that knows someone's name, birth date and birth place.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::relais_hub::domain::{
    Clock, DataCategory, FlagId, PartnerId, PersonId, SystemClock, Timestamp,
};
use relais_tests::relais_hub::store::DynStore;
use relais_tests::*;
use std::time::Duration;
use tonic::Code;

/// A territory: the bus (communauté de communes), a mairie, the département, the
/// sous-préfecture and an association; Mme Castet known to the bus as `B1`.
struct Territory {
    hub: TestHub,
    bus: Partner,
    mairie: Partner,
    departement: Partner,
    prefecture: Partner,
    rose: String,
}

fn rose() -> pb::PivotIdentity {
    pivot("Castet", "Rose", "1943-02-17", "31021")
}

fn paul() -> pb::PivotIdentity {
    pivot("Sarrat", "Paul", "1950-06-01", "31483")
}

fn nobody() -> pb::PivotIdentity {
    pivot("Personne", "Inconnu", "1960-01-01", "31483")
}

async fn territory() -> Territory {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.expiry.check_seconds = 1;
    let hub = TestHub::start_with(config, dir, None).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let departement = hub.partner("cd31", PartnerKind::Departement).await;
    let prefecture = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let rose = bus.link("B1", rose()).await.person_id;
    Territory {
        hub,
        bus,
        mairie,
        departement,
        prefecture,
        rose,
    }
}

fn store(t: &Territory) -> DynStore {
    t.hub.hub.store.clone()
}

async fn raise(
    p: &Partner,
    person: pb::PersonRef,
    code: &str,
    note: &str,
) -> Result<pb::RaiseFlagResponse, tonic::Status> {
    p.flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(person),
            code: code.into(),
            note: note.into(),
            valid_until: String::new(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn summary(
    p: &Partner,
    person: pb::PersonRef,
) -> Result<pb::GetPersonSummaryResponse, tonic::Status> {
    p.persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(person),
            include_history: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn relink(
    p: &Partner,
    local_id: &str,
    traits: pb::PivotIdentity,
) -> Result<pb::LinkPersonResponse, tonic::Status> {
    p.persons
        .clone()
        .link_person(pb::LinkPersonRequest {
            context: ctx(),
            local_id: local_id.into(),
            pivot: Some(traits),
            person_id: String::new(),
            request_id: new_request_id(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn resolve(p: &Partner, traits: pb::PivotIdentity) -> Result<String, tonic::Status> {
    p.persons
        .clone()
        .resolve_person(pb::ResolvePersonRequest {
            context: ctx(),
            by: Some(pb::resolve_person_request::By::Pivot(traits)),
        })
        .await
        .map(|r| r.into_inner().person_id)
}

/// Code and message of a refusal, for comparing two answers.
fn answer<T>(r: Result<T, tonic::Status>) -> (Code, String) {
    match r {
        Ok(_) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

async fn events(p: &Partner) -> Vec<pb::ChangeEvent> {
    p.feed_until_caught_up(0).await
}

async fn redactions(p: &Partner) -> Vec<pb::Redaction> {
    events(p)
        .await
        .into_iter()
        .filter_map(|e| match e.resource {
            Some(pb::change_event::Resource::Redaction(r)) => Some(r),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn finding_01_raising_a_code_another_partner_raised_reveals_nothing_of_its_flag() {
    let t = territory().await;
    let theirs = raise(&t.bus, local("B1"), "PERTE_AUTONOMIE", "chute en mars")
        .await
        .unwrap()
        .flag
        .unwrap();
    t.mairie.link("M1", rose()).await;
    let mine = raise(&t.mairie, local("M1"), "PERTE_AUTONOMIE", "")
        .await
        .unwrap();
    assert!(
        mine.created,
        "the mairie may not read the bus's flag: it raises its own"
    );
    let flag = mine.flag.unwrap();
    assert_ne!(flag.id, theirs.id);
    assert_eq!(flag.source_partner, "mairie-aspet");
    assert!(!format!("{flag:?}").contains("chute"));
    // The bus still sees its own flag, not a duplicate from the mairie it may not read.
    let seen = summary(&t.bus, local("B1")).await.unwrap().flags;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, theirs.id);
}

#[tokio::test]
async fn finding_02_only_the_partner_that_raised_a_flag_retracts_it() {
    let t = territory().await;
    let health = raise(&t.bus, local("B1"), "PERTE_AUTONOMIE", "chute en mars")
        .await
        .unwrap()
        .flag
        .unwrap();
    t.mairie.link("M1", rose()).await;
    let retract = |p: &Partner, flag: &pb::Flag| {
        let request = pb::RetractFlagRequest {
            context: ctx(),
            flag_id: flag.id.clone(),
            expected_version: flag.version,
            reason: "erreur".into(),
            request_id: new_request_id(),
        };
        let mut flags = p.flags.clone();
        async move { flags.retract_flag(request).await }
    };
    // Hidden from the mairie: the same answer as for no flag, nothing of it comes back.
    let hidden = retract(&t.mairie, &health).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert!(!hidden.message().contains("chute"), "{hidden:?}");
    let unknown = retract(
        &t.mairie,
        &pb::Flag {
            id: uuid::Uuid::now_v7().to_string(),
            version: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), hidden.code());
    // Readable but not its own: refused.
    t.bus
        .grant(
            "B1",
            kind(PartnerKind::Mairie),
            &["mobility"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    let visible = raise(&t.bus, local("B1"), "SANS_TRANSPORT", "")
        .await
        .unwrap()
        .flag
        .unwrap();
    let refused = retract(&t.mairie, &visible).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Both flags are still active.
    assert_eq!(summary(&t.bus, local("B1")).await.unwrap().flags.len(), 2);
}

#[tokio::test]
async fn finding_03_hidden_and_unknown_persons_get_the_same_answer_without_hub_id() {
    let t = territory().await;
    t.bus.link("B2", paul()).await;
    // By traits: known but hidden, or nobody's.
    let hidden = answer(resolve(&t.mairie, rose()).await);
    let unknown = answer(resolve(&t.mairie, nobody()).await);
    assert_eq!(hidden.0, Code::NotFound);
    assert_eq!(hidden, unknown);
    assert!(!hidden.1.contains(&t.rose), "{hidden:?}");
    // A link conflict names nobody, whoever the other traits belong to.
    let m1 = t.mairie.link("M1", rose()).await;
    let someone = answer(relink(&t.mairie, "M1", paul()).await);
    let no_one = answer(relink(&t.mairie, "M1", nobody()).await);
    assert_eq!(someone.0, Code::FailedPrecondition);
    assert_eq!(someone, no_one);
    assert!(!someone.1.contains(&m1.person_id), "{someone:?}");
}

#[tokio::test]
async fn finding_04_relinking_with_other_traits_attaches_nothing() {
    let t = territory().await;
    let m1 = t.mairie.link("M1", rose()).await;
    let refused = relink(&t.mairie, "M1", nobody()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // The real owner of those traits, linked later by the bus, is a person of their own.
    let owner = t.bus.link("B9", nobody()).await;
    assert_ne!(owner.person_id, m1.person_id);
    // …and the mairie's M1 is still Mme Castet.
    let still = resolve(&t.mairie, rose()).await.unwrap();
    assert_eq!(still, m1.person_id);
}

#[tokio::test]
async fn finding_05_person_ids_carry_no_creation_time() {
    let t = territory().await;
    let id = uuid::Uuid::parse_str(&t.rose).unwrap();
    assert_eq!(id.get_version_num(), 4, "{id} is random");
    let again = t.mairie.link("M1", rose()).await;
    assert_eq!(again.person_id, t.rose);
    assert_eq!(again.outcome, pb::LinkOutcome::LinkedByPivot as i32);
}

#[tokio::test]
async fn finding_06_consent_and_mandate_records_go_only_to_who_collected_or_is_named() {
    let t = territory().await;
    t.bus
        .grant(
            "B1",
            partner("cd31"),
            &["case_status"],
            &[pb::Purpose::Instruction],
        )
        .await;
    t.bus
        .consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("B1")),
            mandatary: Some(pb::AgentRef {
                partner: "cd31".into(),
                agent: "as-1".into(),
            }),
            themes: vec!["social".into()],
            duration: pb::MandateDuration::OneMonth as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    t.mairie.link("M1", rose()).await;
    t.departement.link("D1", rose()).await;
    let list = |p: &Partner, local_id: &'static str| {
        let mut consent = p.consent.clone();
        async move {
            let c = consent
                .list_consents(pb::ListConsentsRequest {
                    context: ctx(),
                    person: Some(local(local_id)),
                })
                .await
                .unwrap()
                .into_inner()
                .consents
                .len();
            let m = consent
                .list_mandates(pb::ListMandatesRequest {
                    context: ctx(),
                    person: Some(local(local_id)),
                })
                .await
                .unwrap()
                .into_inner()
                .mandates
                .len();
            (c, m)
        }
    };
    assert_eq!(list(&t.mairie, "M1").await, (0, 0));
    assert_eq!(list(&t.departement, "D1").await, (1, 1));
    assert_eq!(list(&t.bus, "B1").await, (1, 1));
}

#[tokio::test]
async fn finding_07_a_partner_granting_itself_health_data_needs_evidence_and_a_countersignature() {
    let t = territory().await;
    raise(&t.bus, local("B1"), "PERTE_AUTONOMIE", "chute en mars")
        .await
        .unwrap();
    t.mairie.link("M1", rose()).await;
    let mut request = consent_request(
        "M1",
        partner("mairie-aspet"),
        &["health"],
        &[pb::Purpose::Accompagnement],
    );
    request.method = pb::CollectionMethod::Digital as i32;
    request.evidence_ref = String::new();
    request.channel = 0;
    let err = t
        .mairie
        .consent
        .clone()
        .grant_consent(request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["channel", "evidence_ref", "method"]);

    request.method = pb::CollectionMethod::SignedPaper as i32;
    request.evidence_ref = "registre CCAS p. 12".into();
    request.channel = pb::CollectionChannel::Guichet as i32;
    request.request_id = new_request_id();
    let consent = t
        .mairie
        .consent
        .clone()
        .grant_consent(request)
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    assert_eq!(consent.state, pb::RecordState::Pending as i32);
    assert!(consent.countersignature_required);
    assert!(
        summary(&t.mairie, local("M1"))
            .await
            .unwrap()
            .flags
            .is_empty()
    );

    // The bus, whose data it opens, is told who recorded it and on what evidence.
    let notices: Vec<_> = events(&t.bus)
        .await
        .into_iter()
        .filter_map(|e| match e.resource {
            Some(pb::change_event::Resource::ConsentNotice(n)) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].collected_by_partner, "mairie-aspet");
    assert_eq!(notices[0].categories, ["health"]);
    assert_eq!(notices[0].evidence_ref, "registre CCAS p. 12");
    assert!(notices[0].countersignature_required);
    // The departement, which wrote nothing, is not told.
    assert!(events(&t.departement).await.is_empty());

    t.hub
        .admin
        .clone()
        .countersign_consent(pb::CountersignConsentRequest {
            consent_id: consent.id,
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    assert_eq!(
        summary(&t.mairie, local("M1")).await.unwrap().flags.len(),
        1
    );
}

async fn case_in_progress(p: &Partner, local_id: &str) -> pb::Case {
    let case = p.open_case(local_id, "F1342").await;
    let case = p.move_case(&case, pb::CaseStatus::Sent).await;
    let case = p.move_case(&case, pb::CaseStatus::Acknowledged).await;
    p.move_case(&case, pb::CaseStatus::InProgress).await
}

#[tokio::test]
async fn finding_08_a_redirection_goes_only_where_the_person_agreed() {
    let t = territory().await;
    let case = case_in_progress(&t.bus, "B1").await;
    let mut redirect = transition(&case, pb::CaseStatus::Redirected);
    redirect.redirect_to_partner = "sp-saint-gaudens".into();
    let err = t
        .bus
        .cases
        .clone()
        .transition_case(redirect.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nothing reached the sous-préfecture.
    assert!(events(&t.prefecture).await.is_empty());
    let hidden = summary(&t.prefecture, person(&t.rose)).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);

    t.bus
        .grant(
            "B1",
            partner("sp-saint-gaudens"),
            &["case_status"],
            &[pb::Purpose::Orientation],
        )
        .await;
    redirect.request_id = new_request_id();
    let moved = t
        .bus
        .cases
        .clone()
        .transition_case(redirect)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.child_case.unwrap().owner_partner, "sp-saint-gaudens");
}

#[tokio::test]
async fn finding_09_what_a_referral_showed_ends_with_the_consent_that_let_it_go() {
    let t = territory().await;
    let consent = t
        .bus
        .grant(
            "B1",
            partner("sp-saint-gaudens"),
            &["referrals"],
            &[pb::Purpose::Orientation],
        )
        .await;
    let case = t.bus.open_case("B1", "F1342").await;
    let referral = t
        .bus
        .cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: case.id.clone(),
            to_partner: "sp-saint-gaudens".into(),
            reason: "renouvellement CNI, pas de justificatif de domicile".into(),
            requested_action: String::new(),
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let get_referral = |p: &Partner| {
        let mut cases = p.cases.clone();
        let id = referral.id.clone();
        async move {
            cases
                .get_referral(pb::GetReferralRequest {
                    context: ctx(),
                    referral_id: id,
                })
                .await
        }
    };
    let get_case = |p: &Partner| {
        let mut cases = p.cases.clone();
        let id = case.id.clone();
        async move {
            cases
                .get_case(pb::GetCaseRequest {
                    context: ctx(),
                    case_id: id,
                })
                .await
        }
    };
    get_referral(&t.prefecture).await.unwrap();
    get_case(&t.prefecture).await.unwrap();
    let received = events(&t.prefecture).await;
    assert!(!received.is_empty());

    let withdrawn = t
        .bus
        .consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id,
            channel: "guichet".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.redacted_partners, ["sp-saint-gaudens"]);
    assert_eq!(
        get_referral(&t.prefecture).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        get_case(&t.prefecture).await.unwrap_err().code(),
        Code::NotFound
    );
    let redacted = redactions(&t.prefecture).await;
    assert_eq!(redacted.len(), 1, "{redacted:?}");
    assert_eq!(redacted[0].referral_ids, std::slice::from_ref(&referral.id));
    assert_eq!(redacted[0].case_ids, std::slice::from_ref(&case.id));
    // The sender still holds its own referral.
    get_referral(&t.bus).await.unwrap();
}

#[tokio::test]
async fn finding_10_an_expired_consent_mandate_or_flag_redacts_what_it_opened() {
    let t = territory().await;
    raise(&t.bus, local("B1"), "SANS_INTERNET", "")
        .await
        .unwrap();
    let mut request = consent_request(
        "B1",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    );
    let expires = std::time::SystemTime::now() + Duration::from_secs(2);
    let since = expires.duration_since(std::time::UNIX_EPOCH).unwrap();
    request.expires_at = Some(prost_types::Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    });
    t.bus.consent.clone().grant_consent(request).await.unwrap();
    t.mairie.link("M1", rose()).await;
    assert_eq!(
        summary(&t.mairie, local("M1")).await.unwrap().flags.len(),
        1
    );
    // The hub's own scheduler (every second here) ends it and sends the redaction.
    let mut redacted = vec![];
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redacted = redactions(&t.mairie).await;
        if !redacted.is_empty() {
            break;
        }
    }
    assert_eq!(redacted.len(), 1, "the expiry sent a redaction");
    assert!(
        summary(&t.mairie, local("M1"))
            .await
            .unwrap()
            .flags
            .is_empty()
    );

    // A mandate and a flag that run out, as the scheduler sees them two days later.
    let flag = t
        .bus
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local("B1")),
            code: "ZONE_BLANCHE".into(),
            note: String::new(),
            valid_until: SystemClock.now().day().to_string(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .flag
        .unwrap();
    t.bus
        .grant(
            "B1",
            partner("mairie-aspet"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    let seen = summary(&t.mairie, local("M1")).await.unwrap().flags;
    assert!(seen.iter().any(|f| f.id == flag.id));
    let later = Timestamp::from_micros(SystemClock.now().micros() + 2 * 86_400 * 1_000_000);
    let done = store(&t).apply_expiries(later, 500).await.unwrap();
    assert_eq!(done.flags, 1);
    let redacted = redactions(&t.mairie).await;
    assert!(
        redacted
            .iter()
            .any(|r| r.flag_ids.contains(&flag.id) && r.record.starts_with("flag:")),
        "{redacted:?}"
    );
    // Applied once: a second run (another replica) finds nothing left.
    assert_eq!(
        store(&t).apply_expiries(later, 500).await.unwrap().total(),
        0
    );
}

#[tokio::test]
async fn finding_11_a_disclosure_recorded_after_a_withdrawal_is_withheld() {
    use relais_tests::relais_hub::domain::change::{Disclosure, Item};
    let t = territory().await;
    let flag = raise(&t.bus, local("B1"), "SANS_INTERNET", "")
        .await
        .unwrap()
        .flag
        .unwrap();
    let consent = t
        .bus
        .grant(
            "B1",
            partner("mairie-aspet"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    // The decision was made under the consent; the withdrawal commits before the disclosure
    // is recorded.
    let decided = Disclosure {
        partner: PartnerId::parse("mairie-aspet").unwrap(),
        person: PersonId::parse(&t.rose).unwrap(),
        item: Item::Flag(FlagId::parse(&flag.id).unwrap()),
        category: DataCategory::Digital,
        at: SystemClock.now(),
        record: Some(format!("consent:{}", consent.id)),
        purpose: None,
        current_flag: true,
    };
    t.bus
        .consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
            channel: "guichet".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let withheld = store(&t)
        .record_access(vec![], vec![decided.clone()])
        .await
        .unwrap();
    assert_eq!(withheld, [decided.item], "the item does not leave the hub");
}

#[tokio::test]
async fn finding_12_a_revoked_certificate_stays_revoked_and_its_stream_ends() {
    let t = territory().await;
    // A second certificate for the mairie (a new connector), made from its own key.
    let (key, csr_pem) = relais_tests::relais_hub::pki::new_key_and_csr("mairie-aspet").unwrap();
    let issued = t
        .hub
        .admin
        .clone()
        .issue_certificate(pb::IssueCertificateRequest {
            partner_id: "mairie-aspet".into(),
            csr_pem,
            retire_previous_after_hours: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let second = Partner::connect(
        "mairie-aspet",
        &t.hub.url(),
        relais_tests::relais_hub::pki::Bundle {
            cert_pem: issued.certificate_pem,
            key_pem: key.serialize_pem(),
            ca_pem: issued.ca_certificate_pem,
        },
    )
    .await;
    let mut stream = t
        .mairie
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = t
        .hub
        .admin
        .clone()
        .get_partner(pb::GetPartnerRequest {
            id: "mairie-aspet".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap();
    let fingerprint = first.certificates[0].fingerprint.clone();
    t.hub
        .admin
        .clone()
        .revoke_certificate(pb::RevokeCertificateRequest {
            fingerprint,
            reason: "poste volé".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    // The open stream ends.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Code::Ok,
                Err(s) => return s.code(),
            }
        }
    })
    .await
    .expect("the stream of a revoked certificate ends");
    assert_eq!(ended, Code::Unauthenticated);
    let refused = answer(relink(&t.mairie, "M1", rose()).await);
    assert_eq!(refused.0, Code::Unauthenticated);
    // Suspend and resume: the revoked one stays refused, the other works.
    t.hub
        .admin
        .clone()
        .suspend_partner(pb::SuspendPartnerRequest {
            id: "mairie-aspet".into(),
            reason: "contrôle".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    t.hub
        .admin
        .clone()
        .resume_partner(pb::ResumePartnerRequest {
            id: "mairie-aspet".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let refused = answer(relink(&t.mairie, "M1", rose()).await);
    assert_eq!(refused.0, Code::Unauthenticated);
    second.link("M1", rose()).await;
}

#[tokio::test]
async fn finding_14_out_of_range_dates_and_undecodable_bytes_are_invalid_arguments() {
    let t = territory().await;
    let mut request = consent_request(
        "B1",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    );
    request.expires_at = Some(prost_types::Timestamp {
        seconds: 253_402_300_799, // 9999-12-31
        nanos: 0,
    });
    let err = t
        .bus
        .consent
        .clone()
        .grant_consent(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["expires_at"]);

    let err = relink(&t.bus, "B5", pivot("Futur", "Né", "2150-01-01", "31483"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["pivot.birth_date"]);
    let err = relink(&t.bus, "B6", pivot("Vieux", "Très", "1850-01-01", "31483"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["pivot.birth_date"]);

    // Bytes that are not a LinkPersonRequest: field 1 (the context, a message) sent as a
    // number.
    #[derive(Clone, PartialEq, prost::Message)]
    struct NotARequest {
        #[prost(uint64, tag = "1")]
        context: u64,
    }
    let channel = relais_tests::relais_hub::cli::connect::channel(&t.hub.url(), &t.bus.bundle)
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary::<_, pb::LinkPersonResponse, _>(
            tonic::Request::new(NotARequest { context: 7 }),
            "/relais.v1.PersonService/LinkPerson".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn finding_15_health_for_every_service_and_reflection_v1alpha() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let t = territory().await;
    let channel = relais_tests::relais_hub::cli::connect::channel(&t.hub.url(), &t.bus.bundle)
        .await
        .unwrap();
    for service in [
        "relais.v1.PersonService",
        "relais.v1.FlagService",
        "relais.v1.CaseService",
        "relais.v1.ConsentService",
        "relais.v1.SyncService",
        "relais.v1.AdminService",
    ] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service}: {e:?}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "relais.v1.ConsentService")
    );
}

#[tokio::test]
async fn finding_12_named_administrators_act_under_their_own_certificate_until_revoked() {
    use relais_tests::relais_hub::pki::{Bundle, new_key_and_csr};
    let t = territory().await;
    let (key, csr_pem) = new_key_and_csr("admin-m.dupont").unwrap();
    let issued = t
        .hub
        .admin
        .clone()
        .add_administrator(pb::AddAdministratorRequest {
            name: "m.dupont@cc-comminges.fr".into(),
            csr_pem,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    let bundle = Bundle {
        cert_pem: issued.certificate_pem,
        key_pem: key.serialize_pem(),
        ca_pem: issued.ca_certificate_pem,
    };
    let mut dupont = pb::admin_service_client::AdminServiceClient::new(
        relais_tests::relais_hub::cli::connect::channel(&t.hub.url(), &bundle)
            .await
            .unwrap(),
    );
    let listed = dupont
        .list_administrators(pb::ListAdministratorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .administrators;
    let names: Vec<_> = listed.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"admin") && names.contains(&"m.dupont@cc-comminges.fr"),
        "{names:?}"
    );
    // A partner's certificate is not an administrator's.
    let mut not_admin = pb::admin_service_client::AdminServiceClient::new(
        relais_tests::relais_hub::cli::connect::channel(&t.hub.url(), &t.bus.bundle)
            .await
            .unwrap(),
    );
    let refused = not_admin
        .list_administrators(pb::ListAdministratorsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Revoked by another administrator: refused from then on.
    t.hub
        .admin
        .clone()
        .revoke_administrator(pb::RevokeAdministratorRequest {
            name: "m.dupont@cc-comminges.fr".into(),
            reason: "a quitté la communauté de communes".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let refused = dupont
        .list_administrators(pb::ListAdministratorsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

// Attacks found by the adversarial review of the change, kept as tests.

async fn link_new(p: &Partner, local_id: &str) -> pb::LinkPersonResponse {
    p.persons
        .clone()
        .link_person(pb::LinkPersonRequest {
            context: ctx(),
            local_id: local_id.into(),
            pivot: None,
            person_id: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn review_a_record_made_without_traits_is_no_probe_for_whose_traits_exist() {
    let t = territory().await;
    link_new(&t.mairie, "P1").await;
    link_new(&t.mairie, "P2").await;
    let someone = answer(relink(&t.mairie, "P1", rose()).await);
    let no_one = answer(relink(&t.mairie, "P2", nobody()).await);
    assert_eq!(someone.0, Code::FailedPrecondition);
    assert_eq!(
        someone.1.replace("P1", "P?"),
        no_one.1.replace("P2", "P?"),
        "the same answer whoever the traits belong to"
    );
    // Nothing was attached: the real owner of the traits is linked to a person of their own.
    let owner = t.bus.link("B9", nobody()).await;
    let p2 = t
        .mairie
        .persons
        .clone()
        .resolve_person(pb::ResolvePersonRequest {
            context: ctx(),
            by: Some(pb::resolve_person_request::By::LocalId("P2".into())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(owner.person_id, p2.person_id);
}

#[tokio::test]
async fn review_pages_and_tokens_do_not_count_hidden_items() {
    let t = territory().await;
    for code in ["PERTE_AUTONOMIE", "HANDICAP", "SANTE_DECLAREE"] {
        raise(&t.bus, local("B1"), code, "").await.unwrap();
    }
    t.mairie.link("M1", rose()).await;
    let first_page = || {
        let mut flags = t.mairie.flags.clone();
        async move {
            flags
                .list_flags(pb::ListFlagsRequest {
                    context: ctx(),
                    person: Some(local("M1")),
                    include_retracted: true,
                    page_size: 1,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let page = first_page().await;
    assert!(page.flags.is_empty());
    assert!(
        page.next_page_token.is_empty(),
        "a token would count hidden flags"
    );
    // With one visible flag among hidden ones, one page, no token.
    raise(&t.mairie, local("M1"), "SANS_INTERNET", "")
        .await
        .unwrap();
    let page = first_page().await;
    assert_eq!(page.flags.len(), 1);
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn review_only_the_holder_sends_a_fiche_navette_and_refusals_keep_consent_details() {
    let t = territory().await;
    let case = t.bus.open_case("B1", "F1342").await;
    t.mairie.link("M1", rose()).await;
    t.bus
        .grant(
            "B1",
            partner("mairie-aspet"),
            &["case_status"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    let consent = t
        .bus
        .grant(
            "B1",
            partner("sp-saint-gaudens"),
            &["referrals"],
            &[pb::Purpose::Orientation],
        )
        .await;
    let send = |p: &Partner| {
        let mut cases = p.cases.clone();
        let case_id = case.id.clone();
        async move {
            cases
                .send_referral(pb::SendReferralRequest {
                    context: ctx(),
                    case_id,
                    to_partner: "sp-saint-gaudens".into(),
                    reason: "suite".into(),
                    requested_action: String::new(),
                    due_date: String::new(),
                    request_id: new_request_id(),
                })
                .await
        }
    };
    // The mairie sees the case (consent) but does not hold it.
    let refused = send(&t.mairie).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    t.bus
        .consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
            channel: "guichet".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let refused = send(&t.bus).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    for secret in [
        consent.id.as_str(),
        "consent:",
        "withdrawn",
        "expired",
        "pending",
    ] {
        assert!(!refused.message().contains(secret), "{refused:?}");
    }
}

#[tokio::test]
async fn review_the_feed_position_does_not_count_who_holds_data() {
    let t = territory().await;
    // Mme Castet: three partners wrote about her. Paul: nobody else did.
    raise(&t.bus, local("B1"), "SANS_INTERNET", "")
        .await
        .unwrap();
    t.departement.link("D1", rose()).await;
    raise(&t.departement, local("D1"), "ISOLEMENT", "")
        .await
        .unwrap();
    t.mairie.link("M1", rose()).await;
    t.mairie.link("M2", paul()).await;
    let position = || {
        let mut sync = t.mairie.sync.clone();
        async move {
            sync.get_position(pb::GetPositionRequest {})
                .await
                .unwrap()
                .into_inner()
                .position
        }
    };
    let mut moves = vec![];
    for local_id in ["M1", "M2"] {
        let before = position().await;
        t.mairie
            .grant(
                local_id,
                partner("mairie-aspet"),
                &["digital", "social"],
                &[pb::Purpose::Accompagnement],
            )
            .await;
        moves.push(position().await - before);
    }
    assert_eq!(moves, [1, 1]);
}

#[tokio::test]
async fn review_a_partner_named_only_by_kind_that_does_not_know_the_person_cannot_act_on_the_record()
 {
    let t = territory().await;
    let izaut = t.hub.partner("mairie-izaut", PartnerKind::Mairie).await;
    let consent = t
        .bus
        .grant(
            "B1",
            kind(PartnerKind::Mairie),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    let withdraw = |p: &Partner| {
        let mut c = p.consent.clone();
        let consent_id = consent.id.clone();
        async move {
            c.withdraw_consent(pb::WithdrawConsentRequest {
                context: ctx(),
                consent_id,
                channel: "guichet".into(),
                request_id: new_request_id(),
            })
            .await
        }
    };
    let refused = withdraw(&izaut).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let receipt = izaut
        .consent
        .clone()
        .get_consent_receipt(pb::GetConsentReceiptRequest {
            context: ctx(),
            consent_id: consent.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(receipt.code(), Code::NotFound);
    // A mairie that serves her may, on her request; it is told only about itself.
    t.mairie.link("M1", rose()).await;
    summary(&t.mairie, local("M1")).await.unwrap();
    raise(&t.bus, local("B1"), "SANS_INTERNET", "")
        .await
        .unwrap();
    let done = withdraw(&t.mairie).await.unwrap().into_inner();
    assert!(
        done.redacted_partners.iter().all(|p| p == "mairie-aspet"),
        "{done:?}"
    );
}

#[tokio::test]
async fn review_resolving_a_person_is_audited() {
    let t = territory().await;
    t.mairie.link("M1", rose()).await;
    resolve(&t.mairie, rose()).await.unwrap();
    let entries = store(&t)
        .audit_of_person(PersonId::parse(&t.rose).unwrap())
        .await
        .unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "read:ResolvePerson" && e.principal == "mairie-aspet"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn finding_04_the_administrator_merges_two_records_and_undoes_a_wrong_link() {
    let t = territory().await;
    // The mairie knew Mme Castet without her traits: a second record of her.
    let apart = link_new(&t.mairie, "M-OLD").await.person_id;
    raise(&t.mairie, local("M-OLD"), "ISOLEMENT", "")
        .await
        .unwrap();
    raise(&t.bus, local("B1"), "SANS_INTERNET", "")
        .await
        .unwrap();
    let merged = t
        .hub
        .admin
        .clone()
        .merge_persons(pb::MergePersonsRequest {
            kept_person_id: t.rose.clone(),
            merged_person_id: apart.clone(),
            reason: "même personne : registre CCAS et dossier du bus".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.person_id, t.rose);
    assert_eq!(merged.links_moved, 1);
    // The mairie's local id now names Mme Castet, with the mairie's own flag.
    let seen = summary(&t.mairie, local("M-OLD")).await.unwrap();
    assert_eq!(seen.person_id, t.rose);
    assert_eq!(seen.flags.len(), 1);
    assert_eq!(seen.flags[0].code, "ISOLEMENT");
    // The merge is audited under the person kept.
    let entries = store(&t)
        .audit_of_person(PersonId::parse(&t.rose).unwrap())
        .await
        .unwrap();
    assert!(entries.iter().any(|e| e.action == "admin:MergePersons"));
    // A wrong link undone: the local id no longer names anyone; the person and her history stay.
    t.hub
        .admin
        .clone()
        .unlink_local_id(pb::UnlinkLocalIdRequest {
            partner_id: "mairie-aspet".into(),
            local_id: "M-OLD".into(),
            reason: "erreur de saisie".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let gone = summary(&t.mairie, local("M-OLD")).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(summary(&t.bus, local("B1")).await.unwrap().flags.len(), 1);
}
