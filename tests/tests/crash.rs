//! A crash loses no acknowledged write: the hub process is killed (SIGKILL) while writes are in
//! flight, restarted on the same data directory, and every write it acknowledged is there.

use relais_hub::pki::Bundle;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starts `relais serve` on a free port and returns the process and its URL.
fn spawn_hub(data_dir: &Path, database_url: &str) -> (HubProcess, String) {
    let hub = spawn_hub_process(data_dir, database_url, "", &[]);
    let url = hub.url.clone();
    (hub, url)
}

fn kill(hub: &mut HubProcess) {
    hub.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = hub.child.wait();
}

async fn every_acknowledged_write_survives_a_sigkill(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres(server) => Some(TestDatabase::create(&server).await),
    };
    // Empty: the embedded SQLite file in the data directory.
    let database_url = database.as_ref().map_or(String::new(), |d| d.url.clone());
    let (mut child, url) = spawn_hub(dir.path(), &database_url);
    let admin_bundle = Bundle::read(&dir.path().join("admin/admin.bundle.pem")).unwrap();
    let mut admin = pb::admin_service_client::AdminServiceClient::new(
        relais_hub::cli::connect::channel(&url, &admin_bundle)
            .await
            .unwrap(),
    );
    let (key, csr_pem) = relais_hub::pki::new_key_and_csr("cc-comminges").unwrap();
    let added = admin
        .add_partner(pb::AddPartnerRequest {
            id: "cc-comminges".into(),
            kind: PartnerKind::CommunauteDeCommunes as i32,
            name: "CC".into(),
            territory: vec!["31483".into()],
            cog_vintage: 0,
            csr_pem,
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner();
    let bundle = Bundle {
        cert_pem: added.certificate_pem,
        key_pem: key.serialize_pem(),
        ca_pem: added.ca_certificate_pem,
    };
    let bus = Partner::connect("cc-comminges", &url, bundle.clone()).await;

    // Four writers link persons and raise flags as fast as they can; each records what the hub
    // acknowledged.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let bus = bus.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let local_id = format!("W{w}-{i}");
                let link = bus
                    .persons
                    .clone()
                    .link_person(pb::LinkPersonRequest {
                        context: ctx(),
                        local_id: local_id.clone(),
                        pivot: None,
                        person_id: String::new(),
                        request_id: new_request_id(),
                    })
                    .await;
                if link.is_err() {
                    return;
                }
                let raised = bus
                    .flags
                    .clone()
                    .raise_flag(pb::RaiseFlagRequest {
                        context: ctx(),
                        person: Some(local(&local_id)),
                        code: "ISOLEMENT".into(),
                        note: String::new(),
                        valid_until: String::new(),
                        request_id: new_request_id(),
                        ..Default::default()
                    })
                    .await;
                match raised {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push((local_id, r.into_inner().flag.unwrap().id)),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once a good number of writes were acknowledged, with more in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes are too slow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill(&mut child);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let (mut child, url) = spawn_hub(dir.path(), &database_url);
    let bus = Partner::connect("cc-comminges", &url, bundle).await;
    let mut missing = Vec::new();
    for (local_id, flag_id) in &acked {
        let flags = bus
            .flags
            .clone()
            .list_flags(pb::ListFlagsRequest {
                context: ctx(),
                person: Some(local(local_id)),
                include_retracted: true,
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().flags)
            .unwrap_or_default();
        if !flags.iter().any(|f| &f.id == flag_id) {
            missing.push(local_id.clone());
        }
    }
    let feed = bus.feed_until_caught_up(0).await;
    kill(&mut child);
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        acked.len()
    );
    assert!(
        feed.len() >= acked.len(),
        "every acknowledged flag is on the feed"
    );
}

on_both_backends!(every_acknowledged_write_survives_a_sigkill);
