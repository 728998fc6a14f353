//! Backup and restore: `relais admin backup` copies a running hub's data directory while
//! partners keep writing; `relais admin restore` puts it in a new directory; a hub started
//! there has every write acknowledged before the backup began, its audit chain verifies, the
//! partners' certificates still work, and pivot matching still finds people (the matching key
//! came along). A damaged backup is refused.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn relais(args: &[&str]) -> std::process::Output {
    Command::new(hub_program())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("relais runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_and_still_matches_people() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let castet = bus
        .link("CASTET-1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;

    // Writers go on while the backup is taken; each records what was acknowledged, and when.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(std::time::Instant, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..2 {
        let (bus, stop, acked) = (bus.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let local_id = format!("W{w}-{i}");
                let linked = bus
                    .persons
                    .clone()
                    .link_person(pb::LinkPersonRequest {
                        context: ctx(),
                        local_id: local_id.clone(),
                        pivot: Some(pivot(&format!("Nom{w}x{i}"), "Jean", "1950-01-01", "31483")),
                        person_id: String::new(),
                        request_id: new_request_id(),
                    })
                    .await;
                if linked.is_ok() {
                    acked
                        .lock()
                        .unwrap()
                        .push((std::time::Instant::now(), local_id));
                }
                i += 1;
            }
        }));
    }
    while acked.lock().unwrap().len() < 30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("2026-12-04");
    let began = std::time::Instant::now();
    let data_dir = hub.dir.path().to_path_buf();
    let out = {
        let (data_dir, copy) = (data_dir.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            relais(&[
                "admin",
                "backup",
                "--data-dir",
                path(&data_dir),
                "--to",
                path(&copy),
            ])
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("database sqlite"), "{said}");
    // More writes after the backup, to be sure it ran under load.
    let after = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < after + 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let before_backup: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(before_backup.len() >= 30);

    // The keys are private in the backup.
    use std::os::unix::fs::PermissionsExt;
    for private in ["matching.key", "tls/ca.key", "relais.db", "backup.json"] {
        let mode = std::fs::metadata(copy.join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is readable by others: {mode:o}");
    }

    // Restored into a new directory, by the CLI.
    let restored = backups.path().join("restored");
    let out = relais(&[
        "admin",
        "restore",
        "--from",
        path(&copy),
        "--data-dir",
        path(&restored),
    ]);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A restore never overwrites.
    let again = relais(&[
        "admin",
        "restore",
        "--from",
        path(&copy),
        "--data-dir",
        path(&restored),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    drop(hub);
    let second = relais_hub::start(config_for(&restored)).await.unwrap();
    let url = second.url();
    // The partner's certificate (signed by the CA restored with the backup) still works.
    let bus = Partner::connect("cc-comminges", &url, bus.bundle.clone()).await;
    for local_id in &before_backup {
        let found = bus
            .persons
            .clone()
            .resolve_person(pb::ResolvePersonRequest {
                context: ctx(),
                by: Some(pb::resolve_person_request::By::LocalId(local_id.clone())),
            })
            .await;
        assert!(
            found.is_ok(),
            "{local_id}, acknowledged before the backup, is missing: {found:?}"
        );
    }
    // The audit chain verifies.
    let admin_bundle =
        relais_hub::pki::Bundle::read(&restored.join("admin/admin.bundle.pem")).unwrap();
    let mut admin = pb::admin_service_client::AdminServiceClient::new(
        relais_hub::cli::connect::channel(&url, &admin_bundle)
            .await
            .unwrap(),
    );
    let verified = admin
        .verify_audit(pb::VerifyAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
    assert!(verified.entries_checked > 30, "{verified:?}");
    // Pivot matching still finds people: the same traits, under a new local id, are Mme Castet.
    let matched = bus
        .link("CASTET-2", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    assert_eq!(matched.person_id, castet.person_id, "{matched:?}");
    second.shutdown().await.unwrap();

    // A damaged backup is refused, naming the file.
    let damaged = backups.path().join("damaged");
    std::fs::create_dir_all(damaged.join("tls")).unwrap();
    for entry in ["backup.json", "matching.key", "relais.db"] {
        std::fs::copy(copy.join(entry), damaged.join(entry)).unwrap();
    }
    for entry in std::fs::read_dir(copy.join("tls")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), damaged.join("tls").join(entry.file_name())).unwrap();
    }
    std::fs::create_dir_all(damaged.join("admin")).unwrap();
    std::fs::copy(
        copy.join("admin/admin.bundle.pem"),
        damaged.join("admin/admin.bundle.pem"),
    )
    .unwrap();
    std::fs::write(damaged.join("matching.key"), "00\n").unwrap();
    let refused = relais(&[
        "admin",
        "restore",
        "--from",
        path(&damaged),
        "--data-dir",
        path(&backups.path().join("never")),
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("matching.key"), "{said}");
    assert!(!backups.path().join("never").exists());
}

/// Replicas share one matching key from a secret (`matching_key`): the hub reads it there,
/// matches people with it, and refuses to start when the file is missing instead of making a
/// new key nobody else has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_matching_key_is_read_from_where_the_configuration_says() {
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("matching.key");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.matching_key = key.display().to_string();
    let refused = relais_hub::start(config.clone())
        .await
        .err()
        .expect("no hub without its shared key");
    assert!(
        format!("{refused:#}").contains("matching key"),
        "{refused:#}"
    );
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let hub = TestHub::start_with(config, dir, None).await;
    assert!(
        !hub.dir.path().join("matching.key").exists(),
        "no second key in the data directory"
    );
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let first = bus
        .link("A-1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let again = bus
        .link("A-2", pivot("CASTET", "Rose", "1943-02-17", "31021"))
        .await;
    assert_eq!(first.person_id, again.person_id);
}
