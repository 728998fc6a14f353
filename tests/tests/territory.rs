//! The territory's story, end to end across five connectors — one per partner kind, each with
//! its shipped profile and sample data: Mme Castet is flagged at the bus while it is out of
//! coverage and synced later; the mairie's CSV recognises her; the département's APA status
//! reaches the association's médiateur, who holds her mandate; a fiche navette from the bus to
//! the sous-préfecture comes back answered. Each partner enters each fact once.

use relais_connector::Connector;
use relais_connector::config::ConnectorConfig;
use relais_connector_sdk::outbox::drain_once;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../connectors/profiles");

/// A copy of a shipped profile in `dir`, with its samples, pointed at `hub_url`, with `edits`
/// applied to its text, and the partner's bundle where the profile expects it.
fn install(
    profile: &str,
    dir: &Path,
    partner: &Partner,
    bundle_name: &str,
    hub_url: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    let source = Path::new(PROFILES).join(profile);
    let mut text = std::fs::read_to_string(source.join("partner.toml")).unwrap();
    text = text.replace("https://127.0.0.1:7443", hub_url);
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{profile}: `{from}` not in the profile"
        );
        text = text.replace(from, to);
    }
    std::fs::write(dir.join("partner.toml"), text).unwrap();
    if source.join("depot").exists() {
        std::fs::create_dir_all(dir.join("depot")).unwrap();
        for f in std::fs::read_dir(source.join("depot")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join("depot").join(f.file_name().unwrap())).unwrap();
        }
    }
    partner
        .bundle
        .write(&dir.join(bundle_name), "test")
        .unwrap();
    dir.join("partner.toml")
}

async fn open(path: &Path) -> Connector {
    Connector::open(ConnectorConfig::load(path).unwrap())
        .await
        .unwrap()
}

async fn resolve(p: &Partner, local_id: &str) -> String {
    p.persons
        .clone()
        .resolve_person(pb::ResolvePersonRequest {
            context: ctx(),
            by: Some(pb::resolve_person_request::By::LocalId(local_id.into())),
        })
        .await
        .unwrap()
        .into_inner()
        .person_id
}

fn status_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("statuts/relais-statuts.csv")).unwrap_or_default()
}

async fn catch_up(c: &Connector) {
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
}

