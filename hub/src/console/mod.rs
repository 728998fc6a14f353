//! The administrators' console: server-rendered HTML (askama templates compiled into the
//! binary, a little plain JavaScript for the rules editor), served by the hub over HTTPS with
//! its own server certificate on `[console] listen`. Named accounts with a role, an argon2
//! password and a TOTP code; sessions in `__Host-` cookies (Secure, HttpOnly, SameSite=Strict),
//! a CSRF token in every form, lockout after repeated failures, idle and absolute timeouts.
//!
//! Every act goes through the AdminService, in-process, under the account's name (`Actor`):
//! the same validation, the same audit, and the role checked by the service itself.

pub mod account;
mod pages;
mod session;

use crate::api::Api;
use crate::config::ConsoleConfig;
use crate::lifecycle::Lifecycle;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// What the console's handlers share.
pub struct Console {
    pub(crate) api: Api,
    pub(crate) config: ConsoleConfig,
    /// Bundles made in the console, waiting for their one download: token → bundle.
    pub(crate) bundles: Mutex<std::collections::HashMap<String, PendingBundle>>,
    /// The last verification of the audit chain made from the console.
    pub(crate) last_verification: Mutex<Option<pages::Verification>>,
    /// Log-in attempts per client address in the current window.
    pub(crate) login_attempts: Mutex<std::collections::HashMap<std::net::IpAddr, (u32, Instant)>>,
}

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

pub(crate) struct PendingBundle {
    /// The session that made it: no other may download it.
    pub session: String,
    pub file_name: String,
    pub pem: String,
    pub made: Instant,
}

/// Connections served at once (all, and from one address), how long a TLS handshake may take,
/// and how long one request may take, its body included.
const MAX_CONNECTIONS: usize = 256;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection of an address, given back when it closes.
struct AddressSlot {
    ip: std::net::IpAddr,
    counts: Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl AddressSlot {
    fn take(
        counts: &Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
    ) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            counts: counts.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Warns at most once a second about refused connections (a flood must not flood the log).
fn warn_refused(peer: SocketAddr, why: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(second, Ordering::Relaxed) != second {
        tracing::warn!(%peer, why, "console: connection refused (further ones this second are not logged)");
    }
}

/// The console's TLS configuration: the hub's server certificate, no client certificate
/// (browsers), HTTP/1.1.
fn tls_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the server certificate")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading the server key")?
        .context("the server key file holds no private key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the server certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Binds the console and serves it until the hub stops. Returns its address.
pub async fn start(
    config: &ConsoleConfig,
    api: Api,
    cert_pem: &str,
    key_pem: &str,
    life: Arc<Lifecycle>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("console.listen {}", config.listen))?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(cert_pem, key_pem)?);
    let console = Arc::new(Console {
        api,
        config: config.clone(),
        bundles: Default::default(),
        last_verification: Default::default(),
        login_attempts: Default::default(),
    });
    let router = pages::router(console.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Default::default();
    let stopping = life.stopping();
    let task = tokio::spawn(async move {
        // Ends sessions past their time, every minute.
        let sweeper = {
            let console = console.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    session::sweep(&console).await;
                }
            })
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = stopped(stopping.clone()) => break,
            };
            let Ok((tcp, peer)) = accepted else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn_refused(peer, "too many connections");
                continue;
            };
            let Some(address_slot) = AddressSlot::take(&per_address, session::source(peer.ip()))
            else {
                warn_refused(peer, "too many connections from this address");
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let stop = life.stopping();
            tokio::spawn(async move {
                let _slots = (slot, address_slot);
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    _ => return,
                };
                let service = hyper_util::service::TowerToHyperService::new(
                    router.layer(axum::Extension(Peer(peer))),
                );
                let conn = hyper::server::conn::http1::Builder::new()
                    .header_read_timeout(Duration::from_secs(20))
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = stopped(stop) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
        sweeper.abort();
    });
    tracing::info!(%addr, "administrators' console listening (HTTPS)");
    Ok((addr, task))
}

/// Resolves once the hub stops.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}
