//! The administrators' console in a real headless Chromium driven over WebDriver
//! (`chromedriver`), against a real hub over HTTPS: log-in with a password and a TOTP code, a
//! partner added and its bundle used from a gRPC client, a withdrawal whose redaction reaches a
//! subscribed partner, the rules editor (line and column of an error, dry run, activation,
//! rollback, differences), the audit verified before and after tampering, CSRF and roles
//! refused by the server, the lockout, the access report printed on A4 — and axe-core run on
//! every page (no serious or critical violation). Each page's screenshot is written to
//! `target/console-screenshots/` (and to `tests/screenshots/` with
//! `RELAIS_UPDATE_SCREENSHOTS=1`, for the README).

use relais_hub::console::account::totp_code;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::webdriver::{Browser, Driver, axe_script, chromedriver};
use relais_tests::*;
use serde_json::json;
use std::path::PathBuf;

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    axe: String,
}

/// Chromium, chromedriver and axe-core, or why the test cannot run here.
fn tools() -> Result<Tools, String> {
    let chromium = chromium().ok_or("no Chromium (Debian package `chromium`)")?;
    let chromedriver =
        chromedriver().ok_or("no chromedriver (Debian package `chromium-driver`)")?;
    let axe = axe_script()
        .ok_or("no axe-core (npm install --prefix .ci, or RELAIS_TEST_AXE=…/axe.min.js)")?;
    Ok(Tools {
        chromium,
        chromedriver,
        axe,
    })
}

const PASSWORD: &str = "montagne-et-vallee-31";

async fn account(hub: &TestHub, name: &str, full_name: &str, role: pb::ConsoleRole) -> String {
    hub.admin
        .clone()
        .add_console_account(pb::AddConsoleAccountRequest {
            name: name.into(),
            full_name: full_name.into(),
            role: role as i32,
            password: PASSWORD.into(),
            request_id: new_request_id(),
        })
        .await
        .expect("account made")
        .into_inner()
        .totp_secret
}

/// The code an authenticator shows `ahead` steps of 30 s from now.
fn code(secret: &str, ahead: i64) -> String {
    let now = relais_hub::domain::Timestamp::from_micros(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
            + ahead * 30_000_000,
    );
    totp_code(secret, now).expect("a code")
}

struct Check<'a> {
    browser: &'a Browser,
    axe: &'a str,
}

impl Check<'_> {
    /// axe-core finds no serious or critical violation, and the page's screenshot is kept.
    async fn page(&self, name: &str) {
        let violations = self.browser.serious_violations(self.axe).await;
        assert!(
            violations.is_empty(),
            "page {name} ({}): {violations:#?}",
            self.browser.url().await
        );
        let png = self.browser.screenshot().await;
        assert!(png.len() > 2_000, "a screenshot of {name}");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        if std::env::var_os("RELAIS_UPDATE_SCREENSHOTS").is_some() {
            let kept = root.join("screenshots");
            std::fs::create_dir_all(&kept).unwrap();
            std::fs::write(kept.join(format!("console-{name}.png")), &png).unwrap();
        }
    }
}

async fn log_in(b: &Browser, base: &str, name: &str, code: &str) {
    b.goto(&format!("{base}/connexion")).await;
    b.fill("#name", name).await;
    b.fill("#password", PASSWORD).await;
    b.fill("#code", code).await;
    b.click("form[action='/connexion'] button").await;
}

/// A fetch from the page (its cookies, its origin): the status and the body.
async fn fetch(b: &Browser, method: &str, path: &str, body: &str) -> (u64, String) {
    let v = b
        .run_async(
            "const [method, path, body, done] = arguments;
             const init = {method, credentials: 'same-origin', redirect: 'manual'};
             if (method === 'POST') { init.body = body;
               init.headers = {'Content-Type': 'application/x-www-form-urlencoded'}; }
             fetch(path, init).then(r => r.text().then(t => done([r.status, t])))
               .catch(e => done([0, String(e)]));",
            json!([method, path, body]),
        )
        .await;
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or("").to_string(),
    )
}

