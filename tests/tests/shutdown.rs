//! Stopping the hub process: SIGTERM with subscriptions open and writes in flight ends the
//! subscriptions with UNAVAILABLE "shutting down", exits within the configured time, and loses
//! no acknowledged write; SIGINT with one idle subscription exits too; health says NOT_SERVING
//! while it stops; a second hub on the same data directory refuses to start.

use futures::StreamExt;
use nix::sys::signal::Signal;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::{Duration, Instant};

async fn subscribe(p: &Partner) -> tonic::Streaming<pb::SubscribeResponse> {
    let mut stream = p.subscribe(0).await.expect("subscribed");
    // Wait until it is live (caught up).
    while let Some(item) = stream.next().await {
        if let Some(pb::subscribe_response::Payload::CaughtUp(_)) = item.expect("feed").payload {
            break;
        }
    }
    stream
}

/// What a subscription ends with.
async fn end_of(mut stream: tonic::Streaming<pb::SubscribeResponse>) -> Option<tonic::Status> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(status))) => return Some(status),
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_subscriptions_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = spawn_hub_process(dir.path(), "", "[shutdown]\ntimeout_seconds = 4\n", &[]);
    let bus = hub
        .partner(
            dir.path(),
            "cc-comminges",
            PartnerKind::CommunauteDeCommunes,
        )
        .await;
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        subscriptions.push(tokio::spawn(end_of(subscribe(&bus).await)));
    }

    // Writers raise flags as fast as they can, recording what the hub acknowledged.
    let writers = FlagWriters::start(&bus, 3);
    writers.wait_for(50).await;

    let signalled = Instant::now();
    hub.signal(Signal::SIGTERM);
    for s in subscriptions {
        let status = s
            .await
            .unwrap()
            .expect("the subscription ends with a status");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("shutting down"), "{status:?}");
    }
    let exit = tokio::task::spawn_blocking(move || {
        let status = hub.exit_within(Duration::from_secs(10));
        (hub, status)
    });
    let (_hub, status) = exit.await.unwrap();
    let took = signalled.elapsed();
    let status = status.expect("the hub exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(4 + 2),
        "exited {took:?} after SIGTERM, past the 4 s configured"
    );
    let acked = writers.acknowledged().await;

    // Restarted on the same data directory: every acknowledged write is there.
    let again = spawn_hub_process(dir.path(), "", "", &[]);
    let bus = Partner::connect("cc-comminges", &again.url, bus.bundle.clone()).await;
    let missing = lost_flags(&bus, &acked).await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_an_idle_subscription_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = spawn_hub_process(dir.path(), "", "", &[]);
    let p = hub
        .partner(dir.path(), "mairie-aspet", PartnerKind::Mairie)
        .await;
    let stream = subscribe(&p).await;
    let ended = tokio::spawn(end_of(stream));

    // Health answers SERVING until the signal.
    let channel = relais_hub::cli::connect::channel(&hub.url, &p.bundle)
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let signalled = Instant::now();
    hub.signal(Signal::SIGINT);
    let status = ended.await.unwrap().expect("ended with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let exit = tokio::task::spawn_blocking(move || hub.exit_within(Duration::from_secs(15)));
    let status = exit
        .await
        .unwrap()
        .expect("the hub exits on SIGINT with a subscription open");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plaintext_health_port_answers_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.health_listen = "127.0.0.1:0".into();
    let hub = TestHub::start_with(config, dir, None).await;
    let addr = hub.hub.health_addr.expect("the health port listens");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(hub_program())
            .args(["admin", "--hub", &format!("http://{addr}"), "health"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
    // Only health is served there: a partner service is not.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = pb::sync_service_client::SyncServiceClient::new(channel)
        .get_position(pb::GetPositionRequest {})
        .await
        .expect_err("no partner service on the health port");
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hub_on_the_same_data_directory_refuses_to_start() {
    let hub = TestHub::start().await;
    // In-process: the same configuration, the same directory.
    let second = relais_hub::start(hub.config.clone()).await;
    let Err(e) = second else {
        panic!("a second hub started on the same data directory");
    };
    let message = format!("{e:#}");
    assert!(
        message.contains("another Relais hub uses the data directory"),
        "{message}"
    );
    assert!(
        message.contains(&format!("listening on {}", hub.url())),
        "it names the first one's address: {message}"
    );
    // As a process too, with the same words; once the first has stopped, the directory is free.
    let dir = hub.dir.path().to_path_buf();
    let out = std::process::Command::new(hub_program())
        .arg("serve")
        .env("RELAIS_DATA_DIR", &dir)
        .env("RELAIS_LISTEN", "127.0.0.1:0")
        .output()
        .expect("relais runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another Relais hub"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when the log is not a terminal: {stderr:?}"
    );
    let config = hub.config.clone();
    let TestHub { hub: running, .. } = hub;
    running.shutdown().await.expect("stops");
    let again = relais_hub::start(config)
        .await
        .expect("free once the first stopped");
    again.shutdown().await.expect("stops");
}
