//! The command line as a partner's IT person or an administrator uses it: `partner list` and
//! `partner show` as a table with a header, or as JSON for scripts, with RFC 3339 times and
//! each certificate's expiry.

use relais_tests::proto::PartnerKind;
use relais_tests::*;

/// `relais <command> --hub <url> --identity <bundle> <args>`: success, stdout, stderr.
fn relais(
    command: &str,
    hub_url: &str,
    bundle: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let out = std::process::Command::new(hub_program())
        .args([command, "--hub", hub_url, "--identity"])
        .arg(bundle)
        .args(args)
        .output()
        .expect("relais runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn admin(hub: &TestHub, args: &[&str]) -> (bool, String, String) {
    relais(
        "admin",
        &hub.url(),
        &hub.dir.path().join("admin/admin.bundle.pem"),
        args,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_are_listed_as_a_table_or_as_json() {
    let hub = TestHub::start().await;
    hub.partner("mairie-aspet", PartnerKind::Mairie).await;

    let (ok, table, err) = admin(&hub, &["partner", "list"]);
    assert!(ok, "{err}");
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("KIND") && header.contains("NAME"),
        "{table}"
    );
    assert!(lines.any(|l| l.starts_with("mairie-aspet")), "{table}");

    let (ok, json, err) = admin(&hub, &["--json", "partner", "list"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let p = &list[0];
    assert_eq!(p["id"], "mairie-aspet");
    assert_eq!(p["kind"], "mairie");
    let not_after = p["certificates"][0]["not_after"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "RFC 3339, not microseconds: {not_after}"
    );
    assert!(p["certificates"][0]["revoked_at"].is_null());

    let (ok, shown, err) = admin(&hub, &["partner", "show", "mairie-aspet"]);
    assert!(ok, "{err}");
    assert!(
        shown.contains("valid until"),
        "the certificate's expiry: {shown}"
    );
    let (ok, json, err) = admin(&hub, &["partner", "show", "mairie-aspet", "--json"]);
    assert!(ok, "{err}");
    let one: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(one["id"], "mairie-aspet");
}

fn admin_at(hub_url: &str, bundle: &std::path::Path, args: &[&str]) -> (bool, String) {
    let (ok, _, err) = relais("admin", hub_url, bundle, args);
    (ok, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_what_to_do() {
    let hub = TestHub::start().await;
    let bundle = hub.dir.path().join("admin/admin.bundle.pem");
    let addr = hub.url().trim_start_matches("https://").to_string();

    // http:// instead of https://
    let (ok, err) = admin_at(&format!("http://{addr}"), &bundle, &["partner", "list"]);
    assert!(!ok);
    assert!(err.contains(&format!("use https://{addr}")), "{err}");

    // A port where nothing listens.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, err) = admin_at(&format!("https://{free}"), &bundle, &["partner", "list"]);
    assert!(!ok);
    assert!(err.contains("is the hub running there"), "{err}");

    // A bundle made by another hub (another CA).
    let other = TestHub::start().await;
    let foreign = other.dir.path().join("admin/admin.bundle.pem");
    let (ok, err) = admin_at(&hub.url(), &foreign, &["partner", "list"]);
    assert!(!ok);
    assert!(
        err.contains("is not the one that made this identity bundle"),
        "{err}"
    );
    // Each error is printed once, each cause once.
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("invalid peer certificate").count(), 1, "{err}");
}

fn client(hub: &TestHub, bundle: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    relais("client", &hub.url(), bundle, args)
}

/// `--json` on client and admin commands: the hub's answer as JSON, times in RFC 3339, enums
/// by name; lists gathered over their pages; the feed one event per line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_json_with_json() {
    let hub = TestHub::start().await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let bundle = hub.dir.path().join("mairie.bundle.pem");
    mairie.bundle.write(&bundle, "test").unwrap();
    let (ok, out, err) = client(
        &hub,
        &bundle,
        &[
            "--json",
            "link",
            "--local-id",
            "M1",
            "--family-name",
            "Castet",
            "--given-name",
            "Rose",
            "--birth-date",
            "1943-02-17",
            "--birth-place",
            "31021",
        ],
    );
    assert!(ok, "{err}");
    let linked: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(linked["outcome"], "LINK_OUTCOME_LINKED_BY_PIVOT", "{out}");
    let (ok, out, err) = client(
        &hub,
        &bundle,
        &[
            "flag",
            "raise",
            "--local-id",
            "M1",
            "--code",
            "ISOLEMENT",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let raised: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let at = raised["flag"]["raised_at"].as_str().expect("a time");
    assert!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
        "{at}"
    );
    let (ok, out, err) = client(
        &hub,
        &bundle,
        &["--json", "flag", "list", "--local-id", "M1"],
    );
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(list["flags"][0]["code"], "ISOLEMENT");
    let (ok, out, err) = client(&hub, &bundle, &["--json", "feed"]);
    assert!(ok, "{err}");
    let last = out.lines().last().expect("lines");
    let caught: serde_json::Value = serde_json::from_str(last).expect("one JSON object per line");
    assert!(caught["caught_up"].is_object(), "{out}");

    let (ok, out, err) = admin(&hub, &["--json", "audit", "verify"]);
    assert!(ok, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).expect("JSON");
    let person = linked["person_id"].as_str().unwrap();
    let (ok, out, err) = admin(&hub, &["--json", "audit", "report", "--person", person]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        report["generated_at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "RFC 3339: {out}"
    );
    // A command that writes a bundle writes it with --json too, and stdout stays one JSON.
    let issued = hub.dir.path().join("mairie-2.bundle.pem");
    let (ok, out, err) = admin(
        &hub,
        &[
            "--json",
            "partner",
            "certificate",
            "issue",
            "mairie-aspet",
            "--out",
            issued.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let written: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(written["partner_id"], "mairie-aspet");
    assert!(
        std::fs::read_to_string(&issued)
            .unwrap()
            .contains("PRIVATE KEY"),
        "the bundle, key included, is written"
    );
    let (ok, out, err) = admin(&hub, &["audit", "report", "--person", person]);
    assert!(ok, "{err}");
    assert!(
        out.contains("VOS INFORMATIONS PARTAGÉES PAR RELAIS"),
        "{out}"
    );
}

/// What a person gets wrong is shown where it is: a configuration typo at its line and column,
/// an admin command run away from the data directory with the option to use.
#[test]
fn mistakes_are_shown_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("relais.toml"),
        "listen = \"127.0.0.1:7443\"\n[feed]\nbatch_sise = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(hub_program())
        .current_dir(dir.path())
        .args(["serve", "--config", "relais.toml", "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("relais.toml")
            && err.contains("line 3, column 1")
            && err.contains("batch_sise"),
        "{err}"
    );
    let out = std::process::Command::new(hub_program())
        .current_dir(dir.path())
        .env_remove("RELAIS_ADMIN_IDENTITY")
        .args(["admin", "partner", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no identity bundle at relais-data/admin/admin.bundle.pem")
            && err.contains("--identity"),
        "{err}"
    );
}
