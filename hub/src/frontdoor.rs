//! The front door: accepts TCP connections under a cap, completes each TLS handshake (client
//! certificate required) within a bounded time, and hands the encrypted streams to the gRPC
//! server. A client that opens connections and sends nothing cannot exhaust the process's
//! file descriptors nor keep the others out: connections past `max_connections` are closed at
//! once, a handshake not done in `handshake_timeout_seconds` is dropped, and past
//! `max_pending_handshakes` the oldest handshake of the address holding the most is dropped to
//! make room.

use crate::config::LimitsConfig;
use anyhow::Context;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A connection the gRPC server serves.
pub type Connection = tokio_rustls::server::TlsStream<Counted>;

/// The server's TLS configuration: its certificate, and client certificates required, signed by
/// the territory's CA; HTTP/2 only.
pub fn tls_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_cert_pem: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_cert_pem.as_bytes()) {
        roots
            .add(cert.context("reading the CA certificate")?)
            .context("the CA certificate")?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("client certificate verifier")?;
    let chain = rustls_pemfile::certs(&mut server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the server certificate")?;
    let key = rustls_pemfile::private_key(&mut server_key_pem.as_bytes())
        .context("reading the server key")?
        .context("the server key file holds no private key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the server certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Raises the soft open-files limit to the hard one and returns the connections that fit under
/// it (the configured cap, or less with a warning).
pub fn fit_connections(wanted: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // Files the hub needs besides connections: database, logs, pools, the listener.
    const RESERVED: u64 = 128;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = soft,
            using = room,
            "limits.max_connections does not fit under the open-files limit (raise LimitNOFILE / ulimit -n)"
        );
        room.max(16)
    } else {
        wanted
    }
}

/// Who a client certificate is, as far as connections go: decided once per connection, right
/// after its handshake, before any call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A registered partner or administrator certificate in force.
    Known,
    /// Signed by the CA but not registered, revoked, retired or expired: kept to a couple of
    /// connections (its calls get the reason), so that it cannot hold the hub's places.
    Refused,
}

/// Looks up the certificate of a new connection (by fingerprint), teaching the rate limiter
/// whose it is; the hub's implementation is in `server`.
pub type Admission = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Admitted> + Send>>
        + Send
        + Sync,
>;

/// Connections a refused certificate may hold at once.
const REFUSED_CONNECTIONS: usize = 2;

