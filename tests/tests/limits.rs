//! What one partner or one client may take of the hub: a partner over its call rate is told
//! when to come back (RESOURCE_EXHAUSTED with google.rpc.RetryInfo) while another partner is
//! served; the 1,001st subscription of a partner is refused; connections that never send
//! anything neither lock a partner out nor stay open past the handshake timeout; a message
//! over the size limit is refused.

use relais_hub::config::{LimitsConfig, Rate};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

fn generous() -> LimitsConfig {
    LimitsConfig::default().with_rate(1_000_000, 1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_is_told_when_to_come_back() {
    let mut limits = generous();
    limits.partners.insert(
        "mairie-bavarde".into(),
        Rate {
            per_second: 2,
            burst: 5,
        },
    );
    let hub = hub_with_limits(limits).await;
    let noisy = hub.partner("mairie-bavarde", PartnerKind::Mairie).await;
    let calm = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;

    let mut served = 0;
    let mut refused = None;
    for i in 0..20 {
        match noisy.try_link_local(&format!("N{i}")).await {
            Ok(()) => served += 1,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("a partner past its burst is refused");
    // The burst, plus the very first call that taught the limiter who the certificate is.
    assert!(served <= 6, "{served} calls served past a burst of 5");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("mairie-bavarde"), "{status:?}");
    let retry = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo says when to come back");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(600),
        "{retry:?}"
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "RESOURCE_EXHAUSTED");

    // Meanwhile another partner is served as usual.
    for i in 0..50 {
        calm.try_link_local(&format!("C{i}"))
            .await
            .expect("another partner is not slowed");
    }
    // After the delay it was given, the partner is served again.
    tokio::time::sleep(retry).await;
    noisy
        .try_link_local("N-after")
        .await
        .expect("served after waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_1001st_subscription_of_a_partner_is_refused() {
    let limits = generous();
    assert_eq!(
        limits.max_subscriptions_per_partner, 1000,
        "the default cap"
    );
    let streams_per_connection = limits.max_concurrent_streams as usize;
    let hub = hub_with_limits(limits).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    // Several connections: each carries at most `max_concurrent_streams` calls at once.
    let mut connections = Vec::new();
    for _ in 0..1000usize.div_ceil(streams_per_connection - 6) {
        connections.push(Partner::connect("cc-comminges", &hub.url(), bus.bundle.clone()).await);
    }
    let mut open = Vec::new();
    for i in 0..1000 {
        let p = &connections[i % connections.len()];
        let stream = p
            .subscribe(0)
            .await
            .unwrap_or_else(|s| panic!("subscription {} refused: {s:?}", i + 1));
        open.push(stream);
    }
    let refused = bus
        .subscribe(0)
        .await
        .expect_err("the 1,001st subscription is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("1000"), "{refused:?}");

    // Closing one gives its place back.
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match bus.subscribe(0).await {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(s) => panic!("a closed subscription's place was not given back: {s:?}"),
        }
    }
    // Other partners have their own.
    let other = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    other
        .subscribe(0)
        .await
        .expect("another partner subscribes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_lock_nobody_out() {
    let limits = LimitsConfig {
        max_connections: 64,
        max_pending_handshakes: 16,
        // Long: what lets the partner in below is the eviction, not the timeout.
        handshake_timeout_seconds: 60,
        ..generous()
    };
    let hub = hub_with_limits(limits).await;
    let before = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    before.try_link_local("B0").await.unwrap();

    // 300 connections that never start TLS: far more than the cap.
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(c) = tokio::net::TcpStream::connect(hub.hub.addr).await {
            idle.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A partner connected before is still served, and a new one gets in.
    before
        .try_link_local("B1")
        .await
        .expect("an established partner is served");
    let started = Instant::now();
    let newcomer = tokio::time::timeout(
        Duration::from_secs(10),
        hub.partner("mairie-aspet", PartnerKind::Mairie),
    )
    .await
    .expect("a new partner connects while idle connections flood the hub");
    newcomer.try_link_local("A1").await.expect("and is served");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let limits = LimitsConfig {
        handshake_timeout_seconds: 1,
        ..generous()
    };
    let hub = hub_with_limits(limits).await;
    let mut silent = tokio::net::TcpStream::connect(hub.hub.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the hub closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_refused() {
    let limits = LimitsConfig {
        max_request_bytes: 64 * 1024,
        ..generous()
    };
    let hub = hub_with_limits(limits).await;
    let p = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let huge = "x".repeat(100 * 1024);
    let status = p
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local("A1")),
            code: "ISOLEMENT".into(),
            note: huge,
            valid_until: String::new(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .expect_err("too large");
    assert!(
        matches!(
            status.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{status:?}"
    );
    // The connection is still good for a normal call.
    p.try_link_local("A2").await.expect("a normal call after");
}
