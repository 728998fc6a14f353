//! Attacks with streams that never end and with the plaintext health port (review of issue
//! 11). Each test asserts the behaviour the limits are meant to give; a failing test is a
//! defect that was reported.
//!
//! - `never_ending_health_watches_count_against_the_partner`: grpc.health.v1 `Watch` (and the
//!   reflection stream) are served on the partner port, never end, and are not counted by the
//!   per-partner cap that bounds the feed's subscriptions.
//! - `the_plaintext_health_port_caps_its_connections`: `health_listen` has no front door: no
//!   connection cap, no handshake timeout — every connection holds a file descriptor for ever.
//! - `an_open_stream_does_not_hold_the_shutdown`: stopping ends feed subscriptions at once; a
//!   `Watch` (not served) or a reflection stream must not keep the server draining until
//!   `[shutdown] timeout_seconds`.

use relais_hub::config::LimitsConfig;
use relais_tests::proto::PartnerKind;
use relais_tests::*;
use std::time::{Duration, Instant};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ending_health_watches_count_against_the_partner() {
    let hub = hub_with_limits(LimitsConfig {
        max_subscriptions_per_partner: 2,
        ..LimitsConfig::default().with_rate(1_000_000, 1_000_000)
    })
    .await;
    let p = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let channel = relais_hub::cli::connect::channel(&hub.url(), &p.bundle)
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..50 {
        match HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(stream) => open.push(stream.into_inner()),
            Err(_) => break,
        }
    }
    assert!(
        open.len() <= 2,
        "{} never-ending streams held by one partner whose cap is 2",
        open.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plaintext_health_port_caps_its_connections() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.health_listen = "127.0.0.1:0".into();
    config.limits = LimitsConfig {
        max_connections: 16,
        max_pending_handshakes: 8,
        handshake_timeout_seconds: 1,
        ..LimitsConfig::default()
    };
    let hub = TestHub::start_with(config, dir, None).await;
    let health = hub.hub.health_addr.expect("health port");
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(c) = tokio::net::TcpStream::connect(health).await {
            idle.push(c);
        }
    }
    // Longer than any handshake or header timeout the main port has.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut still_open = 0;
    for c in &mut idle {
        let mut buf = [0u8; 64];
        // The server's SETTINGS frame may be there; open means no EOF.
        match tokio::time::timeout(Duration::from_millis(20), c.read(&mut buf)).await {
            Err(_) => still_open += 1,
            Ok(Ok(n)) if n > 0 => still_open += 1,
            _ => {}
        }
    }
    assert!(
        still_open <= 16,
        "{still_open} silent plaintext connections to the health port kept open (the partner port caps at 16)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_does_not_hold_the_shutdown() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    config.shutdown.timeout_seconds = 6;
    let hub = TestHub::start_with(config, dir, None).await;
    let p = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let channel = relais_hub::cli::connect::channel(&hub.url(), &p.bundle)
        .await
        .unwrap();
    // A health Watch is not served at all.
    let watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect_err("Watch is not served");
    assert_eq!(watch.code(), tonic::Code::Unimplemented, "{watch:?}");
    // A reflection stream the client never closes.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await
    .unwrap();
    let mut reflection = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("reflection")
        .into_inner();
    assert!(reflection.message().await.unwrap().is_some());
    let TestHub { hub: running, .. } = hub;
    let started = Instant::now();
    running.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "one idle reflection stream kept the hub draining for {:?} (the whole shutdown timeout)",
        started.elapsed()
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_streams_count_as_subscriptions() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let hub = hub_with_limits(LimitsConfig {
        max_subscriptions_per_partner: 2,
        ..LimitsConfig::default().with_rate(1_000_000, 1_000_000)
    })
    .await;
    let p = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let channel = relais_hub::cli::connect::channel(&hub.url(), &p.bundle)
        .await
        .unwrap();
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..3 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        })
        .await
        .unwrap();
        match ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(stream) => open.push((tx, stream.into_inner())),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("the third stream is refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(open.len(), 2);
}