/// Accepts connections on `listener` until `stop` turns true; the stream ends after it.
pub fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: &LimitsConfig,
    admission: Admission,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(fit_connections(limits.max_connections)));
    let pending = Arc::new(Pending::new(limits.max_pending_handshakes));
    let timeout = Duration::from_secs(limits.handshake_timeout_seconds);
    let per_certificate = Arc::new(PerCertificate {
        cap: limits.max_connections_per_certificate,
        open: Default::default(),
    });
    tokio::spawn(async move {
        let mut warned = Warned::default();
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    warned.warn(
                        "accept",
                        || tracing::warn!(error = %e, "could not accept a connection"),
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match connections.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                // At the cap, a handshake still pending (the oldest of the address holding the
                // most) gives its place: connections that never send anything cannot fill it.
                Err(_) if pending.evict_one() => tokio::time::timeout(
                    Duration::from_millis(200),
                    connections.clone().acquire_owned(),
                )
                .await
                .ok()
                .and_then(Result::ok),
                Err(_) => None,
            };
            let Some(permit) = permit else {
                warned.warn("cap", || {
                    tracing::warn!(
                        "limits.max_connections reached, all of them served: new connections are closed at once"
                    )
                });
                crate::telemetry::connection_refused("max_connections");
                drop(tcp);
                continue;
            };
            // Small answers go out at once: without TCP_NODELAY a response written in two
            // segments waits for the client's delayed acknowledgement (40 ms on Linux).
            let _ = tcp.set_nodelay(true);
            let (id, evicted) = pending.admit(peer.ip());
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let pending = pending.clone();
            let admission = admission.clone();
            let per_certificate = per_certificate.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(
                    timeout,
                    acceptor.accept(Counted {
                        io: tcp,
                        _permit: permit,
                        _certificate: None,
                        deadline: None,
                    }),
                );
                let outcome = tokio::select! {
                    outcome = handshake => outcome,
                    _ = evicted => {
                        crate::telemetry::connection_refused("handshake_evicted");
                        return;
                    }
                };
                pending.done(peer.ip(), id);
                match outcome {
                    Ok(Ok(mut stream)) => {
                        // Whose certificate, and how many connections it holds already.
                        let Some(fingerprint) = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|leaf| crate::pki::fingerprint(leaf))
                        else {
                            return;
                        };
                        let admitted = admission(fingerprint.clone()).await;
                        let cap = match admitted {
                            Admitted::Known => per_certificate.cap,
                            Admitted::Refused => REFUSED_CONNECTIONS,
                        };
                        let Some(slot) = per_certificate.take(&fingerprint, cap) else {
                            tracing::debug!(%peer, %fingerprint, ?admitted, "certificate at its connection cap");
                            crate::telemetry::connection_refused("certificate_connections");
                            return;
                        };
                        stream.get_mut().0._certificate = Some(slot);
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        crate::telemetry::connection_refused("handshake_failed");
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not completed in time");
                        crate::telemetry::connection_refused("handshake_timeout");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Warnings that could repeat thousands of times a second are logged once a minute.
#[derive(Default)]
struct Warned(HashMap<&'static str, Instant>);

impl Warned {
    fn warn(&mut self, what: &'static str, log: impl FnOnce()) {
        let now = Instant::now();
        if self
            .0
            .get(what)
            .is_none_or(|at| now.duration_since(*at) > Duration::from_secs(60))
        {
            self.0.insert(what, now);
            log();
        }
    }
}

/// Handshakes in progress, by client address, oldest first.
struct Pending {
    cap: usize,
    inner: Mutex<PendingInner>,
}

#[derive(Default)]
struct PendingInner {
    next: u64,
    count: usize,
    /// By network (a /24 in IPv4, a /64 in IPv6: one client's addresses count together).
    by_address: HashMap<IpAddr, VecDeque<(u64, Instant, oneshot::Sender<()>)>>,
}

/// The network an address belongs to, for fairness between clients.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

impl Pending {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Default::default(),
        }
    }

    /// Registers a handshake; at the cap, first drops the oldest handshake of the network
    /// holding the most.
    fn admit(&self, address: IpAddr) -> (u64, oneshot::Receiver<()>) {
        let address = network(address);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.count >= self.cap {
            inner.evict();
        }
        let id = inner.next;
        inner.next += 1;
        inner.count += 1;
        let (tx, rx) = oneshot::channel();
        inner
            .by_address
            .entry(address)
            .or_default()
            .push_back((id, Instant::now(), tx));
        (id, rx)
    }

    /// Drops the oldest handshake of the address holding the most; false when none is pending.
    fn evict_one(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).evict()
    }

    fn done(&self, address: IpAddr, id: u64) {
        let address = network(address);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(queue) = inner.by_address.get_mut(&address)
            && let Some(at) = queue.iter().position(|(i, _, _)| *i == id)
        {
            queue.remove(at);
            if queue.is_empty() {
                inner.by_address.remove(&address);
            }
            inner.count -= 1;
        }
    }
}

impl PendingInner {
    /// Drops the oldest handshake of the network holding the most; between networks holding as
    /// many, the one whose oldest handshake is the oldest (a client's handshake in progress is
    /// younger than the flood around it).
    fn evict(&mut self) -> bool {
        let busiest = self
            .by_address
            .iter()
            .max_by_key(|(_, q)| (q.len(), std::cmp::Reverse(q.front().map(|(_, at, _)| *at))))
            .map(|(a, _)| *a);
        let Some(busiest) = busiest else {
            return false;
        };
        let Some(queue) = self.by_address.get_mut(&busiest) else {
            return false;
        };
        let evicted = queue.pop_front().map(|(_, _, evict)| {
            let _ = evict.send(());
        });
        if queue.is_empty() {
            self.by_address.remove(&busiest);
        }
        if evicted.is_some() {
            self.count -= 1;
        }
        evicted.is_some()
    }
}

/// Live connections per client certificate.
struct PerCertificate {
    cap: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl PerCertificate {
    fn take(self: &Arc<Self>, fingerprint: &str, cap: usize) -> Option<CertificateSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(fingerprint.to_string()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(CertificateSlot {
            of: self.clone(),
            fingerprint: fingerprint.to_string(),
        })
    }
}

/// One of a certificate's connections, counted until it closes.
pub struct CertificateSlot {
    of: Arc<PerCertificate>,
    fingerprint: String,
}

impl Drop for CertificateSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.fingerprint) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.fingerprint);
            }
        }
    }
}