const CSV_SETTLE: (&str, &str) = (
    "status_dir = \"statuts\"",
    "status_dir = \"statuts\"\nsettle_seconds = 0",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_partners_one_person_each_fact_entered_once() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let cd31 = hub.partner("cd31", PartnerKind::Departement).await;
    let sp = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let asso = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();

    // 1. At the Aspet stop, out of coverage: the intake sheet goes into the bus's outbox.
    let offline = format!(
        "https://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let bus_profile = install(
        "communaute-de-communes",
        dirs[0].path(),
        &bus,
        "cc-comminges.bundle.pem",
        &offline,
        &[CSV_SETTLE],
    );
    let bus_c = open(&bus_profile).await;
    assert_eq!(
        bus_c.adapter.poll(&bus_c.state).await.unwrap(),
        2 + 4 + 2 + 1
    );
    assert!(
        drain_once(&bus_c.hub, &bus_c.state).await.unwrap().blocked,
        "no coverage"
    );
    drop(bus_c);
    // Back in coverage (the same outbox; the profile now reaches the hub).
    let text = std::fs::read_to_string(&bus_profile)
        .unwrap()
        .replace(&offline, &hub.url());
    std::fs::write(&bus_profile, text).unwrap();
    let bus_c = open(&bus_profile).await;
    let pass = drain_once(&bus_c.hub, &bus_c.state).await.unwrap();
    assert_eq!((pass.sent, pass.dead_lettered), (9, 0));

    // 2. The mairie's evening export recognises her: same hub person, nothing retyped.
    let mairie_c = open(&install(
        "mairie-ccas",
        dirs[1].path(),
        &mairie,
        "mairie-d-aspet.bundle.pem",
        &hub.url(),
        &[CSV_SETTLE],
    ))
    .await;
    mairie_c.adapter.poll(&mairie_c.state).await.unwrap();
    assert_eq!(
        drain_once(&mairie_c.hub, &mairie_c.state)
            .await
            .unwrap()
            .dead_lettered,
        0
    );
    let rose = resolve(&bus, "BUS-2026-0311").await;
    assert_eq!(
        resolve(&mairie, "CCAS-0017").await,
        rose,
        "one person, known once"
    );

    // At the bus she agreed: the mairies may see her difficulties and know her; the
    // sous-préfecture may receive fiches navettes about her.
    bus.grant(
        "BUS-2026-0311",
        kind(PartnerKind::Mairie),
        &["mobility", "digital", "social", "identity"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.grant(
        "BUS-2026-0311",
        partner("sp-saint-gaudens"),
        &["referrals", "case_status"],
        &[pb::Purpose::Orientation],
    )
    .await;
    catch_up(&mairie_c).await;
    let mairie_status = status_file(dirs[1].path());
    let eloignement = mairie_status
        .lines()
        .find(|l| l.contains("ELOIGNEMENT"))
        .expect("the bus's flag reaches the CCAS's status file");
    assert!(
        eloignement.contains("CCAS-0017"),
        "under the CCAS's own id: {eloignement}"
    );

    // 3. The association's médiateur visited her; she signs a mandate for her social procedures.
    let asso_c = open(&install(
        "association",
        dirs[4].path(),
        &asso,
        "asso-mediation.bundle.pem",
        &hub.url(),
        &[CSV_SETTLE],
    ))
    .await;
    asso_c.adapter.poll(&asso_c.state).await.unwrap();
    assert_eq!(
        drain_once(&asso_c.hub, &asso_c.state)
            .await
            .unwrap()
            .dead_lettered,
        0
    );
    asso.consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("MED-2026-114")),
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

    // 4. The département's application moves her APA file to "waiting for documents".
    let apa_db = dirs[2].path().join("action_sociale.db");
    let apa_url = format!("sqlite://{}?mode=rwc", apa_db.display());
    {
        sqlx::any::install_default_drivers();
        let db = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&apa_url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE relais_dossiers (seq INTEGER PRIMARY KEY, numero_usager TEXT, nom_naissance TEXT, prenom TEXT, date_naissance TEXT, insee_naissance TEXT, numero_dossier TEXT, demarche TEXT, theme TEXT, etat TEXT, pieces_manquantes TEXT, apa_notifiee TEXT, apa_fin_droits TEXT)")
            .execute(&db)
            .await
            .unwrap();
        for (seq, etat, pieces) in [
            (1, "in_progress", ""),
            (2, "waiting_documents", "avis d'imposition 2025"),
        ] {
            sqlx::query("INSERT INTO relais_dossiers VALUES (?, 'U-7781', 'CASTET', 'Rose', '1943-02-17', '31021', 'APA-2026-7781', 'local:apa-renouvellement', 'social', ?, ?, 'oui', '2027-03-31')")
                .bind(seq)
                .bind(etat)
                .bind(pieces)
                .execute(&db)
                .await
                .unwrap();
        }
    }
    let cd31_c = open(&install(
        "departement",
        dirs[2].path(),
        &cd31,
        "cd31.bundle.pem",
        &hub.url(),
        &[(
            "postgres://relais_lecture@127.0.0.1:5432/action_sociale",
            &apa_url,
        )],
    ))
    .await;
    cd31_c.adapter.poll(&cd31_c.state).await.unwrap();
    assert_eq!(
        drain_once(&cd31_c.hub, &cd31_c.state)
            .await
            .unwrap()
            .dead_lettered,
        0
    );
    assert_eq!(resolve(&cd31, "U-7781").await, rose);
    // Its notification of her APA attests her loss of autonomy, to be reviewed when her
    // rights end.
    let attested = cd31.flags_of("U-7781", false).await;
    let apa_flag = attested
        .iter()
        .find(|f| f.code == "PERTE_AUTONOMIE")
        .unwrap_or_else(|| panic!("{attested:?}"));
    let q = apa_flag.qualification.clone().unwrap();
    assert_eq!(q.qualification, pb::Qualification::Attested as i32);
    assert_eq!(q.evidence, "notification APA du département");
    assert_eq!(apa_flag.review_on, "2027-03-31");

    // …and the médiateur sees it, to bring the tax notice on his next visit.
    catch_up(&asso_c).await;
    let asso_status = status_file(dirs[4].path());
    let apa = asso_status
        .lines()
        .find(|l| l.contains("local:apa-renouvellement"))
        .unwrap_or_else(|| panic!("the APA status reaches the médiateur: {asso_status}"));
    assert!(
        apa.contains("en attente de pièces") && apa.contains("avis d'imposition 2025"),
        "{apa}"
    );
    assert!(
        !asso_status.contains("ELOIGNEMENT") && !asso_status.contains("PERTE_AUTONOMIE"),
        "no consent for the association's flags: {asso_status}"
    );

    // 5. A fiche navette from the bus to the sous-préfecture, answered by its application.
    let (webhook, mut delivered) = webhook_receiver().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sp_c = std::sync::Arc::new(
        open(&install(
            "sous-prefecture",
            dirs[3].path(),
            &sp,
            "sp-saint-gaudens.bundle.pem",
            &hub.url(),
            &[
                (
                    "listen = \"127.0.0.1:8740\"",
                    &format!("listen = \"127.0.0.1:{port}\""),
                ),
                ("http://127.0.0.1:8741/relais/evenements", &webhook),
            ],
        ))
        .await,
    );
    let running = sp_c.clone();
    tokio::spawn(async move { running.run().await });
    let (case_id, _) = bus_c
        .state
        .case_ref("BUS-D-0311")
        .await
        .unwrap()
        .expect("the intake opened the case");
    let sent = bus
        .cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: Some(pb::RequestContext {
                purpose: pb::Purpose::Orientation as i32,
                agent: "bus-agent-1".into(),
            }),
            case_id,
            to_partner: "sp-saint-gaudens".into(),
            reason: "renouvellement CNI, aucun moyen de transport".into(),
            requested_action: "rendez-vous au bus mardi à Aspet".into(),
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let received = loop {
        let e = tokio::time::timeout(Duration::from_secs(30), delivered.recv())
            .await
            .expect("the webhook fires")
            .unwrap();
        if e["item"]["type"] == "referral" {
            break e;
        }
    };
    assert_eq!(received["item"]["id"], sent.id.as_str());
    let answer = serde_json::json!({"source": "application titres", "writes": [
        {"write": "answer_referral", "referral_id": sent.id, "answer": "rendez-vous fixé le 9 décembre au bus, apporter une photo"}
    ]});
    let posted = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/writes"))
        .bearer_auth("remplacez-moi-par-un-jeton-de-32-caracteres-ou-plus")
        .json(&answer)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        catch_up(&bus_c).await;
        let bus_status = status_file(dirs[0].path());
        if let Some(row) = bus_status
            .lines()
            .find(|l| l.starts_with(&format!("referral:{}", sent.id)) && l.contains(";répondue;"))
        {
            assert!(row.contains("rendez-vous fixé le 9 décembre"), "{row}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the answer did not come back: {bus_status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A webhook receiver with the sous-préfecture profile's secret; keeps the verified bodies.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use axum::http::{HeaderMap, StatusCode};
    const SECRET: &str = "remplacez-moi-par-un-secret-de-32-caracteres-ou-plus";
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/relais/evenements",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                if header("x-relais-signature")
                    != relais_adapter_http::sign(SECRET, &header("x-relais-timestamp"), &body)
                {
                    return StatusCode::UNAUTHORIZED;
                }
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or_default());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/relais/evenements",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}
