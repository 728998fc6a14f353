//! Connectors against a real hub: a CCAS spreadsheet export reaches the hub and statuses come
//! back to a status file; writes made while the hub is out of reach wait in the outbox and go
//! when it is back; a connector stopped mid-sync resumes with nothing lost or applied twice;
//! what the hub refuses is dead-lettered with its reason, and replayable.

use relais_connector::Connector;
use relais_connector::config::ConnectorConfig;
use relais_connector_sdk::{State, Write, outbox};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::path::Path;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../connectors/profiles/mairie-ccas/depot/registre-2026-11-28.csv"
);
const PROFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../connectors/profiles/mairie-ccas/partner.toml"
);

/// The shipped CCAS profile, pointed at this hub, in `dir`, with the partner's bundle.
async fn ccas_connector(hub_url: &str, partner: &Partner, dir: &Path) -> Connector {
    partner
        .bundle
        .write(&dir.join("mairie-d-aspet.bundle.pem"), "test")
        .unwrap();
    let profile = std::fs::read_to_string(PROFILE)
        .unwrap()
        .replace("https://127.0.0.1:7443", hub_url)
        .replace("poll_seconds = 30", "poll_seconds = 1");
    let profile = profile.replace(
        "delimiter = \"auto\"",
        "delimiter = \"auto\"\nsettle_seconds = 0",
    );
    std::fs::write(dir.join("partner.toml"), profile).unwrap();
    Connector::open(ConnectorConfig::load(&dir.join("partner.toml")).unwrap())
        .await
        .unwrap()
}

fn drop_sample(dir: &Path) {
    std::fs::create_dir_all(dir.join("depot")).unwrap();
    std::fs::copy(SAMPLE, dir.join("depot/registre-2026-11-28.csv")).unwrap();
}

