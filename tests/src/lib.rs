//! Helpers for the end-to-end tests: a real hub in-process on `127.0.0.1:0`, with a fresh
//! SQLite database in a temporary directory and real mTLS, and partners that talk to it through
//! the generated clients.

pub mod webdriver;

use relais_hub::pki::Bundle;
use relais_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, case_service_client::CaseServiceClient,
    consent_service_client::ConsentServiceClient, flag_service_client::FlagServiceClient,
    person_service_client::PersonServiceClient, sync_service_client::SyncServiceClient,
    territory_service_client::TerritoryServiceClient,
};
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

pub use relais_hub;
pub use relais_proto::v1 as proto;

/// Copies what replicas must share — the CA, the server certificate, the administrator
/// identity and the matching key — from one data directory to another.
pub fn share_identity(from: &std::path::Path, to: &std::path::Path) {
    for entry in [
        "tls/ca.pem",
        "tls/ca.key",
        "tls/server.pem",
        "tls/server.key",
        "admin/admin.bundle.pem",
        "matching.key",
    ] {
        let target = to.join(entry);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(entry), target).unwrap();
    }
}

/// A hub running in this process, and the directory holding its data.
pub struct TestHub {
    pub hub: relais_hub::RunningHub,
    pub dir: tempfile::TempDir,
    pub admin: AdminServiceClient<Channel>,
    /// Its "now": the system's, until the test moves days forward (`advance_days`).
    pub clock: std::sync::Arc<relais_hub::domain::ShiftedClock>,
    pub config: relais_hub::Config,
    /// Dropped after the hub (fields drop in order).
    pub database: Option<TestDatabase>,
}

/// A hub's configuration for tests: the defaults, on a free port, except the call rates and
/// the calls in flight — the tests and the benchmarks drive a few partners much harder than a
/// territory's would (the `limits` test checks the limits themselves).
pub fn config_for(data_dir: &Path) -> relais_hub::Config {
    relais_hub::Config {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        limits: relais_hub::config::LimitsConfig {
            max_calls_in_flight_per_partner: 100_000,
            max_calls_in_flight: 100_000,
            ..relais_hub::config::LimitsConfig::default().with_rate(1_000_000, 1_000_000)
        },
        ..relais_hub::Config::default()
    }
}

/// A hub on a fresh SQLite database with these limits (the tests of the limits themselves).
pub async fn hub_with_limits(limits: relais_hub::config::LimitsConfig) -> TestHub {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = config_for(dir.path());
    config.limits = limits;
    TestHub::start_with(config, dir, None).await
}

