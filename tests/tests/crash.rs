//! A crash loses no acknowledged write: the hub process is killed (SIGKILL) while writes are in
//! flight, restarted on the same data directory, and every write it acknowledged is there.

use relais_tests::proto::PartnerKind;
use relais_tests::*;

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
    let mut child = spawn_hub_process(dir.path(), &database_url, "", &[]);
    let bus = child
        .partner(
            dir.path(),
            "cc-comminges",
            PartnerKind::CommunauteDeCommunes,
        )
        .await;

    // Four writers link persons and raise flags as fast as they can; each records what the hub
    // acknowledged. Kill once a good number were acknowledged, with more in flight.
    let writers = FlagWriters::start(&bus, 4);
    writers.wait_for(100).await;
    kill(&mut child);
    let acked = writers.acknowledged().await;

    let mut child = spawn_hub_process(dir.path(), &database_url, "", &[]);
    let bus = Partner::connect("cc-comminges", &child.url, bus.bundle.clone()).await;
    let missing = lost_flags(&bus, &acked).await;
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
