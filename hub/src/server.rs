//! Starting the hub: data directory, TLS material, matching key, store, and the gRPC server
//! with health checking and reflection.

use crate::api::{Api, Settings};
use crate::config::Config;
use crate::domain::SystemClock;
use crate::domain::pivot::MatchingKey;
use crate::lifecycle::Lifecycle;
use crate::pki::{Bundle, TlsPaths};
use crate::policy::engine::DEFAULT_RULES;
use crate::policy::{Engine, Gate};
use crate::store::DynStore;
use anyhow::Context;
use relais_proto::v1 as pb;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Server;

/// A running hub.
pub struct RunningHub {
    pub addr: SocketAddr,
    /// The plaintext health service's address, when `health_listen` is set.
    pub health_addr: Option<SocketAddr>,
    /// The administrators' console's address, when `[console] listen` is set.
    pub console_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub tls: TlsPaths,
    pub store: DynStore,
    /// True when this start created the CA and the administrator bundle.
    pub first_start: bool,
    life: Arc<Lifecycle>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Held while the hub runs: no second hub on the same data directory.
    _data_lock: crate::lifecycle::DataDirLock,
}

impl RunningHub {
    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// What stops the hub (`Lifecycle::stop`), for a signal handler.
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.life.clone()
    }

    /// Waits until the server stops (after `Lifecycle::stop`).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("server task")?
    }

    /// Stops: refuses new calls and connections, reports NOT_SERVING, ends the feed
    /// subscriptions with UNAVAILABLE, lets the calls in flight finish (at most
    /// `[shutdown] timeout_seconds`), and waits for the server to stop.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.life.stop();
        self.wait().await
    }
}

/// Reads the matching key, creating it on first start.
fn matching_key(path: &Path) -> anyhow::Result<MatchingKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading matching key {}", path.display()))?;
        let bytes = hex::decode(text.trim()).context("matching key is not hex")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("matching key {} must hold 32 bytes", path.display()))?;
        Ok(MatchingKey::from_bytes(bytes))
    } else {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("no randomness for the matching key: {e}"))?;
        crate::pki::write_private(path, &format!("{}\n", hex::encode(bytes)))?;
        tracing::info!(path = %path.display(), "created the matching key: back it up with the database");
        Ok(MatchingKey::from_bytes(bytes))
    }
}

