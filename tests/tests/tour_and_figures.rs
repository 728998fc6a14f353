//! The territory in aggregates: the bus's tours (aller_vers) on a synthetic Comminges — real
//! COG codes of the CC Cœur et Coteaux du Comminges —, the médiateur's sheet, and the activity
//! figures for funders (statistique); small counts suppressed, a hidden difficulty never
//! counted, the printable sheets rendered on A4 in headless Chromium.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;

fn in_days(days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn with(purpose: pb::Purpose, agent: &str) -> Option<pb::RequestContext> {
    Some(pb::RequestContext {
        purpose: purpose as i32,
        agent: agent.into(),
    })
}

async fn open_due(p: &Partner, local_id: &str, procedure: &str, due: &str) -> pb::Case {
    p.cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local(local_id)),
            procedure: procedure.into(),
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

async fn live_in(p: &Partner, local_id: &str, commune: &str) {
    p.persons
        .clone()
        .set_residence(pb::SetResidenceRequest {
            context: ctx(),
            person: Some(local(local_id)),
            commune: commune.into(),
            request_id: new_request_id(),
        })
        .await
        .expect("residence");
}

async fn tour(bus: &Partner, days: i32, per_day: i32) -> pb::PlanTourResponse {
    bus.territory
        .clone()
        .plan_tour(pb::PlanTourRequest {
            context: with(pb::Purpose::AllerVers, "chauffeur-bus"),
            days,
            stops_per_day: per_day,
            start_on: String::new(),
        })
        .await
        .expect("tour")
        .into_inner()
}

fn need<'a>(t: &'a pb::PlanTourResponse, commune: &str) -> &'a pb::CommuneNeed {
    t.communes
        .iter()
        .find(|c| c.commune == commune)
        .unwrap_or_else(|| panic!("{commune} in {t:?}"))
}

fn shown(c: &Option<pb::Count>) -> &str {
    c.as_ref().map_or("", |c| c.shown.as_str())
}

