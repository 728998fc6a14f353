//! Attacks on the per-partner limits and the front door (review of issue 11). Each test
//! asserts the behaviour the README promises; a failing test is a defect that was reported.
//!
//! - `idle_established_connections_lock_nobody_out`: one partner's certificate (here a
//!   revoked one) completes TLS on every `max_connections` place and then sends nothing; a
//!   second partner must still get in (README: "no partner starves the others").
//! - `a_revoked_certificate_is_rate_limited_too`: calls from a certificate the hub refuses are
//!   never "learnt", so the bucket never applies to them.
//! - `concurrent_first_calls_do_not_bypass_the_burst`: a new certificate's first calls, sent
//!   at once, all pass before the first one taught the limiter who it is.

use relais_hub::config::{LimitsConfig, Rate};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::Duration;

async fn revoke(hub: &TestHub, p: &Partner) {
    hub.admin
        .clone()
        .revoke_certificate(pb::RevokeCertificateRequest {
            fingerprint: p.bundle.fingerprint().unwrap(),
            reason: "key compromised".into(),
            request_id: new_request_id(),
        })
        .await
        .expect("revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_established_connections_lock_nobody_out() {
    let limits = LimitsConfig {
        max_connections: 16,
        max_pending_handshakes: 8,
        handshake_timeout_seconds: 1,
        ..LimitsConfig::default().with_rate(1_000_000, 1_000_000)
    };
    let hub = hub_with_limits(limits).await;
    let thief = hub.partner("mairie-volee", PartnerKind::Mairie).await;
    // The key was stolen, the administrator revoked the certificate: TLS still accepts it.
    revoke(&hub, &thief).await;

    // Connections that complete TLS (and HTTP/2) and then never send a call.
    let mut idle = Vec::new();
    for _ in 0..40 {
        match tokio::time::timeout(
            Duration::from_secs(3),
            relais_hub::cli::connect::channel(&hub.url(), &thief.bundle),
        )
        .await
        {
            Ok(Ok(c)) => idle.push(c),
            _ => break,
        }
    }
    // Well past the handshake timeout: the handshakes are done, nothing is pending.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let newcomer = tokio::time::timeout(
        Duration::from_secs(10),
        relais_hub::cli::connect::channel(&hub.url(), &hub_partner_bundle(&hub).await),
    )
    .await;
    let connected = matches!(newcomer, Ok(Ok(_)));
    assert!(
        connected,
        "{} idle TLS connections of one (revoked) certificate lock every other partner out: {:?}",
        idle.len(),
        newcomer.map(|r| r.map(|_| ()))
    );
    drop(idle);
}

/// A new partner's bundle, registered through the administrator's existing connection.
async fn hub_partner_bundle(hub: &TestHub) -> relais_hub::pki::Bundle {
    let (key, csr_pem) = relais_hub::pki::new_key_and_csr("mairie-aspet").unwrap();
    let r = hub
        .admin
        .clone()
        .add_partner(pb::AddPartnerRequest {
            id: "mairie-aspet".into(),
            kind: PartnerKind::Mairie as i32,
            name: "Mairie d'Aspet".into(),
            territory: vec!["31483".into()],
            cog_vintage: 0,
            csr_pem,
            request_id: new_request_id(),
        })
        .await
        .expect("partner added")
        .into_inner();
    relais_hub::pki::Bundle {
        cert_pem: r.certificate_pem,
        key_pem: key.serialize_pem(),
        ca_pem: r.ca_certificate_pem,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_rate_limited_too() {
    let mut limits = LimitsConfig::default().with_rate(1_000_000, 1_000_000);
    limits.partners.insert(
        "mairie-volee".into(),
        Rate {
            per_second: 2,
            burst: 5,
        },
    );
    let hub = hub_with_limits(limits).await;
    let thief = hub.partner("mairie-volee", PartnerKind::Mairie).await;
    revoke(&hub, &thief).await;

    let mut exhausted = 0;
    let mut other = 0;
    for i in 0..300 {
        match thief.try_link_local(&format!("T{i}")).await {
            Err(s) if s.code() == tonic::Code::ResourceExhausted => exhausted += 1,
            _ => other += 1,
        }
    }
    assert!(
        exhausted > 0,
        "300 calls in a row from a revoked certificate, none rate limited ({other} reached the store)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_do_not_bypass_the_burst() {
    let mut limits = LimitsConfig::default().with_rate(1_000_000, 1_000_000);
    limits.partners.insert(
        "mairie-bavarde".into(),
        Rate {
            per_second: 1,
            burst: 3,
        },
    );
    let hub = hub_with_limits(limits).await;
    let noisy = hub.partner("mairie-bavarde", PartnerKind::Mairie).await;
    // Its certificate has made no call yet: 200 calls at once, on its one connection.
    let calls = (0..200).map(|i| {
        let p = noisy.clone();
        async move { p.try_link_local(&format!("N{i}")).await }
    });
    let results = futures::future::join_all(calls).await;
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert!(
        served <= 4 + 1,
        "{served} of 200 simultaneous first calls served past a burst of 3"
    );
}
