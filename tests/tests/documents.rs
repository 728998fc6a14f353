//! The person's documents from a real hub after a short session at the counter: the consent
//! receipt, the mandate and the access report say it in plain French, without an internal id,
//! and each prints on A4 in headless Chromium — the report's summary on one page. One page of
//! each is written to `target/document-screenshots/` (and to `tests/screenshots/` with
//! `RELAIS_UPDATE_SCREENSHOTS=1`, for the README). The wording itself is checked against
//! expected files by the hub's unit tests (`hub/src/documents/tests.rs`).

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::path::PathBuf;

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_persons_documents_are_plain_french_and_print_on_a4() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner_named(
            "cc-comminges",
            PartnerKind::CommunauteDeCommunes,
            "France Services itinérant (bus)",
            &["31483"],
        )
        .await;
    let mairie = hub
        .partner_named(
            "mairie-aspet",
            PartnerKind::Mairie,
            "CCAS d'Aspet",
            &["31483"],
        )
        .await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    let person = bus.link("B1", rose.clone()).await.person_id;
    mairie.link("M1", rose).await;
    let consent = bus
        .grant(
            "B1",
            kind(PartnerKind::Mairie),
            &["mobility", "case_status"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    bus.raise("B1", "SANS_TRANSPORT").await;
    bus.raise("B1", "PERTE_AUTONOMIE").await;
    // The CCAS agent opens the person's summary three times in the same minute.
    for _ in 0..3 {
        mairie.summary_of("M1").await.unwrap();
    }
    // It notes a difficulty of its own and reads its flags back.
    mairie.raise("M1", "ILLECTRONISME").await;
    mairie.flags_of("M1", false).await;
    let mandate = mairie
        .consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("M1")),
            mandatary: Some(pb::AgentRef {
                partner: String::new(),
                agent: "agent-ccas-2".into(),
            }),
            themes: vec!["logement".into(), "argent".into()],
            duration: pb::MandateDuration::SixMonths as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();

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
    let report = hub
        .admin
        .clone()
        .get_access_report(pb::GetAccessReportRequest {
            person_id: person.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    let hex = person.replace('-', "").to_uppercase();
    let reference = format!("{}-{}-{}", &hex[..4], &hex[4..8], &hex[8..12]);
    let documents = [
        ("receipt", &receipt.text, &receipt.html),
        ("mandate", &mandate.printable_text, &mandate.printable_html),
        ("report", &report.text, &report.html),
    ];
    for (name, text, html) in documents {
        for id in [
            person.as_str(),
            consent.id.as_str(),
            "agent-1",
            "agent-ccas-2",
        ] {
            assert!(!text.contains(id), "{name} shows `{id}`:\n{text}");
            assert!(!html.contains(id), "{name}'s page shows `{id}`");
        }
        assert!(
            text.contains(&reference),
            "{name} gives the reference {reference}"
        );
        for bad in ["à les ", "à le ", "mairies et leurs CCAS peut "] {
            assert!(!text.contains(bad), "{name}: `{bad}`");
        }
    }
    let receipt_text = flat(&receipt.text);
    assert!(receipt_text.contains("transmises aux mairies et leurs CCAS"));
    assert!(receipt_text.contains("vos difficultés à vous déplacer"));
    let mandate_text = flat(&mandate.printable_text);
    assert!(mandate_text.contains("agent de CCAS d'Aspet"));
    assert!(mandate_text.contains("« Logement » et « Argent »"));
    let text = flat(&report.text);
    assert!(text.contains("En résumé"));
    // Three summaries and a list of flags, alike: one line, with the count and the refusal.
    assert_eq!(
        text.matches("a reçu vos difficultés à vous déplacer")
            .count(),
        1,
        "the reads folded into one line:\n{}",
        report.text
    );
    assert!(
        text.contains("dans vos démarches (4 fois) ; refusé, faute de votre accord : votre santé"),
        "{}",
        report.text
    );
    assert!(text.contains("a noté vos difficultés avec le numérique"));
    assert!(text.contains(": les mairies et leurs CCAS peuvent recevoir"));
    assert!(text.contains("un agent de CCAS d'Aspet peut suivre vos démarches"));
    assert!(text.contains("Responsable du traitement : Communauté de communes"));
    assert!(text.contains("Signature de l'agent"));

    let Some(chromium) = chromium() else {
        eprintln!(
            "NOT RUN: printing the documents needs chromium (apt install chromium, or RELAIS_TEST_CHROMIUM)"
        );
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("../target/document-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, _, html) in documents {
        let printed = print_a4(&chromium, html);
        let (pages, a4) = printed.a4_pages();
        assert!(a4, "{name}: every page A4");
        assert!(printed.ink() > 0.01, "{name}: ink on the first page");
        std::fs::write(shots.join(format!("{name}.png")), &printed.png).unwrap();
        if std::env::var_os("RELAIS_UPDATE_SCREENSHOTS").is_some() {
            std::fs::write(
                root.join(format!("screenshots/document-{name}.png")),
                &printed.png,
            )
            .unwrap();
        }
        match name {
            "report" => assert!(pages >= 2, "a summary page, then the detail: {pages}"),
            _ => assert_eq!(pages, 1, "{name} on one sheet"),
        }
    }
    // The report's summary — everything before the detail's page break — holds on one page.
    let summary = report
        .html
        .split("<div class=\"break\"></div>")
        .next()
        .unwrap()
        .to_string()
        + "</body></html>";
    let (pages, _) = print_a4(&chromium, &summary).a4_pages();
    assert_eq!(pages, 1, "the summary fits on the first page");
}
