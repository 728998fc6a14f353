//! Health under load (review of issue 11): the health check pings the database through the
//! read pool the calls use (SQLite: 4 connections) with a 750 ms timeout, and one missed ping
//! makes the hub NOT_SERVING and refuse every call with UNAVAILABLE. One partner keeping the
//! read pool busy (here: many feed subscriptions, each reading on every write) must not make
//! the whole hub say it is down while its database answers. Fails while it does.

use futures::StreamExt;
use relais_hub::config::LimitsConfig;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_read_pool_is_not_a_database_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.health_listen = "127.0.0.1:0".into();
    config.limits = LimitsConfig::default().with_rate(1_000_000, 1_000_000);
    let hub = TestHub::start_with(config, dir, None).await;
    let health_addr = hub.hub.health_addr.unwrap();
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let writer = hub.partner("mairie-aspet", PartnerKind::Mairie).await;

    // One partner: 900 subscriptions, over a few connections (256 streams each at most).
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(Partner::connect("cc-comminges", &hub.url(), bus.bundle.clone()).await);
    }
    let mut drains = Vec::new();
    for i in 0..900 {
        let p = connections[i % connections.len()].clone();
        let mut s = p.subscribe(0).await.expect("subscribed");
        drains.push(tokio::spawn(
            async move { while s.next().await.is_some() {} },
        ));
    }

    // Another partner writes; health is watched on the plaintext port.
    let stop = Arc::new(AtomicBool::new(false));
    let not_serving = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, not_serving) = (stop.clone(), not_serving.clone());
        tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{health_addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut health = HealthClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    && r.into_inner().status() != ServingStatus::Serving
                {
                    not_serving.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut unavailable = 0;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let r = writer
            .persons
            .clone()
            .link_person(pb::LinkPersonRequest {
                context: ctx(),
                local_id: format!("W{i}"),
                pivot: None,
                person_id: String::new(),
                request_id: new_request_id(),
            })
            .await;
        if let Err(s) = r
            && s.code() == tonic::Code::Unavailable
        {
            unavailable += 1;
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    for d in drains {
        d.abort();
    }
    let seen = not_serving.load(Ordering::Relaxed);
    eprintln!("{i} writes, {unavailable} UNAVAILABLE, {seen} health checks NOT_SERVING");
    assert!(
        seen == 0 && unavailable == 0,
        "the database answered throughout, yet health said NOT_SERVING {seen} times and {unavailable} of {i} writes were refused UNAVAILABLE"
    );
}