fn status_rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("statuts/relais-statuts.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

async fn summary(p: &Partner, local_id: &str) -> pb::GetPersonSummaryResponse {
    p.persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(local(local_id)),
            include_history: false,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ccas_export_reaches_the_hub_and_shared_data_comes_back_to_a_status_file() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;

    drop_sample(dir.path());
    let queued = c.adapter.poll(&c.state).await.unwrap();
    assert_eq!(
        queued,
        4 + 8,
        "four persons linked, eight difficulties ticked"
    );
    assert!(
        dir.path().join("traites/registre-2026-11-28.csv").exists(),
        "moved aside"
    );
    let sent = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert_eq!(
        (sent.sent, sent.dead_lettered, sent.blocked),
        (12, 0, false)
    );
    let rose = summary(&mairie, "CCAS-0017").await;
    assert_eq!(rose.flags.len(), 4);

    // The bus meets Mme Castet, who agrees that the mairie sees her digital difficulties.
    bus.link("BUS-1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let consent = bus
        .grant(
            "BUS-1",
            partner("mairie-d-aspet"),
            &["digital"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    let email = bus.raise("BUS-1", "SANS_EMAIL").await;
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    let rows = status_rows(dir.path());
    let bus_row = rows
        .iter()
        .find(|r| r.starts_with(&format!("flag:{}", email.id)))
        .expect("the bus's flag is in the CCAS's status file");
    assert!(
        bus_row.contains("CCAS-0017"),
        "under the CCAS's own id: {bus_row}"
    );
    assert_eq!(
        rows.len(),
        8 + 1,
        "its own eight flags come back too: {rows:?}"
    );

    // She withdraws: the row and the local copy go.
    bus.consent
        .clone()
        .withdraw_consent(pb::WithdrawConsentRequest {
            context: ctx(),
            consent_id: consent.id,
            channel: "bus".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    assert!(
        !status_rows(dir.path())
            .iter()
            .any(|r| r.starts_with(&format!("flag:{}", email.id))),
        "redacted from the status file"
    );
    assert_eq!(
        c.state.copy(&format!("flag:{}", email.id)).await.unwrap(),
        None
    );
    let status = c.status().await.unwrap();
    assert_eq!(status.head, Some(status.cursor), "caught up: no lag");
    assert_eq!((status.outbox, status.dead_letters), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_queue_order_goes_beside_the_statuses_in_the_status_file() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    drop_sample(dir.path());
    c.adapter.poll(&c.state).await.unwrap();
    outbox::drain_once(&c.hub, &c.state).await.unwrap();
    // Two cases at the CCAS: the one due in three days comes first.
    let later = mairie.open_case("CCAS-0017", "F1342").await;
    let soon = mairie
        .cases
        .clone()
        .open_case(pb::OpenCaseRequest {
            context: ctx(),
            person: Some(local("CCAS-0017")),
            procedure: "F1342".into(),
            due_date: {
                let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(3);
                format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
            },
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .r#case
        .unwrap();
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    let queue = c.hub.work_queue(100).await.unwrap();
    c.adapter.prioritise(&queue).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("statuts/relais-statuts.csv")).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with(";échéance;priorité;pourquoi")
    );
    let row = |id: &str| {
        status_rows(dir.path())
            .into_iter()
            .find(|r| r.starts_with(&format!("case:{id}")))
            .unwrap_or_else(|| panic!("case {id} in the status file"))
    };
    assert!(
        row(&soon.id).contains(";1;échéance dans 3 jours, "),
        "{}",
        row(&soon.id)
    );
    assert!(row(&later.id).contains(";2;"), "{}", row(&later.id));
    // An event rewrites the row; its place in the queue stays until the next reading.
    mairie.move_case(&soon, pb::CaseStatus::Sent).await;
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    assert!(
        row(&soon.id).contains(";envoyée;"),
        "the state in French: {}",
        row(&soon.id)
    );
    assert!(row(&soon.id).contains(";1;échéance dans 3 jours, "));
    // Flags carry no rank.
    assert!(
        status_rows(dir.path())
            .iter()
            .filter(|r| r.starts_with("flag:"))
            .all(|r| r.ends_with(";;"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_while_the_hub_is_out_of_reach_wait_and_go_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(
        config_for(hub_dir.path()),
        tempfile::tempdir().unwrap(),
        None,
    )
    .await;
    let addr = hub.hub.addr;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    hub.hub.shutdown().await.unwrap();

    // In the valley without coverage: the export is read, the writes wait.
    drop_sample(dir.path());
    assert_eq!(c.adapter.poll(&c.state).await.unwrap(), 12);
    let pass = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert!(pass.blocked);
    assert_eq!(pass.sent, 0);
    assert_eq!(
        c.state.counts().await.unwrap(),
        (12, 0),
        "kept, nothing dead-lettered"
    );

    // Kept across a restart of the connector, too.
    drop(c);
    let state = State::open(&dir.path().join("etat")).await.unwrap();
    assert_eq!(state.counts().await.unwrap().0, 12);
    drop(state);

    // Coverage is back: the hub answers again on the same address.
    let mut config = config_for(hub_dir.path());
    config.listen = addr;
    let _back = relais_hub::start(config).await.unwrap();
    let c = Connector::open(ConnectorConfig::load(&dir.path().join("partner.toml")).unwrap())
        .await
        .unwrap();
    let pass = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert_eq!((pass.sent, pass.blocked), (12, false));
    let again = Partner::connect(
        "mairie-d-aspet",
        &format!("https://{addr}"),
        mairie.bundle.clone(),
    )
    .await;
    assert_eq!(summary(&again, "CCAS-0018").await.flags.len(), 3);
}

/// The running outbox probes a hub out of reach every few seconds: once it is back, what
/// waited leaves within seconds — not after a backoff grown to a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_leave_within_seconds_of_the_hub_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(
        config_for(hub_dir.path()),
        tempfile::tempdir().unwrap(),
        None,
    )
    .await;
    let addr = hub.hub.addr;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    hub.hub.shutdown().await.unwrap();
    drop_sample(dir.path());
    assert_eq!(c.adapter.poll(&c.state).await.unwrap(), 12);
    let wake = tokio::sync::Notify::new();
    let state = c.state.clone();
    let draining = outbox::drain(
        &c.hub,
        &state,
        &wake,
        std::time::Duration::from_secs(3600),
        Some(c.adapter.as_ref()),
    );
    let back_and_drained = async {
        // Out of reach for 10 s: a doubling backoff would now wait 16 s and more.
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        assert_eq!(c.state.counts().await.unwrap(), (12, 0), "kept meanwhile");
        let mut config = config_for(hub_dir.path());
        config.listen = addr;
        let _back = relais_hub::start(config).await.unwrap();
        let since = std::time::Instant::now();
        while c.state.counts().await.unwrap().0 > 0 {
            assert!(
                since.elapsed() < std::time::Duration::from_secs(8),
                "the outbox still waits {:?} after the hub came back",
                since.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        since.elapsed().as_millis()
    };
    tokio::select! {
        r = draining => panic!("the drain ended: {r:?}"),
        waited = back_and_drained => eprintln!("outbox empty {waited} ms after the hub came back"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_stopped_mid_sync_resumes_with_nothing_lost_or_applied_twice() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    let mut writes = vec![Write::Link {
        local_id: "CCAS-9".into(),
        pivot: None,
    }];
    for n in 0..6 {
        writes.push(Write::OpenCase {
            case_ref: format!("dossier-{n}"),
            local_id: "CCAS-9".into(),
            procedure: "local:aide-sociale".into(),
            theme: "social".into(),
            missing_documents: vec![],
        });
    }
    c.state.enqueue(&writes, "saisie", false).await.unwrap();
    // The first four reach the hub, then the connector dies before it marks them sent.
    for p in c.state.pending(4).await.unwrap() {
        c.hub.send(&p, &c.state).await.unwrap();
    }
    drop(c);
    let c = Connector::open(ConnectorConfig::load(&dir.path().join("partner.toml")).unwrap())
        .await
        .unwrap();
    let pass = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert_eq!(
        (pass.sent, pass.dead_lettered),
        (7, 0),
        "every write sent again"
    );
    let cases = mairie
        .cases
        .clone()
        .list_cases(pb::ListCasesRequest {
            context: ctx(),
            person: None,
            statuses: vec![],
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(
        cases.len(),
        6,
        "each case once: the hub recognised the retried request ids"
    );

    // The feed applied twice (cursor lost) leaves one row per item.
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    let first = status_rows(dir.path());
    c.state.applied(0, None, &[]).await.unwrap();
    relais_connector_sdk::feed::follow(&c.hub, &c.state, c.adapter.as_ref(), true)
        .await
        .unwrap();
    assert_eq!(status_rows(dir.path()), first);
    assert_eq!(first.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_hub_refuses_is_dead_lettered_with_its_reason_and_can_be_replayed() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    let writes = [
        Write::Link {
            local_id: "CCAS-1".into(),
            pivot: None,
        },
        Write::RaiseFlag {
            local_id: "CCAS-1".into(),
            code: "SANS_WIFI".into(),
            note: String::new(),
            qualification: String::new(),
            evidence: String::new(),
            review_on: String::new(),
        },
        Write::RaiseFlag {
            local_id: "CCAS-1".into(),
            code: "ISOLEMENT".into(),
            note: String::new(),
            qualification: String::new(),
            evidence: String::new(),
            review_on: String::new(),
        },
    ];
    c.state.enqueue(&writes, "saisie", false).await.unwrap();
    let pass = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert_eq!(
        (pass.sent, pass.dead_lettered),
        (2, 1),
        "the bad one does not stop the others"
    );
    let dead = c.state.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].code, "InvalidArgument");
    assert!(dead[0].reason.contains("SANS_WIFI"), "{}", dead[0].reason);
    assert_eq!(c.state.replay(None).await.unwrap(), 1);
    assert_eq!(c.state.counts().await.unwrap(), (1, 0));
}

/// A CCAS agent's export with five kinds of rows: every refused one reaches
/// `<file>.erreurs.csv` with its line and a French reason — those the hub refuses after sending
/// included, the row whose person the hub refused once (its flags, refused with it, are not
/// reported again) — and a dead letter can be discarded with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_row_reaches_the_errors_file_with_its_line() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ccas_connector(&hub.url(), &mairie, dir.path()).await;
    let export = "N° fiche;Nom de naissance;Prénom;Date de naissance;Code INSEE naissance;Vit seul(e);Sans voiture;Pas d'internet;Registre canicule;Observations\n\
        CCAS-0100;CASTET;Rose;17/02/1943;31021;oui;;;;\n\
        CCAS-0101;PÉRÈS;Jean;03/11/1938;31021;peut-être;;;;\n\
        CCAS-0102;DURAND;Marie;01/01/1850;31021;oui;oui;;;\n\
        CCAS-0103;MARTIN;Paul;12/05/1950;31021;;;oui;;\n";
    std::fs::create_dir_all(dir.path().join("depot")).unwrap();
    std::fs::write(dir.path().join("depot/registre-2026-12-05.csv"), export).unwrap();
    assert_eq!(c.adapter.poll(&c.state).await.unwrap(), 7);
    let pass = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert_eq!((pass.sent, pass.dead_lettered), (4, 3), "{pass:?}");
    outbox::report_dead_letters(&c.state, Some(c.adapter.as_ref())).await;

    let errors = std::fs::read_to_string(
        dir.path()
            .join("traites/registre-2026-12-05.csv.erreurs.csv"),
    )
    .unwrap();
    let rows: Vec<&str> = errors.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "one line per refused row:\n{errors}");
    assert!(
        rows[0].starts_with("3;")
            && rows[0].contains("peut-être")
            && rows[0].contains("ni oui ni non"),
        "{errors}"
    );
    assert!(
        rows[1].starts_with("4;") && rows[1].contains("la personne : refusée par le hub"),
        "the hub's refusal, at its line, in French:\n{errors}"
    );
    assert!(
        errors.contains("01/01/1850") && !errors.contains("1850-01-01"),
        "dates as the spreadsheet writes them: {errors}"
    );

    // Three dead letters: the person refused, and its two flags not sent, marked as such.
    let dead = c.state.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].code, "InvalidArgument");
    assert_eq!(dead[0].line, Some(4));
    for d in &dead[1..] {
        assert_eq!(d.code, relais_connector_sdk::state::DEPENDENT);
        assert!(d.reason.contains("ligne 4"), "{}", d.reason);
    }
    // Reported once: a second report adds nothing.
    outbox::report_dead_letters(&c.state, Some(c.adapter.as_ref())).await;
    let again = std::fs::read_to_string(
        dir.path()
            .join("traites/registre-2026-12-05.csv.erreurs.csv"),
    )
    .unwrap();
    assert_eq!(again, errors);

    // The CCAS decides the row was a test: discarded with a reason, kept, never replayed.
    assert!(
        c.state
            .discard(dead[0].seq, "fiche de test, supprimée du registre")
            .await
            .unwrap()
    );
    assert!(!c.state.discard(dead[0].seq, "twice").await.unwrap());
    assert_eq!(c.state.dead_letters().await.unwrap().len(), 2);
    let discarded = c.state.discarded().await.unwrap();
    assert_eq!(
        discarded[0].discarded.as_ref().unwrap().1,
        "fiche de test, supprimée du registre"
    );
    assert_eq!(
        c.state.replay(None).await.unwrap(),
        2,
        "the discarded one stays aside"
    );
    assert_eq!(c.state.counts().await.unwrap(), (2, 0));
}

/// A free port on loopback (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const TOKEN: &str = "jeton-de-test-de-trente-deux-caracteres-au-moins";
const SECRET: &str = "secret-de-test-de-trente-deux-caracteres-au-moins";

/// A webhook receiver on loopback: checks each signature, keeps the bodies.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/evenements",
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
                let expected =
                    relais_adapter_http::sign(SECRET, &header("x-relais-timestamp"), &body);
                if header("x-relais-signature") != expected {
                    return StatusCode::UNAUTHORIZED;
                }
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or_default());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/evenements", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sous_prefecture_application_pushes_writes_and_receives_signed_webhooks() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let sp = hub
        .partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    let dir = tempfile::tempdir().unwrap();
    sp.bundle
        .write(&dir.path().join("sp.bundle.pem"), "test")
        .unwrap();
    let (webhook, mut delivered) = webhook_receiver().await;
    let port = free_port();
    std::fs::write(
        dir.path().join("partner.toml"),
        format!(
            "hub = \"{}\"\nidentity = \"sp.bundle.pem\"\nstate_dir = \"etat\"\nagent = \"connecteur-sp\"\npurpose = \"instruction\"\npoll_seconds = 1\nadapter = \"http\"\n[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nwebhook_url = \"{webhook}\"\nwebhook_secret = \"{SECRET}\"\n",
            hub.url()
        ),
    )
    .unwrap();
    let connector = std::sync::Arc::new(
        Connector::open(ConnectorConfig::load(&dir.path().join("partner.toml")).unwrap())
            .await
            .unwrap(),
    );
    let running = connector.clone();
    tokio::spawn(async move { running.run().await });

    // The application pushes the example request of the profile.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../connectors/profiles/sous-prefecture/exemple-requete.json"
    ))
    .unwrap();
    let client = reqwest::Client::new();
    let endpoint = format!("http://127.0.0.1:{port}/v1/writes");
    let mut answer = None;
    for _ in 0..50 {
        match client
            .post(&endpoint)
            .bearer_auth(TOKEN)
            .body(example.clone())
            .send()
            .await
        {
            Ok(r) => {
                answer = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let answer = answer.expect("the endpoint listens");
    assert_eq!(answer.status(), 202);
    let refused = client
        .post(&endpoint)
        .bearer_auth("wrong")
        .body(example)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The writes reach the hub: the case is open and sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let case = loop {
        let cases = sp
            .cases
            .clone()
            .list_cases(pb::ListCasesRequest {
                context: ctx(),
                person: None,
                statuses: vec![],
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .cases;
        if let Some(c) = cases
            .into_iter()
            .find(|c| c.status == pb::CaseStatus::Sent as i32)
        {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pushed writes did not reach the hub"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        case.missing_documents,
        ["photo d'identité", "justificatif de domicile"]
    );
    // The flag came qualified as the application said: observed by its agent.
    let flags = sp.flags_of("SP-2026-0456", false).await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    let q = flags[0].qualification.clone().expect("qualified");
    assert_eq!(q.qualification, pb::Qualification::Observed as i32);
    assert_eq!(q.partner, "sp-saint-gaudens");
    assert!(!flags[0].review_on.is_empty(), "a review day by default");

    // The bus sends a fiche navette to the sous-préfecture; its application receives it,
    // signed, under its own local id.
    bus.link("BUS-1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let bus_case = bus.open_case("BUS-1", "F1342").await;
    bus.grant(
        "BUS-1",
        partner("sp-saint-gaudens"),
        &["referrals"],
        &[pb::Purpose::Orientation],
    )
    .await;
    bus.cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: bus_case.id,
            to_partner: "sp-saint-gaudens".into(),
            reason: "renouvellement CNI".into(),
            requested_action: "rendez-vous".into(),
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let referral = loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), delivered.recv())
            .await
            .expect("a webhook arrives")
            .expect("open");
        if event["item"]["type"] == "referral" {
            break event;
        }
    };
    assert_eq!(referral["item"]["from_partner"], "cc-comminges");
    assert_eq!(referral["local_ids"], serde_json::json!(["SP-2026-0456"]));
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_dead_lettered_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).await.unwrap();
    let config: relais_adapter_http::HttpConfig = toml::from_str(&format!(
        "listen = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\nwebhook_url = \"http://127.0.0.1:{}/nobody\"\nwebhook_secret = \"{SECRET}\"\nmax_attempts = 2\n",
        free_port()
    ))
    .unwrap();
    let adapter = relais_adapter_http::HttpAdapter::new(config, state.clone()).unwrap();
    use relais_connector_sdk::Adapter;
    let flag = pb::Flag {
        id: "f-1".into(),
        code: "ISOLEMENT".into(),
        ..pb::Flag::default()
    };
    adapter
        .apply(
            &relais_connector_sdk::Received::Flag(flag),
            &["SP-1".into()],
        )
        .await
        .unwrap();
    let failures = state.outbound_failures().await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].3, 2, "both attempts made");
    assert!(failures[0].2.contains("unreachable"), "{}", failures[0].2);
}