#[tokio::test]
async fn the_tour_goes_where_the_need_is_counted_from_what_the_bus_may_read() {
    let hub = TestHub::start().await;
    // The communauté de communes runs the bus over the Haute-Garonne's Comminges.
    let bus = hub
        .partner_in(
            "cc-coeur-coteaux",
            PartnerKind::CommunauteDeCommunes,
            &["31"],
        )
        .await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    // Montréjeau: 7 persons without transport, each with a case; 5 of them due within 14
    // days. Saint-Gaudens: 5 without internet, with cases. Aurignac: 3 (shown "< 5").
    // L'Isle-en-Dodon: 5 persons with cases and no difficulty the bus may read — the
    // département knows of 4 losses of autonomy there, which it may not share: nothing counts.
    // Foix (09122) is outside the bus's territory.
    let mut n = 0;
    let mut person = |commune: &'static str| {
        n += 1;
        (format!("P{n:03}"), commune)
    };
    let mut people = Vec::new();
    for _ in 0..7 {
        people.push((person("31390"), "SANS_TRANSPORT"));
    }
    for _ in 0..5 {
        people.push((person("31483"), "SANS_INTERNET"));
    }
    for _ in 0..3 {
        people.push((person("31028"), "ILLECTRONISME"));
    }
    for _ in 0..5 {
        people.push((person("31239"), ""));
    }
    people.push((person("09122"), "SANS_TRANSPORT"));
    for (i, ((local_id, commune), code)) in people.iter().enumerate() {
        let who = pivot(&format!("Nom{i}"), "Marie", "1950-01-01", "31483");
        bus.link(local_id, who.clone()).await;
        live_in(&bus, local_id, commune).await;
        let due = if *commune == "31390" && i < 5 {
            in_days(10)
        } else {
            String::new()
        };
        open_due(&bus, local_id, "F1342", &due).await;
        if !code.is_empty() {
            bus.qualify(local_id, code, pb::Qualification::Observed, "")
                .await
                .unwrap();
        }
    }
    let before = tour(&bus, 2, 1).await;
    // The département's hidden difficulties in L'Isle-en-Dodon.
    for ((local_id, _), _) in people.iter().filter(|((_, c), _)| *c == "31239").take(4) {
        let who = pivot(
            &format!(
                "Nom{}",
                people.iter().position(|((l, _), _)| l == local_id).unwrap()
            ),
            "Marie",
            "1950-01-01",
            "31483",
        );
        cd.link(local_id, who).await;
        cd.qualify(
            local_id,
            "PERTE_AUTONOMIE",
            pb::Qualification::Attested,
            "notification APA du département",
        )
        .await
        .unwrap();
    }
    let t = tour(&bus, 2, 1).await;
    assert_eq!(
        t.communes, before.communes,
        "a difficulty the bus may not read changes no count and no order"
    );

    let montrejeau = need(&t, "31390");
    assert_eq!(montrejeau.name, "Montréjeau");
    assert_eq!(shown(&montrejeau.persons_needing_help), "7");
    assert_eq!(shown(&montrejeau.cases_due_soon), "5");
    assert_eq!(shown(&need(&t, "31483").persons_needing_help), "5");
    let aurignac = need(&t, "31028");
    assert_eq!(shown(&aurignac.persons_needing_help), "< 5");
    assert!(aurignac.persons_needing_help.as_ref().unwrap().suppressed);
    assert_eq!(aurignac.persons_needing_help.as_ref().unwrap().value, 0);
    // L'Isle-en-Dodon has no need the bus may read: not listed; Foix is not its territory.
    assert!(
        t.communes
            .iter()
            .all(|c| c.commune != "31239" && c.commune != "09122")
    );

    // Two days, one stop a day: Montréjeau, then Saint-Gaudens; working days only.
    let stops: Vec<(i32, i32, &str)> = t
        .stops
        .iter()
        .map(|s| (s.day, s.order, s.commune.as_ref().unwrap().commune.as_str()))
        .collect();
    assert_eq!(stops, [(1, 1, "31390"), (2, 1, "31483")]);
    assert_ne!(t.stops[0].date, t.stops[1].date);
    assert!(t.csv.starts_with("jour;date;ordre;commune;"));
    assert!(t.csv.contains(";Montréjeau;31390;7;5;< 5\n"), "{}", t.csv);
    assert!(t.html.contains("Montréjeau (31390)"));
    assert!(!t.partial);
    // Each person counted has it in their audit (their access report says so).
    let counted = hub
        .hub
        .store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.doc.contains("\"read:PlanTour\"") && e.doc.contains("\"person\":\""))
        .count();
    assert!(
        counted >= 2 * 20,
        "{counted} per-person entries for two plans of 20 persons"
    );
    assert!(t.html.contains("&lt; 5"));
    // No person-level data in any form of the answer.
    for local_id in people.iter().map(|((l, _), _)| l) {
        assert!(!t.csv.contains(local_id.as_str()) && !t.html.contains(local_id.as_str()));
    }

    // A tour is for aller_vers; bad bounds say which field.
    let refused = bus
        .territory
        .clone()
        .plan_tour(pb::PlanTourRequest {
            context: ctx(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["context.purpose"]);
    let refused = bus
        .territory
        .clone()
        .plan_tour(pb::PlanTourRequest {
            context: with(pb::Purpose::AllerVers, "chauffeur-bus"),
            days: 40,
            stops_per_day: 9,
            start_on: "2020-01-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&refused),
        ["days", "stops_per_day", "start_on"]
    );

    // The sheet for the driver prints on A4, with ink on it.
    match chromium() {
        Some(chromium) => {
            let printed = print_a4(&chromium, &t.html);
            assert_eq!(printed.size(), (794, 1123));
            assert!(printed.ink() > 0.005, "the sheet is not blank");
            let (pages, a4) = printed.a4_pages();
            assert!(a4 && pages >= 1, "{pages} pages, A4: {a4}");
        }
        None => eprintln!(
            "NOT RUN: printing the tour sheet needs chromium (apt install chromium, or RELAIS_TEST_CHROMIUM)"
        ),
    }
}

#[tokio::test]
async fn the_mediators_sheet_lists_what_is_pending_for_each_person_followed() {
    let hub = TestHub::start().await;
    let cc = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let cd = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    let castet = pivot("Castet", "Jeanne", "1941-02-11", "31020");
    cc.link("BUS-0001", castet.clone()).await;
    cd.link("APA-77", castet).await;
    // Mme Castet gives the médiateur a mandate for her social procedures.
    cc.consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("BUS-0001")),
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
        .unwrap();
    // The département's APA renewal (social) waits for two documents and falls due in 8 days;
    // its housing case (logement) is not the mandate's.
    cd.cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("APA-77")),
            procedure: "local:apa-renouvellement".into(),
            missing_documents: vec!["avis d'imposition".into(), "RIB".into()],
            due_date: in_days(8),
            theme: "social".into(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap();
    cd.cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("APA-77")),
            procedure: "F1342".into(),
            theme: "logement".into(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap();
    let sheet = cc
        .territory
        .clone()
        .get_mediator_sheet(pb::GetMediatorSheetRequest {
            context: with(pb::Purpose::Accompagnement, "mediateur-1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sheet.persons.len(), 1, "{sheet:?}");
    let p = &sheet.persons[0];
    assert_eq!(p.local_ids, ["BUS-0001"]);
    assert_eq!(p.themes, ["Social - Santé"]);
    assert_eq!(p.pending.len(), 1, "{:?}", p.pending);
    assert!(
        p.pending[0]
            .starts_with("Renouvellement de l'APA chez Partner departement-31 : en préparation"),
        "{}",
        p.pending[0]
    );
    assert!(p.pending[0].contains("pièces à réunir : avis d'imposition, RIB"));
    assert!(p.pending[0].contains("(dans 8 jours)"));
    assert!(sheet.html.contains("font-size:18pt"));

    // Another agent of the same partner follows nobody.
    let other = cc
        .territory
        .clone()
        .get_mediator_sheet(pb::GetMediatorSheetRequest {
            context: with(pb::Purpose::Accompagnement, "agent-accueil"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.persons.is_empty());

    match chromium() {
        Some(chromium) => {
            let printed = print_a4(&chromium, &sheet.html);
            assert!(printed.ink() > 0.005, "the sheet is not blank");
            let (pages, a4) = printed.a4_pages();
            assert!(a4 && pages >= 1, "{pages} pages, A4: {a4}");
        }
        None => eprintln!(
            "NOT RUN: printing the médiateur's sheet needs chromium (apt install chromium, or RELAIS_TEST_CHROMIUM)"
        ),
    }
}

#[tokio::test]
async fn activity_figures_are_aggregates_with_small_counts_suppressed() {
    let hub = TestHub::start().await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    for i in 0..7 {
        let local_id = format!("L{i}");
        let who = pivot(&format!("Nom{i}"), "Paul", "1960-03-03", "31483");
        ccas.link(&local_id, who.clone()).await;
        bus.link(&local_id, who).await;
        let case = open_due(&ccas, &local_id, "F1342", "").await;
        if i < 6 {
            let case = ccas.move_case(&case, pb::CaseStatus::Sent).await;
            let case = ccas.move_case(&case, pb::CaseStatus::Acknowledged).await;
            let case = ccas.move_case(&case, pb::CaseStatus::InProgress).await;
            // Five accepted, one refused: the refusal is not named, nor can it be read back
            // from the total (6 closed) minus the named rows.
            let to = if i < 5 {
                pb::CaseStatus::Accepted
            } else {
                pb::CaseStatus::Refused
            };
            ccas.move_case(&case, to).await;
        }
    }
    let figures = ccas
        .territory
        .clone()
        .get_activity_figures(pb::GetActivityFiguresRequest {
            context: with(pb::Purpose::Statistique, "dgs"),
            from: String::new(),
            to: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(figures.partner, "mairie-aspet");
    assert_eq!(figures.months.len(), 1, "{figures:?}");
    let m = &figures.months[0];
    assert_eq!(shown(&m.persons_helped), "7");
    assert_eq!(shown(&m.cases_opened), "7");
    assert_eq!(shown(&m.cases_closed), "6");
    assert_eq!(m.median_days_to_close, 0);
    assert_eq!(shown(&m.referrals_received), "< 5");
    let outcomes: Vec<(&str, &str)> = m
        .by_outcome
        .iter()
        .map(|b| (b.label.as_str(), shown(&b.cases)))
        .collect();
    assert_eq!(outcomes, [("acceptée", "5"), ("autres", "< 5")]);
    assert!(m.by_outcome.iter().all(|b| b.key != "refused"));
    assert!(
        figures
            .csv
            .starts_with("mois;personnes accompagnées;démarches ouvertes;")
    );
    assert!(!figures.csv.contains("L0"));

    // Figures are for the statistique purpose; months are `YYYY-MM`.
    let refused = ccas
        .territory
        .clone()
        .get_activity_figures(pb::GetActivityFiguresRequest {
            context: ctx(),
            from: String::new(),
            to: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["context.purpose"]);
    let refused = ccas
        .territory
        .clone()
        .get_activity_figures(pb::GetActivityFiguresRequest {
            context: with(pb::Purpose::Statistique, "dgs"),
            from: "2026-13".into(),
            to: "décembre".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["to", "from"]);
    // The bus's figures do not include the CCAS's cases.
    let theirs = bus
        .territory
        .clone()
        .get_activity_figures(pb::GetActivityFiguresRequest {
            context: with(pb::Purpose::Statistique, "dgs"),
            from: String::new(),
            to: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.months.is_empty());
}