async fn csrf_of(b: &Browser) -> String {
    b.run(
        "return document.querySelector('input[name=csrf]').value;",
        json!([]),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_work_in_the_console_in_chromium() {
    let tools = match tools() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("console browser test not run: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.console.listen = "127.0.0.1:0".into();
    let hub = TestHub::start_with(config, dir, None).await;
    let base = format!("https://{}", hub.hub.console_addr.expect("console address"));

    // The territory: the bus of the communauté records Rose's consent for the associations;
    // the association follows the feed.
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let asso = hub
        .partner("asso-mediation", PartnerKind::Association)
        .await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    let person = bus.link("B1", rose.clone()).await.person_id;
    asso.link("A1", rose).await;
    bus.grant(
        "B1",
        kind(PartnerKind::Association),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    // A second consent, which stays: the rules' dry run has access to take away.
    bus.grant(
        "B1",
        kind(PartnerKind::Association),
        &["mobility"],
        &[pb::Purpose::Orientation],
    )
    .await;
    // A mandate, printed again from the console.
    bus.consent
        .clone()
        .grant_mandate(pb::GrantMandateRequest {
            context: ctx(),
            person: Some(local("B1")),
            mandatary: Some(pb::AgentRef {
                partner: String::new(),
                agent: "agent-bus-2".into(),
            }),
            themes: vec!["papiers".into()],
            duration: pb::MandateDuration::OneMonth as i32,
            method: pb::CollectionMethod::SignedPaper as i32,
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let mut asso_feed = asso.subscribe(0).await.unwrap();
    bus.raise("B1", "SANS_INTERNET").await;
    assert_eq!(
        Partner::next_event(&mut asso_feed).await.kind,
        pb::ChangeKind::FlagRaised as i32
    );

    // Accounts made from the command line's API (the first one cannot come from the console).
    let admin_secret = account(
        &hub,
        "a.martin",
        "Anne Martin",
        pb::ConsoleRole::Administrateur,
    )
    .await;
    let dpo_secret = account(&hub, "d.pons", "Denis Pons", pb::ConsoleRole::Dpo).await;
    let op_secret = account(&hub, "o.ribes", "Odile Ribes", pb::ConsoleRole::Operateur).await;

    let driver = Driver::start(&tools.chromedriver).await;
    let b = driver.session(&tools.chromium).await;
    let check = Check {
        browser: &b,
        axe: &tools.axe,
    };

    // --- Log-in: password and TOTP code.
    b.goto(&format!("{base}/")).await;
    assert!(
        b.url().await.ends_with("/connexion"),
        "no session: the log-in page"
    );
    check.page("connexion").await;
    log_in(&b, &base, "a.martin", &code(&admin_secret, 0)).await;
    let text = b.wait_for_text("Tableau de bord").await;
    assert!(text.contains("Anne Martin"), "{text}");
    assert!(
        text.contains("Partenaires") && text.contains("Journal"),
        "{text}"
    );
    check.page("tableau-de-bord").await;

    // --- Partenaires: add one, download its bundle once, use it from a gRPC client.
    b.goto(&format!("{base}/partenaires")).await;
    check.page("partenaires").await;
    b.fill("#p-name", "Mairie de Saint-Béat").await;
    b.fill("#p-id", "mairie-saint-beat").await;
    b.run(
        "document.getElementById('p-kind').value = 'mairie';",
        json!([]),
    )
    .await;
    b.fill("#p-territory", "31471").await;
    b.click("form[action='/partenaires'] button").await;
    b.wait_for_text("ne se télécharge qu'une fois").await;
    check.page("paquet").await;
    let href = b
        .run(
            "return document.querySelector('a[download]').getAttribute('href');",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = fetch(&b, "HEAD", &href, "").await;
    assert_eq!(
        status, 405,
        "a HEAD (a link checker) is refused: it does not use up the download"
    );
    let (status, pem) = fetch(&b, "GET", &href, "").await;
    assert_eq!(status, 200, "{pem}");
    assert!(pem.contains("PRIVATE KEY") && pem.contains("CERTIFICATE"));
    let (again, _) = fetch(&b, "GET", &href, "").await;
    assert_eq!(again, 410, "a bundle downloads once");
    let bundle = relais_hub::pki::Bundle::parse(&pem).expect("a bundle");
    let channel = relais_hub::cli::connect::channel(&hub.url(), &bundle)
        .await
        .expect("the bundle connects");
    let mut sync = pb::sync_service_client::SyncServiceClient::new(channel.clone());
    sync.get_position(pb::GetPositionRequest {})
        .await
        .expect("the new partner's connector is served");

    // Suspend it with a reason: its calls are refused; resume it.
    b.goto(&format!("{base}/partenaires/mairie-saint-beat"))
        .await;
    check.page("partenaire").await;
    b.fill("#suspend-reason", "convention en cours de signature")
        .await;
    b.click("form[action$='/suspendre'] button").await;
    b.wait_for_text("Partenaire suspendu").await;
    let refused = sync
        .get_position(pb::GetPositionRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    b.click("form[action$='/reprendre'] button").await;
    b.wait_for_text("peut de nouveau échanger").await;
    sync.get_position(pb::GetPositionRequest {})
        .await
        .expect("resumed");

    // An opérateur adds a partner too, but its certificate is refused until an administrateur
    // approves it: no single account can take a partner's identity unseen.
    let o = driver.session(&tools.chromium).await;
    log_in(&o, &base, "o.ribes", &code(&op_secret, 0)).await;
    o.wait_for_text("Tableau de bord").await;
    o.goto(&format!("{base}/partenaires")).await;
    o.fill("#p-name", "Association du bus").await;
    o.fill("#p-id", "asso-bus").await;
    o.run(
        "document.getElementById('p-kind').value = 'association';",
        json!([]),
    )
    .await;
    o.fill("#p-territory", "31471").await;
    o.click("form[action='/partenaires'] button").await;
    o.wait_for_text("attend l'approbation d'un administrateur")
        .await;
    Check {
        browser: &o,
        axe: &tools.axe,
    }
    .page("paquet-operateur")
    .await;
    let href = o
        .run(
            "return document.querySelector('a[download]').getAttribute('href');",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    let (_, op_pem) = fetch(&o, "GET", &href, "").await;
    let op_bundle = relais_hub::pki::Bundle::parse(&op_pem).expect("a bundle");
    let mut op_sync = pb::sync_service_client::SyncServiceClient::new(
        relais_hub::cli::connect::channel(&hub.url(), &op_bundle)
            .await
            .expect("the bundle connects"),
    );
    let waiting = op_sync
        .get_position(pb::GetPositionRequest {})
        .await
        .unwrap_err();
    assert_eq!(waiting.code(), tonic::Code::Unauthenticated, "{waiting:?}");
    assert!(waiting.message().contains("approval"), "{waiting:?}");
    // The opérateur cannot approve it; the administrateur does.
    let csrf = csrf_of(&o).await;
    let fingerprint = op_bundle.fingerprint().unwrap();
    let (status, _) = fetch(
        &o,
        "POST",
        "/partenaires/asso-bus/certificats/approuver",
        &format!("csrf={csrf}&fingerprint={fingerprint}"),
    )
    .await;
    assert_eq!(status, 403, "an opérateur approves nothing");
    o.close().await;
    b.goto(&format!("{base}/partenaires/asso-bus")).await;
    b.click("form[action$='/approuver'] button").await;
    b.wait_for_text("Certificat approuvé").await;
    op_sync
        .get_position(pb::GetPositionRequest {})
        .await
        .expect("approved: accepted");

    // A form posted without its CSRF token (or with another) is refused, and changes nothing.
    let (status, body) = fetch(
        &b,
        "POST",
        "/partenaires/mairie-saint-beat/suspendre",
        "reason=sans+jeton",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _) = fetch(
        &b,
        "POST",
        "/partenaires/mairie-saint-beat/suspendre",
        "reason=faux+jeton&csrf=0000",
    )
    .await;
    assert_eq!(status, 403);
    // With the right token but not as a form (a text/plain body a page elsewhere could post).
    let token = csrf_of(&b).await;
    let v = b
        .run_async(
            "const [body, done] = arguments;
             fetch('/partenaires/mairie-saint-beat/suspendre', {method: 'POST', body,
                   headers: {'Content-Type': 'text/plain'}, credentials: 'same-origin'})
               .then(r => done(r.status)).catch(e => done(0));",
            json!([format!("reason=texte&csrf={token}")]),
        )
        .await;
    assert_eq!(v, 400, "a body that is not a form is refused");
    sync.get_position(pb::GetPositionRequest {})
        .await
        .expect("still active: the forged forms changed nothing");

    // --- Une personne: found by a partner's local id; a consent withdrawn on her request.
    b.goto(&format!("{base}/personnes")).await;
    check.page("recherche-personne").await;
    b.run(
        "document.getElementById('f-partner').value = 'cc-comminges';",
        json!([]),
    )
    .await;
    b.fill("#f-local", "B1").await;
    b.click("form[aria-labelledby='t-local'] button").await;
    b.wait_for_text("Consentements").await;
    assert!(b.url().await.ends_with(&format!("/personnes/{person}")));
    check.page("personne").await;
    // The first consent (digital) is withdrawn.
    let digital = b
        .run(
            "return [...document.querySelectorAll('section.carte')]
                .find(s => s.innerText.includes('numérique') || s.innerText.includes('Numérique'))
                .querySelector('form[action$=\"/retirer\"]').getAttribute('action');",
            json!([]),
        )
        .await
        .as_str()
        .expect("the digital consent's withdrawal form")
        .to_string();
    let form = format!("form[action='{digital}']");
    b.run(
        &format!("document.querySelector(\"{form} select[name=channel]\").value = 'courrier';"),
        json!([]),
    )
    .await;
    b.fill(
        &format!("{form} input[name=note]"),
        "lettre du 2 décembre, reçue par l'accueil",
    )
    .await;
    b.click(&format!("{form} button")).await;
    let text = b.wait_for_text("Consentement retiré").await;
    assert!(text.contains("asso-mediation"), "{text}");
    let redaction = Partner::next_event(&mut asso_feed).await;
    assert_eq!(
        redaction.kind,
        pb::ChangeKind::Redacted as i32,
        "the withdrawal reaches the subscribed partner at once"
    );
    assert!(
        text.contains("par a.martin") || text.contains("a.martin"),
        "withdrawn under the account's name: {text}"
    );

    // The receipt and the access report print on A4.
    let consent_link = b
        .run(
            "return document.querySelector('a[href$=\"/recu\"]').getAttribute('href');",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&format!("{base}{consent_link}")).await;
    b.wait_for_text("Reçu de votre accord de partage").await;
    check.page("recu").await;
    b.goto(&format!("{base}/personnes/{person}")).await;
    b.wait_for_text("Mandats").await;
    let mandate_link = b
        .run(
            "return document.querySelector('a[href$=\"/document\"]').getAttribute('href');",
            json!([]),
        )
        .await
        .as_str()
        .expect("the mandate's print link")
        .to_string();
    b.goto(&format!("{base}{mandate_link}")).await;
    let mandate = b.wait_for_text("Mandat d'accompagnement").await;
    assert!(mandate.contains("Papiers - Citoyenneté"), "{mandate}");
    check.page("mandat").await;
    b.goto(&format!("{base}/personnes/{person}/rapport")).await;
    let report = b.wait_for_text("Vos informations partagées").await;
    // The short reference the person quotes finds her.
    let hex = person.replace('-', "").to_uppercase();
    let reference = format!("{}-{}-{}", &hex[..4], &hex[4..8], &hex[8..12]);
    assert!(report.contains(&reference), "the report gives {reference}");
    assert!(!report.contains(&person), "and not the hub id");
    check.page("rapport-acces").await;
    let pdf = b.print_a4().await;
    b.goto(&format!("{base}/personnes")).await;
    b.fill("#f-id", &reference.to_lowercase()).await;
    b.click("form[aria-labelledby='t-hub'] button").await;
    b.wait_for_text("Consentements").await;
    assert!(b.url().await.ends_with(&format!("/personnes/{person}")));
    b.goto(&format!("{base}/personnes?id=0000-0000-0000")).await;
    b.wait_for_text("Aucune personne n'a cette référence").await;
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    assert!(pdf.len() > 5_000, "not empty: {} bytes", pdf.len());
    let pdf_text = String::from_utf8_lossy(&pdf);
    assert!(
        pdf_text.contains("/MediaBox [0 0 595") || pdf_text.contains("/MediaBox[0 0 595"),
        "printed on A4 (595 × 842 points)"
    );

    // --- Règles d'accès: the rules in force, then the editor.
    b.goto(&format!("{base}/regles")).await;
    let text = b.text().await;
    assert!(
        text.contains("@id") || text.contains("Règle (@id)"),
        "{text}"
    );
    check.page("regles").await;
    b.goto(&format!("{base}/regles/editer")).await;
    b.wait_for_text("Texte des règles").await;
    let current = b
        .run("return document.getElementById('text').value;", json!([]))
        .await
        .as_str()
        .unwrap()
        .to_string();
    // An error shows its line and column while typing.
    b.fill(
        "#text",
        "@id(\"x\")\npermit (principal, action, resource)\nwhen { nonsense.. };",
    )
    .await;
    let text = b.wait_for_text("ligne ").await;
    assert!(text.contains("colonne"), "{text}");
    assert!(text.contains("n'est pas valide"), "{text}");
    b.run(
        "document.getElementById('text').rows = 6; document.getElementById('text').scrollIntoView();",
        json!([]),
    )
    .await;
    check.page("regles-editeur-erreur").await;
    // A first version: the rules as they are, activated under the account's name.
    b.run(
        "document.getElementById('text').value = arguments[0];",
        json!([current]),
    )
    .await;
    b.fill("#comment", "version de départ").await;
    b.click("button[formaction='/regles/activer']").await;
    b.wait_for_text("en vigueur dès maintenant").await;
    let start = hub
        .admin
        .clone()
        .list_rules_versions(pb::ListRulesVersionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .active;
    let trial = start + 1;
    // The next: a rule that closes everything — the dry run shows who loses access.
    b.goto(&format!("{base}/regles/editer")).await;
    let wider = format!(
        "{current}\n@id(\"essai-tout-fermer\")\n@reason(\"essai de la console\")\nforbid (principal, action, resource);\n"
    );
    b.run(
        "document.getElementById('text').value = arguments[0];",
        json!([wider]),
    )
    .await;
    b.click("form#editeur button[type=submit]:not([formaction])")
        .await;
    let text = b.wait_for_text("Essai sur les données actuelles").await;
    assert!(text.contains("personnes liées"), "{text}");
    assert!(text.contains("Perd l'accès"), "who loses access: {text}");
    assert!(!text.contains(&person), "counts only, no person: {text}");
    b.run(
        "document.getElementById('t-essai').scrollIntoView();",
        json!([]),
    )
    .await;
    check.page("regles-essai").await;
    b.fill("#comment", "essai de fermeture").await;
    b.click("button[formaction='/regles/activer']").await;
    b.wait_for_text(&format!("Version {trial} en vigueur"))
        .await;
    // Its differences with the version before.
    b.goto(&format!("{base}/regles/versions/{trial}")).await;
    let text = b.wait_for_text("essai-tout-fermer").await;
    assert!(text.contains("ajoutée"), "{text}");
    check.page("regles-differences").await;
    // Rollback to the first.
    b.goto(&format!("{base}/regles")).await;
    b.run(
        "document.getElementById('rb-version').value = arguments[0];",
        json!([start.to_string()]),
    )
    .await;
    b.fill("#rb-comment", "retour après l'essai").await;
    b.click("form[action='/regles/retour'] button").await;
    b.wait_for_text(&format!(
        "version {start} est de nouveau en vigueur, comme version {}",
        trial + 1
    ))
    .await;
    let versions = hub
        .admin
        .clone()
        .list_rules_versions(pb::ListRulesVersionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.active, trial + 1);
    let last = versions.versions.last().unwrap();
    assert_eq!(
        (last.restores, last.author.as_str()),
        (start, "Anne Martin")
    );
    // Explain a decision for a partner, a person, a category, a purpose.
    b.run(
        "document.getElementById('x-partner').value = 'asso-mediation';",
        json!([]),
    )
    .await;
    b.fill("#x-person", &person).await;
    b.run(
        "document.getElementById('x-category').value = 'digital';",
        json!([]),
    )
    .await;
    b.click("form[action='/regles/expliquer'] button").await;
    let text = b.wait_for_text("Réponse").await;
    assert!(
        text.contains("Refusé"),
        "the withdrawn consent no longer covers it: {text}"
    );

    // --- Journal: verify, search, export; then tamper with an entry and verify again.
    b.goto(&format!("{base}/journal")).await;
    b.click("form[action='/journal/verifier'] button").await;
    let text = b.wait_for_text("Chaîne intacte").await;
    assert!(text.contains("empreinte"), "{text}");
    check.page("journal").await;
    b.goto(&format!("{base}/journal?agent=a.martin&action=console"))
        .await;
    let text = b.wait_for_text("entrée(s)").await;
    assert!(text.contains("console:login"), "{text}");
    let (status, csv) = fetch(&b, "GET", "/journal/export.csv?agent=a.martin", "").await;
    assert_eq!(status, 200);
    assert!(
        csv.trim_start_matches('\u{feff}')
            .starts_with("numero,date,partenaire,agent,action"),
        "{csv}"
    );
    assert!(
        csv.contains("admin:SetRules") && csv.contains("admin:WithdrawPersonConsent"),
        "{csv}"
    );

    let db = hub.hub.data_dir.join("relais.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (seq,): (i64,) =
        sqlx::query_as("SELECT MIN(seq) FROM audit WHERE doc LIKE '%essai de fermeture%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE audit SET doc = replace(doc, 'essai de fermeture', 'rien à signaler') WHERE seq = $1")
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
    // Every act under a partner's name leads to the certificate it came with.
    let (raised,): (String,) = sqlx::query_as(
        "SELECT doc FROM audit WHERE doc LIKE '%write:RaiseFlag%' ORDER BY seq LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let raised: serde_json::Value = serde_json::from_str(&raised).unwrap();
    assert_eq!(
        raised["certificate"].as_str().map(str::len),
        Some(64),
        "the certificate's fingerprint: {raised}"
    );
    pool.close().await;
    // The journal finds a certificate's acts by its fingerprint.
    let fingerprint = raised["certificate"].as_str().unwrap();
    b.goto(&format!("{base}/journal?certificat={}", &fingerprint[..12]))
        .await;
    let text = b.wait_for_text("entrée(s)").await;
    assert!(text.contains("write:RaiseFlag"), "{text}");
    b.goto(&format!("{base}/journal")).await;
    b.click("form[action='/journal/verifier'] button").await;
    let text = b.wait_for_text("Chaîne rompue").await;
    assert!(
        text.contains(&format!("n° {seq}")),
        "the broken entry is named: {text}"
    );
    check.page("journal-rompu").await;

    // Sign out: the session ends.
    b.click("form[action='/deconnexion'] button").await;
    b.wait_for_text("Connectez-vous").await;
    b.goto(&format!("{base}/regles")).await;
    assert!(b.url().await.ends_with("/connexion"));
    b.close().await;

    // --- The DPO: consents and audit, but the server refuses the rules editor.
    let d = driver.session(&tools.chromium).await;
    let check = Check {
        browser: &d,
        axe: &tools.axe,
    };
    log_in(&d, &base, "d.pons", &code(&dpo_secret, 0)).await;
    let text = d.wait_for_text("Tableau de bord").await;
    assert!(
        !text.contains("Règles d'accès") || !text.contains("Modifier"),
        "{text}"
    );
    check.page("tableau-de-bord-dpo").await;
    d.goto(&format!("{base}/regles/editer")).await;
    let text = d.wait_for_text("Accès refusé").await;
    assert!(
        text.contains("délégué à la protection des données"),
        "{text}"
    );
    let csrf = csrf_of(&d).await;
    let (status, _) = fetch(
        &d,
        "POST",
        "/regles/activer",
        &format!("csrf={csrf}&text=permit%20(principal%2C%20action%2C%20resource)%3B&comment=x"),
    )
    .await;
    assert_eq!(status, 403, "the server refuses, not only the menu");
    let (status, _) = fetch(&d, "GET", "/partenaires", "").await;
    assert_eq!(status, 200, "the DPO reads the partners");
    let (status, _) = fetch(
        &d,
        "POST",
        "/partenaires",
        &format!("csrf={csrf}&name=x&kind=mairie&territory=31471"),
    )
    .await;
    assert_eq!(status, 403, "the DPO adds no partner");
    d.goto(&format!("{base}/personnes/{person}")).await;
    d.wait_for_text("Consentements").await;
    // A session left idle ends: a day later the browser is sent back to the log-in page.
    hub.clock.advance_days(1);
    d.goto(&format!("{base}/personnes/{person}")).await;
    assert!(
        d.url().await.ends_with("/connexion"),
        "the idle session ended"
    );
    d.close().await;

    // --- Lockout: five wrong passwords lock the account, even for the right one afterwards;
    // every refusal reads the same (an unknown name, a locked account), telling nothing.
    let l = driver.session(&tools.chromium).await;
    let attempt = |name: &'static str, password: &'static str| {
        let l = &l;
        let base = base.clone();
        async move {
            l.goto(&format!("{base}/connexion")).await;
            l.fill("#name", name).await;
            l.fill("#password", password).await;
            l.fill("#code", "000000").await;
            l.click("form[action='/connexion'] button").await;
            // The answer to this attempt (not the form it was typed in).
            l.wait_for_text("Connexion refusée").await
        }
    };
    let unknown = attempt("personne.inconnue", "pas-le-bon-mot-de-passe").await;
    for _ in 0..5 {
        attempt("d.pons", "pas-le-bon-mot-de-passe").await;
    }
    let locked = |accounts: &[pb::ConsoleAccount]| {
        accounts
            .iter()
            .find(|a| a.name == "d.pons")
            .is_some_and(|a| a.locked_until.is_some())
    };
    let accounts = |hub: &TestHub| {
        let mut admin = hub.admin.clone();
        async move {
            admin
                .list_console_accounts(pb::ListConsoleAccountsRequest {})
                .await
                .unwrap()
                .into_inner()
                .accounts
        }
    };
    assert!(locked(&accounts(&hub).await), "locked after five failures");
    let after_lock = attempt("d.pons", PASSWORD).await;
    assert_eq!(
        unknown.replace("personne.inconnue", ""),
        after_lock.replace("d.pons", ""),
        "a locked account and an unknown name get the same answer"
    );
    l.close().await;
    // The lock ends, and with it the count: one more failure a day later does not lock again.
    hub.clock.advance_days(1);
    let l = driver.session(&tools.chromium).await;
    l.goto(&format!("{base}/connexion")).await;
    l.fill("#name", "d.pons").await;
    l.fill("#password", "encore-une-erreur").await;
    l.fill("#code", "000000").await;
    l.click("form[action='/connexion'] button").await;
    l.wait_for_text("Connexion refusée").await;
    assert!(
        !locked(&accounts(&hub).await),
        "a failure after the lock starts a new count"
    );
    l.close().await;
    hub.clock.advance_days(-2);
    // A console account cannot take an administrator identity's name: the audit tells them apart.
    let taken = hub
        .admin
        .clone()
        .add_console_account(pb::AddConsoleAccountRequest {
            name: "admin".into(),
            full_name: "Quelqu'un".into(),
            role: pb::ConsoleRole::Administrateur as i32,
            password: PASSWORD.into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), tonic::Code::InvalidArgument, "{taken:?}");
    // Enabling the account again clears the lockout.
    hub.admin
        .clone()
        .set_console_account_disabled(pb::SetConsoleAccountDisabledRequest {
            name: "d.pons".into(),
            disabled: false,
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let accounts = hub
        .admin
        .clone()
        .list_console_accounts(pb::ListConsoleAccountsRequest {})
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert!(accounts.iter().all(|a| a.locked_until.is_none()));
}