/// A TCP connection holding one of the `max_connections` places (and one of its certificate's)
/// until it closes; with a deadline, it reads as closed once the deadline passes.
pub struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    _certificate: Option<CertificateSlot>,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Counted {
    fn expired(&mut self, cx: &mut TaskContext<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }
}

/// The plaintext health port's connections: at most `cap` at once, each closed after `life`
/// (a probe asks once and goes), the oldest first when the cap is reached.
pub fn serve_plain(
    listener: TcpListener,
    cap: usize,
    life: Duration,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<Counted>> {
    let (tx, rx) = mpsc::channel(16);
    let places = Arc::new(Semaphore::new(cap.max(1)));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((tcp, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = places.clone().try_acquire_owned() else {
                crate::telemetry::connection_refused("health_connections");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let counted = Counted {
                io: tcp,
                _permit: permit,
                _certificate: None,
                deadline: Some(Box::pin(tokio::time::sleep(life))),
            };
            if tx.send(Ok(counted)).await.is_err() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            // Past its time: reads as closed.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_address_gives_way() {
        let pending = Pending::new(3);
        let flood: IpAddr = "10.0.0.9".parse().unwrap();
        let partner: IpAddr = "10.0.1.1".parse().unwrap();
        let (_, mut first) = pending.admit(flood);
        let (_, mut second) = pending.admit(flood);
        let (p, mut mine) = pending.admit(partner);
        let (_, _third) = pending.admit(flood);
        assert!(first.try_recv().is_ok(), "the flood's oldest is dropped");
        assert!(second.try_recv().is_err());
        assert!(
            mine.try_recv().is_err(),
            "the other address keeps its handshake"
        );
        pending.done(partner, p);
        assert_eq!(pending.inner.lock().unwrap().count, 2);
    }

    #[test]
    fn a_flood_from_many_addresses_gives_way_oldest_first() {
        let pending = Pending::new(4);
        // One network's addresses count together.
        assert_eq!(
            network("192.0.2.7".parse().unwrap()),
            network("192.0.2.200".parse().unwrap())
        );
        assert_eq!(
            network("2001:db8::1".parse().unwrap()),
            network("2001:db8::ffff:1".parse().unwrap())
        );
        let mut flood = Vec::new();
        for i in 0..3u8 {
            flood.push(pending.admit(IpAddr::from([198, 51, i, 1])).1);
            std::thread::sleep(Duration::from_millis(2));
        }
        let (_, mut mine) = pending.admit("203.0.113.5".parse().unwrap());
        // Every network holds one: the oldest handshake overall goes, not the newest.
        let (_, _next) = pending.admit(IpAddr::from([198, 51, 9, 1]));
        assert!(flood[0].try_recv().is_ok(), "the oldest is dropped");
        assert!(
            mine.try_recv().is_err(),
            "the partner's newer handshake stays"
        );
    }
}
