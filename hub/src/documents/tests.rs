//! Each document rendered for several cases and compared with the expected text under
//! `tests/expected/documents/` (`RELAIS_UPDATE_EXPECTED=1` rewrites them after a deliberate
//! change; read the diff before committing it). Beside the comparison, checks that hold for
//! every document: no internal id, French a proofreader passes.

use super::*;
use crate::audit::AuditEntry;
use crate::domain::consent::{
    CollectionChannel, CollectionMethod, Consent, ConsentId, Grantee, LegalBasis, Mandate,
    MandateDuration, MandateId, Withdrawal,
};
use crate::domain::{AgentId, PartnerStatus, Theme};
use std::path::PathBuf;

/// 3 December 2026, 09:12 UTC (10 h 12 in Paris), plus `minutes`.
fn at(minutes: i64) -> Timestamp {
    Timestamp::from_micros((1_796_289_120 + minutes * 60) * 1_000_000)
}

fn person() -> PersonId {
    PersonId::parse("7f3a9c21-5b0e-4d1a-9e3f-2a6b8c4d1e0f").unwrap()
}

fn partner(id: &str, kind: PartnerKind, name: &str) -> Partner {
    Partner {
        id: PartnerId::parse(id).unwrap(),
        kind,
        name: name.into(),
        territory: vec![],
        cog_vintage: 2026,
        status: PartnerStatus::Active,
        status_reason: String::new(),
        certificates: vec![],
        created_at: at(-10_000),
        updated_at: at(-10_000),
        version: 1,
    }
}

fn partners() -> Partners {
    [
        partner("mairie-aspet", PartnerKind::Mairie, "Mairie d'Aspet"),
        partner(
            "asso-mediation",
            PartnerKind::Association,
            "Association Médiation Comminges",
        ),
        partner(
            "cd31",
            PartnerKind::Departement,
            "Département de la Haute-Garonne",
        ),
    ]
    .into_iter()
    .map(|p| (p.id.clone(), p))
    .collect()
}

fn territory() -> TerritoryConfig {
    TerritoryConfig {
        controller_address: "4 rue de l'Exemple, 31800 Saint-Gaudens".into(),
        controller_contact: "05 00 00 00 00, contact@exemple.fr".into(),
        dpo_contact: "dpo@exemple.fr".into(),
        ..TerritoryConfig::default()
    }
}

fn consent(grantee: Grantee, categories: Vec<DataCategory>, minutes: i64) -> Consent {
    Consent {
        id: ConsentId::parse("0192f3a4-0000-7000-8000-000000000001").unwrap(),
        person: person(),
        grantee,
        categories,
        purposes: vec![Purpose::Accompagnement],
        legal_basis: LegalBasis::Consent,
        collected_by: PartnerId::parse("asso-mediation").unwrap(),
        collected_by_agent: AgentId::parse("mediateur-1").unwrap(),
        method: CollectionMethod::SignedPaper,
        witness: String::new(),
        notice_version: "2026-01".into(),
        notice_language: "fr".into(),
        evidence_ref: "registre p. 12".into(),
        granted_at: at(minutes),
        expires_at: None,
        withdrawal: None,
        history: vec![],
        version: 1,
        channel: Some(CollectionChannel::Bus),
        countersignature: None,
    }
}

fn to_mairies() -> Grantee {
    Grantee::Kind {
        kind: PartnerKind::Mairie,
    }
}

fn withdrawn(mut c: Consent, minutes: i64) -> Consent {
    c.withdrawal = Some(Withdrawal {
        at: at(minutes),
        channel: "telephone".into(),
        by: "asso-mediation".into(),
    });
    c
}

fn a_mandate(themes: Vec<Theme>) -> Mandate {
    Mandate {
        id: MandateId::parse("0192f3a4-0000-7000-8000-000000000002").unwrap(),
        person: person(),
        partner: PartnerId::parse("mairie-aspet").unwrap(),
        agent: AgentId::parse("agent-ccas-2").unwrap(),
        themes,
        duration: MandateDuration::SixMonths,
        granted_at: at(5),
        expires_at: at(5 + 182 * 24 * 60),
        revocation: None,
        collected_by: PartnerId::parse("mairie-aspet").unwrap(),
        collected_by_agent: AgentId::parse("agent-ccas-2").unwrap(),
        method: CollectionMethod::SignedPaper,
        history: vec![],
        version: 1,
    }
}

fn entry(minutes: i64, partner: &str, action: &str, categories: &[&str]) -> AuditEntry {
    let mut e = AuditEntry::new(at(minutes), partner, "connecteur-ccas", action.into());
    e.person = Some(person());
    e.categories = categories.iter().map(ToString::to_string).collect();
    e.purpose = Some("accompagnement".into());
    e
}

