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
    /// Whose bucket a certificate draws on, learnt when its connection is admitted (and again
    /// at each accepted call).
    known: RwLock<HashMap<String, (PartnerId, Rate)>>,
    buckets: Mutex<HashMap<PartnerId, Bucket>>,
    subscriptions: Mutex<HashMap<PartnerId, usize>>,
    in_flight: Mutex<HashMap<PartnerId, usize>>,
    in_flight_total: std::sync::atomic::AtomicUsize,
    /// When each partner's last call was accepted (on this replica), for the console.
    last_seen: Mutex<HashMap<PartnerId, std::time::SystemTime>>,
}

/// The bucket of a certificate the hub refuses (unregistered, revoked, expired), of its own:
/// its calls are answered with the reason, slowly.
const REFUSED_RATE: Rate = Rate {
    per_second: 1,
    burst: 5,
};

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
            in_flight: Default::default(),
            in_flight_total: Default::default(),
            last_seen: Default::default(),
        }
    }

    /// Records whose a certificate is, from the principal it names (`None`: refused): partners
    /// draw on their bucket, administrators on theirs, refused certificates each on a small one.
    pub fn learn_principal(&self, fingerprint: &str, principal: Option<&crate::store::Principal>) {
        use crate::store::Principal;
        let (bucket, rate) = match principal {
            Some(Principal::Partner(p)) => {
                return self.learn(fingerprint, p);
            }
            Some(Principal::Admin(_)) => ("admin".to_string(), self.config.admin),
            None => (
                format!("refused-{}", &fingerprint[..fingerprint.len().min(16)]),
                REFUSED_RATE,
            ),
        };
        let Ok(id) = PartnerId::parse(&bucket) else {
            return;
        };
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint.to_string(), (id, rate));
    }

    /// Counts one call being answered, refused past the partner's or the hub's cap; the count
    /// is given back when the guard drops.
    pub fn enter(self: &Arc<Self>, fingerprint: &str) -> Result<InFlight, String> {
        use std::sync::atomic::Ordering;
        let total = self.in_flight_total.fetch_add(1, Ordering::AcqRel);
        let partner = self.partner_of(fingerprint);
        let mut guard = InFlight {
            limits: self.clone(),
            partner: None,
        };
        if total >= self.config.max_calls_in_flight {
            return Err(format!(
                "the hub is answering {total} calls already, its most: retry shortly"
            ));
        }
        let Some(partner) = partner else {
            return Ok(guard);
        };
        let mut open = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(partner.clone()).or_insert(0);
        if *count >= self.config.max_calls_in_flight_per_partner {
            return Err(format!(
                "partner `{partner}` has {count} calls being answered already, its most: wait for their answers"
            ));
        }
        *count += 1;
        guard.partner = Some(partner);
        Ok(guard)
    }

    /// Records that `fingerprint` authenticated `partner`: its later calls draw on the
    /// partner's bucket.
    pub fn learn(&self, fingerprint: &str, partner: &Partner) {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partner.id.clone(), std::time::SystemTime::now());
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

    /// When a partner's last call was accepted on this replica since it started.
    pub fn last_seen(&self, partner: &PartnerId) -> Option<std::time::SystemTime> {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(partner)
            .copied()
    }

    /// Takes one call from the bucket of the certificate's partner; `Err` is how long to wait.
    /// Every connection's certificate is learnt when it is admitted; one that was not (a
    /// connection from before a restart of the limiter) draws on a small bucket of its own.
    pub fn take(&self, fingerprint: &str) -> Result<(), (PartnerId, Duration)> {
        if self.bucket_of(fingerprint).is_none() {
            self.learn_principal(fingerprint, None);
        }
        match self.bucket_of(fingerprint) {
            Some((partner, rate)) => self.draw(partner, rate),
            None => Ok(()),
        }
    }

    fn bucket_of(&self, fingerprint: &str) -> Option<(PartnerId, Rate)> {
        self.known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(fingerprint)
            .cloned()
    }

    fn draw(&self, partner: PartnerId, rate: Rate) -> Result<(), (PartnerId, Duration)> {
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

    /// The partner (or `admin`, or a refused certificate's own name) a certificate draws on.
    pub fn partner_of(&self, fingerprint: &str) -> Option<PartnerId> {
        self.bucket_of(fingerprint).map(|(p, _)| p)
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

/// One call being answered, counted until dropped.
#[derive(Debug)]
pub struct InFlight {
    limits: Arc<Limits>,
    partner: Option<PartnerId>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.limits
            .in_flight_total
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(partner) = &self.partner {
            let mut open = self
                .limits
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(count) = open.get_mut(partner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(partner);
                }
            }
        }
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

/// The tower layer that applies the per-partner limits: call rate, calls in flight, the
/// reflection stream counted as a subscription, no health Watch.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    pub limits: Arc<Limits>,
    /// Turns true when the hub stops (long streams end then).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            limits: self.limits.clone(),
            stopping: self.stopping.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    limits: Arc<Limits>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// A response body holding a subscription slot while it streams, and ending when the hub
/// stops.
struct Guarded {
    inner: tonic::body::Body,
    _slot: SubscriptionSlot,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

fn guarded(
    inner: tonic::body::Body,
    slot: SubscriptionSlot,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tonic::body::Body {
    tonic::body::Body::new(Guarded {
        inner,
        _slot: slot,
        stop: Box::pin(async move {
            let _ = stopping.wait_for(|s| *s).await;
        }),
    })
}

impl http_body::Body for Guarded {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            // An error resets the stream, both ways: the server does not wait for the client
            // to close its side.
            return Poll::Ready(Some(Err(tonic::Status::unavailable(
                "the hub is shutting down",
            ))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for RateLimited<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // A health Watch never ends: checkers ask `Check` (load balancers, Kubernetes probes).
        if request.uri().path() == "/grpc.health.v1.Health/Watch" {
            let status = tonic::Status::unimplemented(
                "grpc.health.v1.Health/Watch is not served here: ask Check",
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
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
            let in_flight = match self.limits.enter(&fingerprint) {
                Ok(guard) => guard,
                Err(message) => {
                    let status = crate::api::status::to_status(Error::Exhausted {
                        message,
                        retry_after: Some(Duration::from_millis(100)),
                    });
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            };
            // The reflection stream lasts as long as the client keeps it: it is counted as one
            // of the partner's subscriptions, and ends with them when the hub stops.
            let reflection = request.uri().path().starts_with("/grpc.reflection.v1");
            let slot = if reflection {
                let partner = self.limits.partner_of(&fingerprint);
                match partner.map(|p| self.limits.open_subscription(&p)) {
                    Some(Ok(slot)) => Some(slot),
                    Some(Err(e)) => {
                        let status = crate::api::status::to_status(e);
                        return Box::pin(std::future::ready(Ok(status.into_http())));
                    }
                    None => None,
                }
            } else {
                None
            };
            request
                .extensions_mut()
                .insert(CertificateFingerprint(fingerprint));
            let call = self.inner.call(request);
            let stopping = self.stopping.clone();
            return Box::pin(async move {
                let response = call.await;
                drop(in_flight);
                match slot {
                    Some(slot) => response.map(|r| r.map(|body| guarded(body, slot, stopping))),
                    None => response,
                }
            });
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
