//! What one partner may take of the hub: a token bucket per partner (a tower layer in front of
//! every service, answering `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`) and a cap on its
//! open feed subscriptions. Connection-level limits (connections, handshakes) are in
//! `frontdoor`; streams per connection, deadlines and message sizes are set on the server.

use crate::config::{LimitsConfig, Rate};
use crate::domain::ids::PartnerId;
use crate::domain::partner::Partner;
use crate::error::Error;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The fingerprint of the client certificate of a call, computed once by the rate limiter and
/// read again by the authentication (a request extension).
#[derive(Debug, Clone)]
pub struct CertificateFingerprint(pub String);

/// The limits of every partner, shared by the layer and the services.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    /// Which partner a certificate authenticated, learnt at its first accepted call.
    known: RwLock<HashMap<String, (PartnerId, Rate)>>,
    buckets: Mutex<HashMap<PartnerId, Bucket>>,
    subscriptions: Mutex<HashMap<PartnerId, usize>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            known: Default::default(),
            buckets: Default::default(),
            subscriptions: Default::default(),
        }
    }

    /// Records that `fingerprint` authenticated `partner`: its later calls draw on the
    /// partner's bucket.
    pub fn learn(&self, fingerprint: &str, partner: &Partner) {
        let rate = self.config.rate_for(partner.id.as_str(), partner.kind);
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        if known
            .get(fingerprint)
            .is_some_and(|(p, r)| p == &partner.id && *r == rate)
        {
            return;
        }
        drop(known);
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint.to_string(), (partner.id.clone(), rate));
    }

    /// Takes one call from the bucket of the certificate's partner; `Err` is how long to wait.
    /// A certificate not yet seen passes (the authentication that follows learns it).
    pub fn take(&self, fingerprint: &str) -> Result<(), (PartnerId, Duration)> {
        let Some((partner, rate)) = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(fingerprint)
            .cloned()
        else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(partner.clone()).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        let per_second = f64::from(rate.per_second);
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(f64::from(rate.burst));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err((partner, Duration::from_secs_f64(wait.max(0.001))))
        }
    }

    /// Opens one of the partner's subscriptions, refused past the cap; the slot is given back
    /// when it is dropped (the stream ends).
    pub fn open_subscription(
        self: &Arc<Self>,
        partner: &PartnerId,
    ) -> Result<SubscriptionSlot, Error> {
        let mut open = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(partner.clone()).or_insert(0);
        if *count >= self.config.max_subscriptions_per_partner {
            return Err(Error::Exhausted {
                message: format!(
                    "partner `{partner}` already has {} feed subscriptions open, the most this hub allows: close one (one subscription per connector and purpose is enough)",
                    self.config.max_subscriptions_per_partner
                ),
                retry_after: None,
            });
        }
        *count += 1;
        Ok(SubscriptionSlot {
            limits: self.clone(),
            partner: partner.clone(),
        })
    }

    /// Subscriptions open now, all partners together.
    pub fn subscriptions_open(&self) -> usize {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// One open subscription, counted until dropped.
#[derive(Debug)]
pub struct SubscriptionSlot {
    limits: Arc<Limits>,
    partner: PartnerId,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.partner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.partner);
            }
        }
    }
}

/// The tower layer that applies the per-partner rate.
#[derive(Debug, Clone)]
pub struct RateLimitLayer(pub Arc<Limits>);

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            limits: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    limits: Arc<Limits>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RateLimited<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let fingerprint = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().map(|leaf| crate::pki::fingerprint(leaf)));
        if let Some(fingerprint) = fingerprint {
            if let Err((partner, wait)) = self.limits.take(&fingerprint) {
                tracing::debug!(partner = %partner, wait_ms = wait.as_millis() as u64, "rate limited");
                crate::telemetry::rate_limited(&partner);
                let status = crate::api::status::to_status(Error::Exhausted {
                    message: format!(
                        "partner `{partner}` is over its call rate: retry in {} ms",
                        wait.as_millis().max(1)
                    ),
                    retry_after: Some(wait),
                });
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
            request
                .extensions_mut()
                .insert(CertificateFingerprint(fingerprint));
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::partner::{PartnerKind, PartnerStatus};

    fn partner(id: &str, kind: PartnerKind) -> Partner {
        Partner {
            id: PartnerId::parse(id).unwrap(),
            kind,
            name: id.into(),
            territory: vec![],
            cog_vintage: 2026,
            status: PartnerStatus::Active,
            status_reason: String::new(),
            certificates: vec![],
            created_at: crate::domain::Timestamp::from_micros(0),
            updated_at: crate::domain::Timestamp::from_micros(0),
            version: 1,
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_says_how_long_to_wait() {
        let mut config = LimitsConfig::default().with_rate(10, 3);
        config.partners.insert(
            "gros".into(),
            Rate {
                per_second: 1000,
                burst: 1000,
            },
        );
        let limits = Limits::new(config);
        assert!(limits.take("unknown").is_ok(), "a new certificate passes");
        limits.learn("a1", &partner("mairie-a", PartnerKind::Mairie));
        limits.learn("a2", &partner("mairie-a", PartnerKind::Mairie));
        limits.learn("g", &partner("gros", PartnerKind::Mairie));
        assert!(limits.take("a1").is_ok());
        assert!(limits.take("a2").is_ok());
        assert!(limits.take("a1").is_ok());
        let (who, wait) = limits.take("a2").expect_err("two certificates, one bucket");
        assert_eq!(who.as_str(), "mairie-a");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        for _ in 0..500 {
            assert!(limits.take("g").is_ok(), "the override applies");
        }
    }

    #[test]
    fn subscriptions_are_capped_and_given_back() {
        let config = LimitsConfig {
            max_subscriptions_per_partner: 2,
            ..Default::default()
        };
        let limits = Arc::new(Limits::new(config));
        let id = PartnerId::parse("mairie-a").unwrap();
        let a = limits.open_subscription(&id).unwrap();
        let _b = limits.open_subscription(&id).unwrap();
        assert!(matches!(
            limits.open_subscription(&id),
            Err(Error::Exhausted { .. })
        ));
        drop(a);
        assert!(limits.open_subscription(&id).is_ok());
        assert_eq!(limits.subscriptions_open(), 1);
    }
}
