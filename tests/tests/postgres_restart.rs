//! PostgreSQL restarts under the hub: meanwhile the hub answers UNAVAILABLE within a second and
//! its health says NOT_SERVING, then it recovers on its own (SERVING again) — no hub restart —
//! with every acknowledged write kept and the feed following again.
//! It stops and starts the machine's PostgreSQL service, so it is alone in its test binary
//! (cargo runs test binaries one after the other).

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn cluster(action: &str) -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    let Some(version) = versions.flatten().next().map(|e| e.file_name()) else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(&version)
        .arg("main")
        .arg(action)
        .status()
        .is_ok_and(|s| s.success())
}

async fn raise(p: &Partner, local_id: &str, code: &str) -> Result<pb::Flag, tonic::Status> {
    p.flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local(local_id)),
            code: code.into(),
            note: String::new(),
            valid_until: String::new(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().flag.expect("flag"))
}

use tonic_health::pb::health_check_response::ServingStatus as Serving;

async fn overall(
    health: &tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
) -> Serving {
    let status = health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    Serving::try_from(status).unwrap_or(Serving::Unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_rides_out_a_postgresql_restart() {
    let Some(backend) = Backend::postgres("the_hub_rides_out_a_postgresql_restart") else {
        return;
    };
    if Command::new("pg_ctlcluster")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("NOT RUN: pg_ctlcluster is not available to restart PostgreSQL");
        return;
    }
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let before = raise(&bus, "B1", "ELOIGNEMENT")
        .await
        .expect("a write before");
    let channel = relais_hub::cli::connect::channel(&hub.url(), &bus.bundle)
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert_eq!(overall(&health).await, Serving::Serving);
    assert!(cluster("stop"), "PostgreSQL stops");
    // Every call fails fast (within a second) while it is down, instead of waiting on the pool.
    let mut slowest = Duration::ZERO;
    let mut refused = None;
    for _ in 0..5 {
        let asked = Instant::now();
        let outcome = raise(&bus, "B1", "SANS_INTERNET").await;
        slowest = slowest.max(asked.elapsed());
        refused = Some(outcome);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The health check says NOT_SERVING: a load balancer takes this replica out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = overall(&health).await;
    while seen != Serving::NotServing && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = overall(&health).await;
    }
    let started = cluster("start");
    assert!(started, "PostgreSQL starts again");
    let status = refused
        .expect("asked")
        .expect_err("no write while PostgreSQL is down");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a call took {slowest:?} to fail while PostgreSQL was down"
    );
    assert_eq!(seen, Serving::NotServing, "health while PostgreSQL is down");
    // SERVING again once it is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while overall(&health).await != Serving::Serving {
        assert!(Instant::now() < deadline, "health never said SERVING again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The hub recovers by itself: the same request succeeds once PostgreSQL is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        match raise(&bus, "B1", "SANS_INTERNET").await {
            Ok(flag) => break flag,
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(s) => panic!("the hub did not recover: {s:?}"),
        }
    };
    let flags = bus.flags_of("B1", true).await;
    let ids: Vec<_> = flags.iter().map(|f| f.id.as_str()).collect();
    assert!(
        ids.contains(&before.id.as_str()),
        "the write acknowledged before is kept"
    );
    assert!(ids.contains(&after.id.as_str()));

    // The feed serves again, both events in order.
    let events = bus.feed_until_caught_up(0).await;
    assert_eq!(events.len(), 2);
}
