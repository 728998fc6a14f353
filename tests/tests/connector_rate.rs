//! A connector whose partner is over its call rate: the hub answers RESOURCE_EXHAUSTED with
//! RetryInfo, the outbox waits as long as the hub said and goes on — every write arrives,
//! none is dead-lettered, and the connector did not hammer the hub meanwhile.

use relais_connector::Connector;
use relais_connector::config::ConnectorConfig;
use relais_connector_sdk::outbox;
use relais_hub::config::{LimitsConfig, Rate};
use relais_tests::proto::PartnerKind;
use relais_tests::*;
use std::time::{Duration, Instant};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../connectors/profiles/mairie-ccas/depot/registre-2026-11-28.csv"
);
const PROFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../connectors/profiles/mairie-ccas/partner.toml"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_over_its_rate_waits_as_the_hub_says_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path());
    let mut limits = LimitsConfig::default().with_rate(1_000_000, 1_000_000);
    // Four calls a second, two at once: the sample's 12 writes cannot go in one burst.
    limits.partners.insert(
        "mairie-d-aspet".into(),
        Rate {
            per_second: 4,
            burst: 2,
        },
    );
    config.limits = limits;
    let hub = TestHub::start_with(config, dir, None).await;
    let mairie = hub.partner("mairie-d-aspet", PartnerKind::Mairie).await;

    let work = tempfile::tempdir().unwrap();
    mairie
        .bundle
        .write(&work.path().join("mairie-d-aspet.bundle.pem"), "test")
        .unwrap();
    let profile = std::fs::read_to_string(PROFILE)
        .unwrap()
        .replace("https://127.0.0.1:7443", &hub.url())
        .replace(
            "delimiter = \"auto\"",
            "delimiter = \"auto\"\nsettle_seconds = 0",
        );
    std::fs::write(work.path().join("partner.toml"), profile).unwrap();
    let c = Connector::open(ConnectorConfig::load(&work.path().join("partner.toml")).unwrap())
        .await
        .unwrap();
    std::fs::create_dir_all(work.path().join("depot")).unwrap();
    std::fs::copy(SAMPLE, work.path().join("depot/registre-2026-11-28.csv")).unwrap();
    let queued = c.adapter.poll(&c.state).await.unwrap();
    assert_eq!(queued, 12);

    // One pass meets the limit: it stops, says how long the hub asked to wait, dead-letters
    // nothing.
    let first = outbox::drain_once(&c.hub, &c.state).await.unwrap();
    assert!(first.blocked, "{first:?}");
    assert_eq!(first.dead_lettered, 0);
    let asked = first
        .retry_after
        .expect("the hub's RetryInfo reaches the outbox");
    assert!(asked <= Duration::from_millis(500), "{asked:?}");

    // The drain loop honours it and finishes.
    let started = Instant::now();
    let wake = tokio::sync::Notify::new();
    // The drain and the check run side by side, each polled while the other waits: a check
    // that waits for the connector's state must not hold up a drain paused mid-write.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let draining = outbox::drain(&c.hub, &c.state, &wake, Duration::from_millis(50), None);
        let emptied = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if c.state.counts().await.unwrap().0 == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            r = draining => panic!("drain ended: {r:?}"),
            () = emptied => {}
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the outbox never emptied under the rate limit"
    );
    let (waiting, dead) = c.state.counts().await.unwrap();
    assert_eq!((waiting, dead), (0, 0));
    // 12 writes at 4 a second, after a burst of 2: the waits were the hub's, not a long backoff.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // (The bucket refills before the test reads as the same partner.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rose = mairie.flags_of("CCAS-0017", false).await;
    assert_eq!(rose.len(), 4, "every write arrived");
}