/// Writers that link persons and raise a flag on each, as fast as they can, until the hub
/// stops answering; what the hub acknowledged — (local id, flag id) — is recorded. For the
/// tests that stop or kill the hub under writes (crash, shutdown).
pub struct FlagWriters {
    acked: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FlagWriters {
    pub fn start(bus: &Partner, writers: usize) -> Self {
        let acked: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
        let tasks = (0..writers)
            .map(|w| {
                let (bus, acked) = (bus.clone(), acked.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        let local_id = format!("W{w}-{i}");
                        if bus.try_link_local(&local_id).await.is_err() {
                            return;
                        }
                        let raised = bus
                            .flags
                            .clone()
                            .raise_flag(pb::RaiseFlagRequest {
                                context: ctx(),
                                person: Some(local(&local_id)),
                                code: "ISOLEMENT".into(),
                                request_id: new_request_id(),
                                ..Default::default()
                            })
                            .await;
                        match raised {
                            Ok(r) => acked
                                .lock()
                                .expect("acked")
                                .push((local_id, r.into_inner().flag.expect("the flag").id)),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        Self { acked, tasks }
    }

    /// Waits until `n` writes were acknowledged (at most a minute).
    pub async fn wait_for(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.acked.lock().expect("acked").len() < n {
            assert!(std::time::Instant::now() < deadline, "writes are too slow");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits for the writers to stop (the hub no longer answers) and returns what was
    /// acknowledged.
    pub async fn acknowledged(self) -> Vec<(String, String)> {
        for task in self.tasks {
            task.await.expect("writer");
        }
        self.acked.lock().expect("acked").clone()
    }
}

/// The local ids whose acknowledged flag the hub no longer has.
pub async fn lost_flags(bus: &Partner, acked: &[(String, String)]) -> Vec<String> {
    let mut lost = Vec::new();
    for (local_id, flag_id) in acked {
        let flags = bus
            .flags
            .clone()
            .list_flags(pb::ListFlagsRequest {
                context: ctx(),
                person: Some(local(local_id)),
                include_retracted: true,
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().flags)
            .unwrap_or_default();
        if !flags.iter().any(|f| &f.id == flag_id) {
            lost.push(local_id.clone());
        }
    }
    lost
}

/// A hub running as its own process (`relais serve`), for tests of what only a process shows:
/// a crash, signals, telemetry export.
pub struct HubProcess {
    pub child: std::process::Child,
    pub url: String,
}

/// The `relais` program built for the tests (`src/bin/relais-under-test.rs`), beside the test
/// binaries: cargo builds it for this crate's integration tests.
pub fn hub_program() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let program = deps.parent().unwrap_or(deps).join("relais-under-test");
    assert!(
        program.exists(),
        "{} is missing: run the tests with cargo (it builds the crate's binaries)",
        program.display()
    );
    program
}

/// Starts `relais serve` on a free port over `data_dir`, with the test rates (see
/// `config_for`), `extra_config` appended to its configuration file, and `env` set; returns
/// once it listens.
pub fn spawn_hub_process(
    data_dir: &Path,
    database_url: &str,
    extra_config: &str,
    env: &[(&str, &str)],
) -> HubProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    std::fs::create_dir_all(data_dir).expect("data directory");
    let config = data_dir.join("test-hub.toml");
    let mut text = String::from("[limits.rate]\n");
    for kind in [
        "communaute_de_communes",
        "mairie",
        "departement",
        "sous_prefecture",
        "association",
        "operateur",
    ] {
        text.push_str(&format!(
            "{kind} = {{ per_second = 1000000, burst = 1000000 }}\n"
        ));
    }
    text.push_str(extra_config);
    std::fs::write(&config, text).expect("test configuration");
    let mut command = Command::new(hub_program());
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RELAIS_DATA_DIR", data_dir)
        .env("RELAIS_DATABASE_URL", database_url)
        .env("RELAIS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("hub process starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the hub prints its address")
            .expect("readable output");
        if let Some(rest) = line.split("hub listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    // Keep draining stdout so the hub never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    HubProcess { child, url }
}

impl HubProcess {
    /// Sends a signal (SIGTERM, SIGINT, SIGKILL).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal sent");
    }

    /// Waits for the process to exit, at most `within`; `None` if it is still running (then
    /// it is killed).
    pub fn exit_within(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("process state") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The administrator's client of this hub (its bundle is in `data_dir/admin`).
    pub async fn admin(&self, data_dir: &Path) -> AdminServiceClient<Channel> {
        let bundle = relais_hub::pki::Bundle::read(&data_dir.join("admin/admin.bundle.pem"))
            .expect("admin bundle");
        AdminServiceClient::new(
            relais_hub::cli::connect::channel(&self.url, &bundle)
                .await
                .expect("admin channel"),
        )
    }

    /// Adds a partner through the administrator and connects as it.
    pub async fn partner(&self, data_dir: &Path, id: &str, kind: pb::PartnerKind) -> Partner {
        let (key, csr_pem) = relais_hub::pki::new_key_and_csr(id).expect("key and CSR");
        let added = self
            .admin(data_dir)
            .await
            .add_partner(pb::AddPartnerRequest {
                id: id.into(),
                kind: kind as i32,
                name: id.into(),
                territory: vec!["31483".into()],
                cog_vintage: 0,
                csr_pem,
                request_id: new_request_id(),
            })
            .await
            .expect("partner added")
            .into_inner();
        let bundle = relais_hub::pki::Bundle {
            cert_pem: added.certificate_pem,
            key_pem: key.serialize_pem(),
            ca_pem: added.ca_certificate_pem,
        };
        Partner::connect(id, &self.url, bundle).await
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The environment variable naming the PostgreSQL server tests may use (`.ci/run` sets it).
pub const POSTGRES_ENV: &str = "RELAIS_TEST_POSTGRES_URL";

/// Where a test hub keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file in the hub's temporary data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server at this URL, dropped after the test.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `RELAIS_TEST_POSTGRES_URL` is set; otherwise says loudly that the
    /// PostgreSQL run of `test` does not happen.
    pub fn postgres(test: &str) -> Option<Backend> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!(
                    "NOT RUN on PostgreSQL: {test} (set {POSTGRES_ENV}, e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                );
                None
            }
        }
    }
}

/// A database created for one test on the PostgreSQL server, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create(server_url: &str) -> TestDatabase {
        use sqlx::Connection;
        let name = format!("relais_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(server_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let base = server_url
            .rsplit_once('/')
            .map_or(server_url, |(base, _)| base);
        TestDatabase {
            url: format!("{base}/{name}"),
            admin_url: server_url.to_string(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime we may block: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestHub {
    /// A hub on a fresh SQLite database.
    pub async fn start() -> TestHub {
        Self::start_on(Backend::Sqlite).await
    }

    /// A hub on a fresh database of `backend`.
    pub async fn start_on(backend: Backend) -> TestHub {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = config_for(dir.path());
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(server) => {
                let db = TestDatabase::create(&server).await;
                config.database_url = db.url.clone();
                config.store.pool_size = 4;
                Some(db)
            }
        };
        Self::start_with(config, dir, database).await
    }

    /// A hub with this configuration, its data directory and (PostgreSQL) its database.
    pub async fn start_with(
        config: relais_hub::Config,
        dir: tempfile::TempDir,
        database: Option<TestDatabase>,
    ) -> TestHub {
        Self::start_with_clock(config, dir, database, Default::default()).await
    }

    /// A hub whose days pass when the test says (`clock.advance_days`).
    pub async fn start_with_clock(
        config: relais_hub::Config,
        dir: tempfile::TempDir,
        database: Option<TestDatabase>,
        clock: std::sync::Arc<relais_hub::domain::ShiftedClock>,
    ) -> TestHub {
        let hub = relais_hub::start_with_clock(config.clone(), clock.clone())
            .await
            .expect("hub starts");
        let admin_bundle = Bundle::read(&hub.tls.admin_bundle).expect("admin bundle");
        let admin = AdminServiceClient::new(
            relais_hub::cli::connect::channel(&hub.url(), &admin_bundle)
                .await
                .expect("admin connects"),
        );
        TestHub {
            hub,
            dir,
            admin,
            clock,
            config,
            database,
        }
    }

    /// Two replicas on one fresh PostgreSQL database, sharing the CA and the matching key;
    /// `None` (the test says it is skipped) without PostgreSQL.
    pub async fn two_replicas(test: &str) -> Option<(TestHub, TestHub)> {
        let Some(Backend::Postgres(server)) = Backend::postgres(test) else {
            return None;
        };
        let db = TestDatabase::create(&server).await;
        let url = db.url.clone();
        let configure = |dir: &tempfile::TempDir| {
            let mut config = config_for(dir.path());
            config.database_url = url.clone();
            config.store.pool_size = 4;
            config
        };
        let dir_a = tempfile::tempdir().expect("temporary directory");
        let a = TestHub::start_with(configure(&dir_a), dir_a, Some(db)).await;
        let dir_b = tempfile::tempdir().expect("temporary directory");
        share_identity(a.dir.path(), dir_b.path());
        let b = TestHub::start_with(configure(&dir_b), dir_b, None).await;
        Some((a, b))
    }

    /// Stops the hub and starts it again on the same data and database, at the same time.
    pub async fn restart(self) -> TestHub {
        let TestHub {
            hub,
            dir,
            clock,
            config,
            database,
            ..
        } = self;
        hub.shutdown().await.expect("hub stops");
        Self::start_with_clock(config, dir, database, clock).await
    }

    pub fn url(&self) -> String {
        self.hub.url()
    }

    /// Registers a partner through the admin API and returns it connected with its own bundle.
    pub async fn partner(&self, id: &str, kind: pb::PartnerKind) -> Partner {
        self.partner_in(id, kind, &["31483"]).await
    }

    /// A partner serving `territory` (commune or département codes).
    pub async fn partner_in(&self, id: &str, kind: pb::PartnerKind, territory: &[&str]) -> Partner {
        self.partner_named(id, kind, &format!("Partner {id}"), territory)
            .await
    }

    /// A partner with its display name (what the person's documents print).
    pub async fn partner_named(
        &self,
        id: &str,
        kind: pb::PartnerKind,
        name: &str,
        territory: &[&str],
    ) -> Partner {
        let (key, csr_pem) = relais_hub::pki::new_key_and_csr(id).expect("csr");
        let response = self
            .admin
            .clone()
            .add_partner(pb::AddPartnerRequest {
                id: id.to_string(),
                kind: kind as i32,
                name: name.to_string(),
                territory: territory.iter().map(ToString::to_string).collect(),
                cog_vintage: 0,
                csr_pem,
                request_id: new_request_id(),
            })
            .await
            .expect("partner added")
            .into_inner();
        let bundle = Bundle {
            cert_pem: response.certificate_pem,
            key_pem: key.serialize_pem(),
            ca_pem: response.ca_certificate_pem,
        };
        Partner::connect(id, &self.url(), bundle).await
    }

    /// Where a bundle for `id` would be written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A partner's clients, connected over mTLS with its own certificate.
#[derive(Clone)]
pub struct Partner {
    pub id: String,
    pub bundle: Bundle,
    pub persons: PersonServiceClient<Channel>,
    pub flags: FlagServiceClient<Channel>,
    pub cases: CaseServiceClient<Channel>,
    pub sync: SyncServiceClient<Channel>,
    pub consent: ConsentServiceClient<Channel>,
    pub territory: TerritoryServiceClient<Channel>,
}

impl Partner {
    pub async fn connect(id: &str, url: &str, bundle: Bundle) -> Partner {
        let channel = relais_hub::cli::connect::channel(url, &bundle)
            .await
            .expect("partner connects");
        Partner {
            id: id.to_string(),
            bundle,
            persons: PersonServiceClient::new(channel.clone()),
            flags: FlagServiceClient::new(channel.clone()),
            cases: CaseServiceClient::new(channel.clone()),
            sync: SyncServiceClient::new(channel.clone()),
            consent: ConsentServiceClient::new(channel.clone()),
            territory: TerritoryServiceClient::new(channel),
        }
    }

    /// Links `local_id` alone (no traits), and says whether the hub took it.
    pub async fn try_link_local(&self, local_id: &str) -> Result<(), tonic::Status> {
        self.persons
            .clone()
            .link_person(pb::LinkPersonRequest {
                context: ctx(),
                local_id: local_id.into(),
                pivot: None,
                person_id: String::new(),
                request_id: new_request_id(),
            })
            .await
            .map(|_| ())
    }

    /// The next event of a subscription (within 10 s), skipping the hub's other messages.
    pub async fn next_event(
        stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    ) -> pb::ChangeEvent {
        use futures::StreamExt;
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                .await
                .expect("an event arrives")
                .expect("the stream is open")
                .expect("no error");
            if let Some(pb::subscribe_response::Payload::Event(e)) = message.payload {
                return e;
            }
        }
    }

    /// Opens a feed subscription after `after`.
    pub async fn subscribe(
        &self,
        after: u64,
    ) -> Result<tonic::Streaming<pb::SubscribeResponse>, tonic::Status> {
        self.sync
            .clone()
            .subscribe(pb::SubscribeRequest {
                context: ctx(),
                after_position: after,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Links `local_id` to the person with these traits.
    pub async fn link(&self, local_id: &str, pivot: pb::PivotIdentity) -> pb::LinkPersonResponse {
        self.persons
            .clone()
            .link_person(pb::LinkPersonRequest {
                context: ctx(),
                local_id: local_id.into(),
                pivot: Some(pivot),
                person_id: String::new(),
                request_id: new_request_id(),
            })
            .await
            .expect("link")
            .into_inner()
    }

    pub async fn raise(&self, local_id: &str, code: &str) -> pb::Flag {
        self.flags
            .clone()
            .raise_flag(pb::RaiseFlagRequest {
                context: ctx(),
                person: Some(local(local_id)),
                code: code.into(),
                note: String::new(),
                valid_until: String::new(),
                request_id: new_request_id(),
                ..Default::default()
            })
            .await
            .expect("raise flag")
            .into_inner()
            .flag
            .expect("flag")
    }

    /// What the counter sees of the person (active items); the raw answer.
    pub async fn summary_of(
        &self,
        local_id: &str,
    ) -> Result<pb::GetPersonSummaryResponse, tonic::Status> {
        self.persons
            .clone()
            .get_person_summary(pb::GetPersonSummaryRequest {
                context: ctx(),
                person: Some(local(local_id)),
                include_history: false,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The person's flags as this partner may list them (the first page).
    pub async fn flags_of(&self, local_id: &str, include_retracted: bool) -> Vec<pb::Flag> {
        self.flags
            .clone()
            .list_flags(pb::ListFlagsRequest {
                context: ctx(),
                person: Some(local(local_id)),
                include_retracted,
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .expect("list flags")
            .into_inner()
            .flags
    }

    /// Raises a flag qualified `how` (with `evidence` when attested); the raw answer.
    pub async fn qualify(
        &self,
        local_id: &str,
        code: &str,
        how: pb::Qualification,
        evidence: &str,
    ) -> Result<pb::RaiseFlagResponse, tonic::Status> {
        self.flags
            .clone()
            .raise_flag(pb::RaiseFlagRequest {
                context: ctx(),
                person: Some(local(local_id)),
                code: code.into(),
                qualification: how as i32,
                evidence: evidence.into(),
                request_id: new_request_id(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn open_case(&self, local_id: &str, procedure: &str) -> pb::Case {
        self.cases
            .clone()
            .open_case(pb::OpenCaseRequest {
                context: ctx(),
                person: Some(local(local_id)),
                procedure: procedure.into(),
                missing_documents: vec![],
                due_date: String::new(),
                initial_status: 0,
                request_id: new_request_id(),
                theme: String::new(),
            })
            .await
            .expect("open case")
            .into_inner()
            .r#case
            .expect("case")
    }

    /// Moves a case; the raw result, for tests of refusals.
    pub async fn try_move(
        &self,
        case: &pb::Case,
        to: pb::CaseStatus,
    ) -> Result<pb::TransitionCaseResponse, tonic::Status> {
        let mut request = transition(case, to);
        if to == pb::CaseStatus::Refused {
            request.reason = "pièces non conformes".into();
        }
        self.cases
            .clone()
            .transition_case(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn move_case(&self, case: &pb::Case, to: pb::CaseStatus) -> pb::Case {
        self.try_move(case, to)
            .await
            .unwrap_or_else(|s| panic!("move to {to:?}: {s:?}"))
            .r#case
            .expect("case")
    }

    /// Records, at this partner's counter, the person's consent that `grantee` receives
    /// `categories` for `purposes`.
    pub async fn grant(
        &self,
        local_id: &str,
        grantee: pb::grantee::Grantee,
        categories: &[&str],
        purposes: &[pb::Purpose],
    ) -> pb::Consent {
        self.consent
            .clone()
            .grant_consent(consent_request(local_id, grantee, categories, purposes))
            .await
            .expect("grant consent")
            .into_inner()
            .consent
            .expect("consent")
    }

    /// Every event of the feed after `after`, until the hub says it caught up.
    pub async fn feed_until_caught_up(&self, after: u64) -> Vec<pb::ChangeEvent> {
        self.feed_open_until_caught_up(after).await.0
    }

    /// The events up to the head, and the subscription, still open.
    pub async fn feed_open_until_caught_up(
        &self,
        after: u64,
    ) -> (
        Vec<pb::ChangeEvent>,
        tonic::Streaming<pb::SubscribeResponse>,
    ) {
        let mut stream = self
            .sync
            .clone()
            .subscribe(pb::SubscribeRequest {
                context: ctx(),
                after_position: after,
            })
            .await
            .expect("subscribe")
            .into_inner();
        let mut events = Vec::new();
        while let Some(message) = stream.message().await.expect("feed message") {
            match message.payload {
                Some(pb::subscribe_response::Payload::Event(e)) => events.push(e),
                Some(pb::subscribe_response::Payload::CaughtUp(_)) => break,
                None => {}
            }
        }
        (events, stream)
    }
}

/// A consent request signed on paper, with the notice of 2026, on the basis of consent.
pub fn consent_request(
    local_id: &str,
    grantee: pb::grantee::Grantee,
    categories: &[&str],
    purposes: &[pb::Purpose],
) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        context: ctx(),
        person: Some(local(local_id)),
        grantee: Some(pb::Grantee {
            grantee: Some(grantee),
        }),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        purposes: purposes.iter().map(|p| *p as i32).collect(),
        legal_basis: pb::LegalBasis::Consent as i32,
        method: pb::CollectionMethod::SignedPaper as i32,
        witness: String::new(),
        notice_version: "notice-2026-01".into(),
        notice_language: "fr".into(),
        evidence_ref: "scan-0001".into(),
        expires_at: None,
        request_id: new_request_id(),
        channel: pb::CollectionChannel::Guichet as i32,
    }
}

/// Every data category of flags (the taxonomy's categories).
pub const FLAG_CATEGORIES: [&str; 8] = [
    "mobility",
    "digital",
    "language",
    "administrative",
    "social",
    "financial",
    "housing",
    "health",
];

/// The grantee "every partner of this kind".
pub fn kind(k: pb::PartnerKind) -> pb::grantee::Grantee {
    pb::grantee::Grantee::Kind(k as i32)
}

/// The grantee "this partner".
pub fn partner(id: &str) -> pb::grantee::Grantee {
    pb::grantee::Grantee::Partner(id.to_string())
}

pub fn transition(case: &pb::Case, to: pb::CaseStatus) -> pb::TransitionCaseRequest {
    pb::TransitionCaseRequest {
        context: ctx(),
        case_id: case.id.clone(),
        expected_version: case.version,
        to_status: to as i32,
        reason: String::new(),
        missing_documents: None,
        duplicate_of: String::new(),
        redirect_to_partner: String::new(),
        redirect_procedure: String::new(),
        request_id: new_request_id(),
    }
}

pub fn ctx() -> Option<pb::RequestContext> {
    Some(pb::RequestContext {
        purpose: pb::Purpose::Accompagnement as i32,
        agent: "agent-1".into(),
    })
}

pub fn local(id: &str) -> pb::PersonRef {
    pb::PersonRef {
        r#ref: Some(pb::person_ref::Ref::LocalId(id.into())),
    }
}

pub fn person(id: &str) -> pb::PersonRef {
    pb::PersonRef {
        r#ref: Some(pb::person_ref::Ref::PersonId(id.into())),
    }
}

pub fn pivot(family: &str, given: &str, birth_date: &str, place: &str) -> pb::PivotIdentity {
    pb::PivotIdentity {
        family_name: family.into(),
        first_given_name: given.into(),
        birth_date: birth_date.into(),
        birth_place_cog: place.into(),
    }
}

pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The fields named by a status's `google.rpc.BadRequest` details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Runs each listed `async fn(Backend)` as two tests: on SQLite, and on PostgreSQL when
/// `RELAIS_TEST_POSTGRES_URL` is set (otherwise the PostgreSQL test says it was not run).
/// This is the conformance suite: one behaviour, written once, checked on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(relais_tests::Backend::Sqlite).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = relais_tests::Backend::postgres(stringify!($name)) {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// Headless Chromium, for the printable documents: `RELAIS_TEST_CHROMIUM`, or `chromium` on
/// the PATH (Debian's package; `.ci/run` installs it). `None` when neither is there.
pub fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RELAIS_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// A page as Chromium prints it.
pub struct Printed {
    /// The first A4 screen (794 × 1123 CSS pixels), as PNG.
    pub png: Vec<u8>,
    pub pdf: Vec<u8>,
}

impl Printed {
    /// The share of the first screen's pixels that are not near-white: ink on the page.
    pub fn ink(&self) -> f64 {
        let decoder = png::Decoder::new(std::io::Cursor::new(&self.png));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let channels = info.color_type.samples();
        let pixels = buf[..info.buffer_size()].chunks(channels);
        let total = pixels.len().max(1);
        let inked = pixels
            .filter(|p| p.iter().take(3).any(|&v| v < 200))
            .count();
        inked as f64 / total as f64
    }

    /// The screenshot's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let decoder = png::Decoder::new(std::io::Cursor::new(&self.png));
        let reader = decoder.read_info().expect("a PNG");
        let info = reader.info();
        (info.width, info.height)
    }

    /// How many pages the PDF has, and whether each is A4 (595 × 842 points).
    pub fn a4_pages(&self) -> (usize, bool) {
        let text = String::from_utf8_lossy(&self.pdf);
        // Chromium gives each page its own media box.
        let boxes: Vec<&str> = text
            .match_indices("/MediaBox [")
            .map(|(i, _)| &text[i + 11..(i + 60).min(text.len())])
            .collect();
        let a4 = !boxes.is_empty()
            && boxes.iter().all(|b| {
                let n: Vec<f64> = b
                    .split([' ', ']'])
                    .filter_map(|x| x.parse().ok())
                    .take(4)
                    .collect();
                n.len() == 4 && (n[2] - 595.0).abs() < 2.0 && (n[3] - 842.0).abs() < 2.0
            });
        (boxes.len(), a4)
    }
}

/// Renders `html` in headless Chromium: a PNG of the first A4 screen and the printed PDF.
pub fn print_a4(chromium: &Path, html: &str) -> Printed {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("page.html");
    std::fs::write(&page, html).expect("page written");
    let url = format!("file://{}", page.display());
    let run = |args: &[String]| {
        let out = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                &format!("--user-data-dir={}", dir.path().join("profile").display()),
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let png = dir.path().join("page.png");
    let pdf = dir.path().join("page.pdf");
    run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=794,1123".into(),
    ]);
    run(&[
        format!("--print-to-pdf={}", pdf.display()),
        "--no-pdf-header-footer".into(),
    ]);
    Printed {
        png: std::fs::read(&png).expect("png"),
        pdf: std::fs::read(&pdf).expect("pdf"),
    }
}