/// The rules in force, stored; on a new database the territory's default rules become
/// version 1.
async fn load_rules(store: &DynStore, clock: &dyn crate::domain::Clock) -> anyhow::Result<Engine> {
    let (version, text) = match store.active_setting(crate::store::Setting::Rules).await? {
        Some((version, text)) => (version.version, text),
        None => {
            let meta = crate::store::WriteMeta {
                principal: "relais".into(),
                agent: crate::domain::AgentId::system(),
                request_id: crate::domain::RequestId::parse("relais-default-rules")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                fingerprint: String::new(),
                at: clock.now(),
                audit: vec![],
            };
            let v = store
                .add_setting(
                    crate::store::Setting::Rules,
                    DEFAULT_RULES,
                    "relais",
                    "default rules of the territory",
                    None,
                    &meta,
                )
                .await?;
            (v.version, DEFAULT_RULES.to_string())
        }
    };
    Engine::new(version, &text, true).map_err(|errors| {
        anyhow::anyhow!(
            "the stored access rules (version {version}) do not compile: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// Purges audit entries older than the retention, at start and then daily (CNIL: keep access
/// logs six months to a year).
fn spawn_audit_retention(store: DynStore, clock: Arc<dyn crate::domain::Clock>, days: u32) {
    tokio::spawn(async move {
        loop {
            let cutoff = crate::domain::Timestamp::from_micros(
                clock.now().micros() - i64::from(days) * 86_400 * 1_000_000,
            );
            match store.purge_audit(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, days, "audit entries past retention removed"),
                Err(e) => tracing::warn!(error = %e, "audit retention purge failed"),
            }
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        }
    });
}

/// Ends what time ends — consents and mandates past their expiry, flags past their
/// `valid_until` — and sends the redactions they owe. Durable: what is due is read from the
/// store at each run, so a restart loses nothing; each end is applied once, in the transaction
/// that marks it, so replicas running it side by side never apply one twice.
fn spawn_expiry(store: DynStore, clock: Arc<dyn crate::domain::Clock>, every: Duration) {
    tokio::spawn(async move {
        loop {
            loop {
                match store.apply_expiries(clock.now(), 500).await {
                    Ok(done) if done.total() == 0 => break,
                    Ok(done) => {
                        tracing::info!(
                            consents = done.consents,
                            mandates = done.mandates,
                            flags = done.flags,
                            redactions = done.redactions,
                            referral_reminders = done.referral_reminders,
                            "expired records ended, referral reminders sent"
                        );
                        if done.total() < 500 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expiry run failed; retried at the next one");
                        break;
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Checks the database every second (every quarter second while it is down): calls are
/// refused at once while it does not answer, and the health service says NOT_SERVING, so a
/// load balancer takes this replica out until it answers again. Stopping also reports
/// NOT_SERVING.
async fn spawn_health(
    store: DynStore,
    life: Arc<Lifecycle>,
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
) {
    use tonic_health::ServingStatus;
    let set = move |serving: bool| {
        let reporter = reporter.clone();
        let services = services.clone();
        async move {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in services {
                reporter.set_service_status(name, status).await;
            }
        }
    };
    set(true).await;
    tokio::spawn(async move {
        let mut stopping = life.stopping();
        loop {
            if life.is_stopping() {
                set(false).await;
                return;
            }
            let probe = || async {
                matches!(
                    tokio::time::timeout(Duration::from_millis(750), store.ping()).await,
                    Ok(Ok(()))
                )
            };
            // One late answer is not an outage: a failed check is retried once before the
            // replica is taken out.
            let up = probe().await || {
                tokio::time::sleep(Duration::from_millis(100)).await;
                probe().await
            };
            if life.set_database_up(up) {
                if up {
                    tracing::info!("the database answers again: serving");
                } else {
                    tracing::error!(
                        "the database does not answer: NOT_SERVING, calls refused with UNAVAILABLE"
                    );
                }
                set(up).await;
            }
            let pause = if up {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(250)
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        }
    });
}

/// Starts the hub and returns once it accepts connections.
pub async fn start(config: Config) -> anyhow::Result<RunningHub> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// A hub whose "now" comes from `clock` (tests move days forward with a `ShiftedClock`).
pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn crate::domain::Clock>,
) -> anyhow::Result<RunningHub> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let mut data_lock = crate::lifecycle::DataDirLock::acquire(&config.data_dir)?;
    let paths = config.tls_paths();
    let tls = crate::pki::ensure_tls(
        &paths,
        &config.server_names,
        config.tls.server_cert.is_empty(),
    )?;
    let first_start = tls.new_admin.is_some();
    anyhow::ensure!(
        config.matching_key.is_empty() || Path::new(&config.matching_key).exists(),
        "the matching key {} is missing: replicas share one (32 random bytes in hex: `openssl rand -hex 32`), kept with the database's backups",
        config.matching_key
    );
    let matching = matching_key(&config.matching_key_path())?;
    let store = crate::store::open(&config.database_url(), &config.store).await?;
    // The administrator's certificate is registered at every start, so a new database still
    // knows the administrator bundle kept in the data directory.
    if paths.admin_bundle.exists() {
        let bundle = Bundle::read(&paths.admin_bundle)?;
        let der = rustls_pemfile::certs(&mut bundle.cert_pem.as_bytes())
            .next()
            .context("admin bundle has no certificate")??;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("admin certificate: {e}"))?;
        let record = crate::domain::partner::CertificateRecord {
            fingerprint: crate::pki::fingerprint(&der),
            serial: cert.raw_serial_as_string(),
            not_after: crate::domain::Timestamp::from_micros(
                cert.validity().not_after.timestamp() * 1_000_000,
            ),
            issued_at: crate::domain::Timestamp::from_micros(
                cert.validity().not_before.timestamp() * 1_000_000,
            ),
            pem: bundle.cert_pem.clone(),
            revoked_at: None,
            revocation_reason: String::new(),
            awaiting_approval: false,
        };
        store
            .register_admin_certificate(&record)
            .await
            .context("registering the administrator certificate")?;
    }
    let tls_config = crate::frontdoor::tls_config(
        &tls.server_cert_pem,
        &tls.server_key_pem,
        tls.authority.cert_pem(),
    )?;

    let clock_for_admission = clock.clone();
    let engine = Arc::new(load_rules(&store, clock.as_ref()).await?);
    let gate = Arc::new(Gate::new(engine, store.clone(), clock.clone()));
    spawn_audit_retention(store.clone(), clock.clone(), config.audit.retention_days);
    spawn_expiry(
        store.clone(),
        clock.clone(),
        Duration::from_secs(config.expiry.check_seconds),
    );
    let life = Arc::new(Lifecycle::default());
    let limits = Arc::new(crate::limits::Limits::new(config.limits.clone()));
    let api = Api {
        limits: limits.clone(),
        life: life.clone(),
        store: store.clone(),
        gate,
        clock,
        matching: Arc::new(matching),
        authority: Arc::new(tls.authority),
        settings: Arc::new(Settings {
            certificate_validity_days: config.certificate_validity_days,
            cog_vintage: config.cog_vintage,
            feed: config.feed.clone(),
            flags: config.flags.clone(),
            referrals: config.referrals.clone(),
            territory: config.territory.clone(),
        }),
        feed: Default::default(),
    };

    let api_for_console = api.clone();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    use pb::admin_service_server::AdminServiceServer;
    use pb::case_service_server::CaseServiceServer;
    use pb::consent_service_server::ConsentServiceServer;
    use pb::flag_service_server::FlagServiceServer;
    use pb::person_service_server::PersonServiceServer;
    use pb::sync_service_server::SyncServiceServer;
    use pb::territory_service_server::TerritoryServiceServer;
    use tonic::server::NamedService;
    // "" is the whole server (what `grpc_health_probe` and load balancers ask by default).
    let services = vec![
        "",
        <PersonServiceServer<Api> as NamedService>::NAME,
        <FlagServiceServer<Api> as NamedService>::NAME,
        <CaseServiceServer<Api> as NamedService>::NAME,
        <SyncServiceServer<Api> as NamedService>::NAME,
        <ConsentServiceServer<Api> as NamedService>::NAME,
        <AdminServiceServer<Api> as NamedService>::NAME,
        <TerritoryServiceServer<Api> as NamedService>::NAME,
    ];
    spawn_health(store.clone(), life.clone(), health_reporter, services).await;
    // Reflection in both versions: grpcurl, Postman and Evans of a few years ago ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .context("building the reflection service")?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .context("building the reflection service (v1alpha)")?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    data_lock.write(&format!(
        "pid {}\nlistening on https://{addr}\n",
        std::process::id()
    ));
    // Each connection's certificate, looked up once after its handshake: the rate limiter knows
    // whose it is before its first call, and a certificate the hub refuses holds two
    // connections at most.
    let admission: crate::frontdoor::Admission = {
        let (store, limits, clock) = (store.clone(), limits.clone(), clock_for_admission.clone());
        Arc::new(move |fingerprint: String| {
            let (store, limits, clock) = (store.clone(), limits.clone(), clock.clone());
            Box::pin(async move {
                use crate::frontdoor::Admitted;
                match store.principal_by_fingerprint(&fingerprint).await {
                    Ok(Some((principal, record))) if record.refused_at(clock.now()).is_none() => {
                        limits.learn_principal(&fingerprint, Some(&principal));
                        Admitted::Known
                    }
                    Ok(_) => {
                        limits.learn_principal(&fingerprint, None);
                        Admitted::Refused
                    }
                    // The database does not answer: the calls will say so; the certificate
                    // is not known to be good.
                    Err(e) => {
                        tracing::debug!(error = %e, "certificate not looked up at admission");
                        Admitted::Refused
                    }
                }
            })
        })
    };
    let incoming = crate::frontdoor::serve(
        listener,
        tls_config,
        &config.limits,
        admission,
        life.stopping(),
    );

    let l = &config.limits;
    let size = l.max_message_bytes;
    let request_size = l.max_request_bytes;
    macro_rules! sized {
        ($server:ident) => {
            $server::new(api.clone())
                .max_decoding_message_size(request_size)
                .max_encoding_message_size(size)
        };
    }
    let router = Server::builder()
        // Keepalive pings find dead subscribers (a bus leaving coverage) and free their tasks.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(l.max_concurrent_streams)
        // A client's shorter grpc-timeout wins; streams (the feed) are not cut.
        .timeout(Duration::from_secs(l.request_timeout_seconds))
        .layer(crate::limits::RateLimitLayer {
            limits: limits.clone(),
            stopping: life.stopping(),
        })
        .add_service(health_service.clone())
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(sized!(PersonServiceServer))
        .add_service(sized!(FlagServiceServer))
        .add_service(sized!(CaseServiceServer))
        .add_service(sized!(ConsentServiceServer))
        .add_service(sized!(SyncServiceServer))
        .add_service(sized!(TerritoryServiceServer))
        .add_service(sized!(AdminServiceServer));
    // The plaintext health port: grpc.health.v1 alone, for probes without a certificate.
    let (health_addr, health_task) = if config.health_listen.is_empty() {
        (None, None)
    } else {
        let listener = TcpListener::bind(&config.health_listen)
            .await
            .with_context(|| format!("health_listen {}", config.health_listen))?;
        let addr = listener.local_addr()?;
        // Probes ask once and go: few connections, each for a short time, few streams.
        let incoming = crate::frontdoor::serve_plain(
            listener,
            (config.limits.max_connections / 4).clamp(1, 64),
            Duration::from_secs(config.limits.handshake_timeout_seconds),
            life.stopping(),
        );
        let server = Server::builder()
            .timeout(Duration::from_secs(5))
            .max_concurrent_streams(4)
            .layer(crate::limits::RateLimitLayer {
                limits: limits.clone(),
                stopping: life.stopping(),
            })
            .add_service(health_service.clone())
            .serve_with_incoming(incoming);
        (Some(addr), Some(tokio::spawn(server)))
    };
    // The administrators' console (HTTPS, the same server certificate), when configured.
    let console = if config.console.listen.is_empty() {
        None
    } else {
        Some(
            crate::console::start(
                &config.console,
                api_for_console,
                &tls.server_cert_pem,
                &tls.server_key_pem,
                life.clone(),
            )
            .await?,
        )
    };
    let (console_addr, console_task) = match console {
        Some((addr, task)) => (Some(addr), Some(task)),
        None => (None, None),
    };
    let grace = Duration::from_secs(config.shutdown.timeout_seconds);
    let task = {
        let life = life.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let mut stopping = life.stopping();
            let serve = router.serve_with_incoming_shutdown(incoming, async move {
                let _ = stopping.wait_for(|s| *s).await;
                tracing::info!("shutting down: no new calls, finishing those in flight");
            });
            let mut stopping = life.stopping();
            let deadline = async move {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            };
            let served = tokio::select! {
                served = serve => served.context("serving gRPC"),
                () = deadline => {
                    tracing::warn!(
                        seconds = grace.as_secs(),
                        "calls still in flight at the shutdown timeout: stopping anyway"
                    );
                    Ok(())
                }
            };
            // The console's connections end (it stops with the hub) before the pools close.
            if let Some(console) = console_task {
                let _ = tokio::time::timeout(Duration::from_secs(6), console).await;
            }
            // Every acknowledged write was committed before its answer; the pools close.
            store.close().await;
            if let Some(health) = health_task {
                health.abort();
            }

            served
        })
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "relais hub listening");
    let missing = config.territory.missing();
    if !missing.is_empty() {
        tracing::warn!(
            keys = %missing.join(", "),
            "the person's documents will not give these contact details: set them in the configuration's [territory] section"
        );
    }
    Ok(RunningHub {
        addr,
        health_addr,
        console_addr,
        data_dir: config.data_dir.clone(),
        tls: paths,
        store,
        first_start,
        life,
        task,
        _data_lock: data_lock,
    })
}