fn records(mut e: AuditEntry, records: &[&str]) -> AuditEntry {
    e.records = records.iter().map(ToString::to_string).collect();
    e
}

/// The text on one line, as a reader sees it past the wrapping.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compares `text` with `tests/expected/documents/<name>.txt`, and checks what holds for every
/// document.
fn expect(name: &str, text: &str, html: &str) {
    for bad in [
        "à les ",
        "à le ",
        "de les ",
        "de le ",
        "mairies et leurs CCAS peut ",
        "partenaires peut ",
        "  .",
        " ,",
        "..",
        "mairie-aspet",
        "asso-mediation",
        "connecteur-ccas",
        "agent-ccas-2",
        "mediateur-1",
        "7f3a9c21",
        "0192f3a4",
        "registre p. 12",
        "YYYY",
    ] {
        assert!(!text.contains(bad), "{name}: `{bad}` in\n{text}");
    }
    assert!(
        flat(text).contains("7F3A-9C21-5B0E"),
        "{name}: the person's reference"
    );
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("lang=\"fr\""));
    assert!(html.contains("@page{size:A4"));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/expected/documents")
        .join(format!("{name}.txt"));
    if std::env::var_os("RELAIS_UPDATE_EXPECTED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (RELAIS_UPDATE_EXPECTED=1 writes it)",
            path.display()
        )
    });
    if expected != text {
        let first = expected
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(text.lines().count()));
        panic!(
            "{name}: the document differs from {} from line {}:\n--- expected\n{}\n--- rendered\n{}\n\
             (RELAIS_UPDATE_EXPECTED=1 rewrites the file after a deliberate change)",
            path.display(),
            first + 1,
            expected
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
            text.lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

#[test]
fn receipt_for_one_partner() {
    let c = consent(
        Grantee::Partner {
            partner: PartnerId::parse("mairie-aspet").unwrap(),
        },
        vec![DataCategory::CaseStatus, DataCategory::Mobility],
        0,
    );
    let (text, html) = consent_receipt(&c, &partners(), &territory(), at(1));
    assert!(flat(&text).contains("transmises à Mairie d'Aspet"));
    expect("receipt-one-partner", &text, &html);
}

#[test]
fn receipt_for_several_partners() {
    let mut c = consent(
        to_mairies(),
        vec![
            DataCategory::CaseStatus,
            DataCategory::Digital,
            DataCategory::Health,
        ],
        0,
    );
    c.method = CollectionMethod::OralWithWitness;
    c.witness = "Mme Durand, médiatrice".into();
    c.notice_language = "oc".into();
    let (text, html) = consent_receipt(&c, &partners(), &territory(), at(1));
    assert!(flat(&text).contains("transmises aux mairies et leurs CCAS"));
    assert!(flat(&text).contains("les mairies et leurs CCAS ne peuvent plus"));
    expect("receipt-several-partners", &text, &html);
}

#[test]
fn receipt_after_withdrawal() {
    let c = withdrawn(consent(to_mairies(), vec![DataCategory::CaseStatus], 0), 60);
    let (text, html) = consent_receipt(&c, &partners(), &TerritoryConfig::default(), at(61));
    assert!(flat(&text).contains("retiré le 3 décembre 2026 à 11 h 12 par téléphone"));
    expect("receipt-withdrawn", &text, &html);
}

#[test]
fn mandate_on_one_and_several_themes() {
    let (text, html) = mandate(
        &a_mandate(vec![Theme::Logement]),
        &partners(),
        &territory(),
        at(5),
    );
    assert!(flat(&text).contains("sur le thème « Logement »"));
    expect("mandate-one-theme", &text, &html);
    let mut m = a_mandate(vec![Theme::Logement, Theme::Argent, Theme::Papiers]);
    m.revocation = Some(Withdrawal {
        at: at(24 * 60),
        channel: "guichet".into(),
        by: "mairie-aspet".into(),
    });
    let (text, html) = mandate(&m, &partners(), &territory(), at(2 * 24 * 60));
    assert!(flat(&text).contains("« Logement », « Argent » et « Papiers - Citoyenneté »"));
    expect("mandate-revoked", &text, &html);
}

#[test]
fn report_when_nothing_was_shared() {
    let r = AccessReport::new(person(), at(0), vec![], vec![], vec![], &partners());
    let doc = r.document(&partners(), &territory());
    let (text, html) = (doc.text(), doc.html());
    assert!(flat(&text).contains("Aucun service n'a reçu"));
    assert!(!text.contains('\u{c}'), "no detail page");
    expect("report-none", &text, &html);
}

/// The session the issue describes: a mairie receives the state of the procedures three
/// times in a minute, records a difficulty, reads back its own records; the report folds the
/// three deliveries into one line and calls the own read a consultation.
#[test]
fn report_for_one_partner_folds_repeats() {
    let c = consent(
        Grantee::Partner {
            partner: PartnerId::parse("mairie-aspet").unwrap(),
        },
        vec![DataCategory::CaseStatus, DataCategory::Digital],
        0,
    );
    let consent_ref = format!("consent:{}", c.id);
    let mut own = entry(9, "mairie-aspet", "read:ListFlags", &["digital"]);
    own.own = vec!["digital".into()];
    let audit = vec![
        entry(
            0,
            "asso-mediation",
            "write:GrantConsent",
            &["case_status", "digital"],
        ),
        entry(1, "mairie-aspet", "write:LinkPerson", &[]),
        records(
            entry(2, "mairie-aspet", "deliver:feed", &["case_status"]),
            &[&consent_ref],
        ),
        records(
            entry(2, "mairie-aspet", "deliver:feed", &["case_status"]),
            &[&consent_ref],
        ),
        records(
            entry(3, "mairie-aspet", "deliver:feed", &["case_status"]),
            &[&consent_ref],
        ),
        entry(8, "mairie-aspet", "write:RaiseFlag", &["digital"]),
        own,
        entry(9, "admin", "admin:GetAccessReport", &[]),
    ];
    let r = AccessReport::new(person(), at(30), audit, vec![c], vec![], &partners());
    let doc = r.document(&partners(), &territory());
    let (text, html) = (doc.text(), doc.html());
    assert!(flat(&text).contains("(3 fois)"), "{text}");
    assert_eq!(text.matches("a reçu l'état de vos démarches").count(), 1);
    assert!(flat(&text).contains("a consulté ce qu'il avait lui-même noté"));
    assert!(flat(&text).contains("a noté vos difficultés avec le numérique"));
    expect("report-one-partner", &text, &html);
}

#[test]
fn report_for_several_partners_with_a_withdrawal_and_a_refusal() {
    let first = withdrawn(
        consent(to_mairies(), vec![DataCategory::CaseStatus], 0),
        24 * 60,
    );
    let mut second = consent(
        Grantee::Partner {
            partner: PartnerId::parse("cd31").unwrap(),
        },
        vec![DataCategory::CaseStatus, DataCategory::Housing],
        30,
    );
    second.id = ConsentId::parse("0192f3a4-0000-7000-8000-000000000003").unwrap();
    let m = a_mandate(vec![Theme::Logement]);
    let first_ref = format!("consent:{}", first.id);
    let second_ref = format!("consent:{}", second.id);
    let mut refused = entry(26 * 60, "mairie-aspet", "read:GetPersonSummary", &[]);
    refused.denied = vec!["case_status".into()];
    refused.decision = "deny".into();
    let mut refused_cd = entry(26 * 60 + 1, "cd31", "read:ListFlags", &[]);
    refused_cd.denied = vec!["digital".into()];
    refused_cd.decision = "deny".into();
    let audit = vec![
        entry(0, "asso-mediation", "write:LinkPerson", &[]),
        entry(0, "asso-mediation", "write:GrantConsent", &["case_status"]),
        entry(2, "asso-mediation", "write:OpenCase", &["case_status"]),
        records(
            entry(4, "mairie-aspet", "deliver:feed", &["case_status"]),
            &[&first_ref],
        ),
        records(
            entry(5, "mairie-aspet", "write:GrantMandate", &["case_status"]),
            &["mandate:0192f3a4-0000-7000-8000-000000000002"],
        ),
        records(
            entry(
                40,
                "cd31",
                "read:GetPersonSummary",
                &["case_status", "housing"],
            ),
            &[&second_ref],
        ),
        records(
            entry(
                60,
                "cd31",
                "read:GetPersonSummary",
                &["case_status", "housing"],
            ),
            &[&second_ref],
        ),
        entry(
            24 * 60,
            "asso-mediation",
            "write:WithdrawConsent",
            &["case_status"],
        ),
        refused,
        refused_cd,
    ];
    let r = AccessReport::new(
        person(),
        at(27 * 60),
        audit,
        vec![first, second],
        vec![m],
        &partners(),
    );
    let doc = r.document(&partners(), &territory());
    let (text, html) = (doc.text(), doc.html());
    assert!(flat(&text).contains("Vos accords et mandats passés"));
    assert!(flat(&text).contains("Département de la Haute-Garonne peut recevoir"));
    assert!(flat(&text).contains("refusé, faute de votre accord"));
    assert!(
        html.contains("<div class=\"break\"></div>"),
        "the detail starts a new page"
    );
    expect("report-several-partners", &text, &html);
}

/// A record on a legal obligation is no accord: the receipt informs, says it cannot be
/// withdrawn; the report lists it apart, and gives it as the basis of what the service received.
#[test]
fn a_legal_obligation_is_not_called_an_accord() {
    let mut c = consent(
        Grantee::Partner {
            partner: PartnerId::parse("cd31").unwrap(),
        },
        vec![DataCategory::Health],
        0,
    );
    c.legal_basis = LegalBasis::LegalObligation;
    c.purposes = vec![Purpose::Instruction];
    let (text, html) = consent_receipt(&c, &partners(), &territory(), at(1));
    let flat_text = flat(&text);
    assert!(
        flat_text.contains(
            "vous avez été informé(e) que ces informations vous concernant sont transmises"
        )
    );
    assert!(flat_text.contains("vous ne pouvez pas le retirer"));
    assert!(!flat_text.contains("jusqu'à ce que vous le retiriez"));
    expect("receipt-legal-obligation", &text, &html);
    let read = records(
        entry(30, "cd31", "read:GetPersonSummary", &["health"]),
        &[&format!("consent:{}", c.id)],
    );
    let r = AccessReport::new(person(), at(60), vec![read], vec![c], vec![], &partners());
    let doc = r.document(&partners(), &territory());
    let (text, html) = (doc.text(), doc.html());
    let flat_text = flat(&text);
    assert!(
        flat_text
            .contains("Sur quelle base : Une obligation légale (enregistrée le 3 décembre 2026)"),
        "{text}"
    );
    assert!(flat_text.contains("Ce qui est partagé sans votre accord, en vertu de la loi"));
    assert!(flat_text.contains("en vertu d'une obligation légale"));
    assert!(flat_text.contains("Vous n'avez aucun accord de partage ni mandat en vigueur"));
    expect("report-legal-obligation", &text, &html);
}

/// Partner names with their own article agree and contract.
#[test]
fn partner_names_with_an_article() {
    let mut ps = partners();
    let restos = partner("restos", PartnerKind::Association, "Les Restos du Cœur");
    let ccas = partner("ccas-sg", PartnerKind::Mairie, "Le CCAS de Saint-Gaudens");
    ps.insert(restos.id.clone(), restos);
    ps.insert(ccas.id.clone(), ccas);
    let c = consent(
        Grantee::Partner {
            partner: PartnerId::parse("restos").unwrap(),
        },
        vec![DataCategory::CaseStatus],
        0,
    );
    let (text, _) = consent_receipt(&c, &ps, &territory(), at(1));
    let t = flat(&text);
    assert!(t.contains("transmises aux Restos du Cœur"), "{text}");
    assert!(t.contains("Les Restos du Cœur ne peuvent plus"), "{text}");
    let mut m = a_mandate(vec![Theme::Logement]);
    m.partner = PartnerId::parse("ccas-sg").unwrap();
    let (text, _) = mandate(&m, &ps, &territory(), at(5));
    assert!(
        flat(&text).contains("agent du CCAS de Saint-Gaudens"),
        "{text}"
    );
}

#[test]
fn references_and_their_successors() {
    assert_eq!(reference(person()), "7F3A-9C21-5B0E");
    assert_eq!(
        reference_prefix(" 7f3a-9C21-5b0e ").as_deref(),
        Some("7f3a9c21-5b0e")
    );
    assert_eq!(reference_prefix(" 7f3a-9C21 ").as_deref(), Some("7f3a9c21"));
    assert_eq!(
        reference_successor("7f3a9c21-5b0f").as_deref(),
        Some("7f3a9c21-5b10")
    );
    assert_eq!(
        reference_successor("7f3a9c2f-ffff").as_deref(),
        Some("7f3a9c30-0000")
    );
    assert_eq!(reference_prefix("7f3a-9c2"), None);
    assert_eq!(reference_prefix("7f3a-9c2g"), None);
    assert_eq!(reference_successor("7f3a9c21").as_deref(), Some("7f3a9c22"));
    assert_eq!(reference_successor("7f3a9c2f").as_deref(), Some("7f3a9c30"));
    assert_eq!(reference_successor("7f3a9c29").as_deref(), Some("7f3a9c2a"));
    assert_eq!(reference_successor("ffffffff").as_deref(), Some("g"));
    assert_eq!(reference_successor("7F3A"), None);
}

#[test]
fn french_agreement() {
    let mairies = kind_fr(PartnerKind::Mairie);
    assert_eq!(mairies.to(), "aux mairies et leurs CCAS");
    assert_eq!(mairies.can(), "peuvent");
    let d = kind_fr(PartnerKind::Departement);
    assert_eq!(d.to(), "au département");
    assert_eq!(d.can(), "peut");
    assert_eq!(
        kind_fr(PartnerKind::SousPrefecture).to(),
        "à la sous-préfecture"
    );
    assert_eq!(join_fr(&["a", "b", "c"]), "a, b et c");
    assert_eq!(
        date_fr(Timestamp::from_micros(1_796_083_200 * 1_000_000)),
        "1er décembre 2026"
    );
}
