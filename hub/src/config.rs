//! Configuration: one TOML file (`--config`), every key documented in
//! `deploy/hub.example.toml`, unknown keys rejected; each key can be overridden by an
//! environment variable `RELAIS_<SECTION>_<KEY>` (`RELAIS_LISTEN`, `RELAIS_TLS_CA_CERT`).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, the TLS files and the matching key live.
    pub data_dir: PathBuf,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address of a plaintext gRPC health service (`grpc.health.v1` alone: SERVING or
    /// NOT_SERVING, nothing else), for load balancers and Kubernetes probes, which cannot
    /// present a client certificate. Empty: none.
    pub health_listen: String,
    /// Database URL; empty means `sqlite://<data_dir>/relais.db`.
    pub database_url: String,
    /// The matching key's file; empty means `<data_dir>/matching.key`, created on first start.
    /// A file named here must exist (replicas share one, from a secret).
    pub matching_key: String,
    /// DNS names and IP addresses written into a generated server certificate.
    pub server_names: Vec<String>,
    /// Validity of the partner certificates the hub signs, in days.
    pub certificate_validity_days: i64,
    /// Vintage of the INSEE COG the partners' territory codes refer to.
    pub cog_vintage: i32,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub feed: FeedConfig,
    pub audit: AuditConfig,
    pub store: crate::store::StoreConfig,
    pub expiry: ExpiryConfig,
    pub flags: FlagsConfig,
    pub referrals: ReferralsConfig,
    pub limits: LimitsConfig,
    pub shutdown: ShutdownConfig,
    pub telemetry: TelemetryConfig,
    pub console: ConsoleConfig,
    pub territory: TerritoryConfig,
}

/// Who answers for the data, as the person's documents (receipt, mandate, access report) print
/// it: the controller, its data protection officer, and where a person withdraws an accord.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerritoryConfig {
    /// The territory's name, in the documents' headings.
    pub name: String,
    /// The controller (responsable du traitement).
    pub controller: String,
    /// Its postal address, on one line.
    pub controller_address: String,
    /// Its telephone and e-mail, on one line.
    pub controller_contact: String,
    /// The data protection officer (délégué à la protection des données): name or office.
    pub dpo: String,
    /// How to reach the DPO (e-mail, postal address), on one line.
    pub dpo_contact: String,
    /// Where a person withdraws an accord or ends a mandate, completing "Pour retirer un
    /// accord, adressez-vous …".
    pub withdraw: String,
}

impl Default for TerritoryConfig {
    fn default() -> Self {
        Self {
            name: "Comminges".into(),
            controller: "Communauté de communes Cœur et Coteaux du Comminges".into(),
            controller_address: String::new(),
            controller_contact: String::new(),
            dpo: "le délégué à la protection des données de la communauté de communes".into(),
            dpo_contact: String::new(),
            withdraw: "à n'importe quel guichet partenaire, au bus France Services, par \
                       téléphone ou par courrier à la communauté de communes"
                .into(),
        }
    }
}

impl TerritoryConfig {
    /// What the documents would lack: the keys a deployment must still set.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("territory.controller_address", &self.controller_address),
            ("territory.controller_contact", &self.controller_contact),
            ("territory.dpo_contact", &self.dpo_contact),
        ]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| k)
        .collect()
    }
}

/// The administrators' console: HTTPS (the hub's server certificate), named accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address the console listens on (`127.0.0.1:8443`); empty: no console.
    pub listen: String,
    /// Minutes without a request after which a session ends.
    pub session_idle_minutes: u64,
    /// Hours after which a session ends however active.
    pub session_max_hours: u64,
    /// Failed log-ins in a row that lock an account.
    pub max_failures: u32,
    /// Minutes a locked account stays locked.
    pub lockout_minutes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            session_idle_minutes: 30,
            session_max_hours: 12,
            max_failures: 5,
            lockout_minutes: 15,
        }
    }
}

/// What one partner, one connection or one client may take of the hub, so that none can starve
/// the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections at most (TLS handshakes included). Kept below the process's open-files
    /// limit, which the hub raises to its hard limit at start.
    pub max_connections: usize,
    /// TLS handshakes in progress at most; past it the oldest handshake of the address holding
    /// the most is dropped, so idle connections from one client cannot lock others out.
    pub max_pending_handshakes: usize,
    /// Seconds a client has to complete its TLS handshake.
    pub handshake_timeout_seconds: u64,
    /// Connections one client certificate may hold at once (a certificate the hub refuses —
    /// unregistered, revoked, expired — two).
    pub max_connections_per_certificate: usize,
    /// Concurrent calls (HTTP/2 streams) per connection.
    pub max_concurrent_streams: u32,
    /// Calls of one partner being answered at once, all its connections together (a call
    /// counts until its answer starts: a feed subscription counts only while it opens).
    pub max_calls_in_flight_per_partner: usize,
    /// Calls being answered at once, all callers together.
    pub max_calls_in_flight: usize,
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Feed subscriptions open at once per partner, all its connections together.
    pub max_subscriptions_per_partner: usize,
    /// Seconds a call may take at most (a client's shorter `grpc-timeout` wins); feed
    /// subscriptions are not cut.
    pub request_timeout_seconds: u64,
    /// Largest response message, in bytes.
    pub max_message_bytes: usize,
    /// Calls per second and burst, by partner kind (token bucket per partner).
    pub rate: std::collections::BTreeMap<String, Rate>,
    /// Per-partner overrides of `rate`, by partner id.
    pub partners: std::collections::BTreeMap<String, Rate>,
    /// The administrators' calls, all administrator certificates together.
    pub admin: Rate,
}

/// A token bucket: `per_second` calls on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let rate = |per_second, burst| Rate { per_second, burst };
        Self {
            max_connections: 2048,
            max_pending_handshakes: 256,
            handshake_timeout_seconds: 10,
            max_connections_per_certificate: 32,
            max_concurrent_streams: 256,
            max_calls_in_flight_per_partner: 64,
            max_calls_in_flight: 512,
            max_request_bytes: 1024 * 1024,
            max_subscriptions_per_partner: 1000,
            request_timeout_seconds: 30,
            max_message_bytes: 4 * 1024 * 1024,
            rate: [
                ("communaute_de_communes", rate(100, 300)),
                ("mairie", rate(50, 150)),
                ("departement", rate(200, 600)),
                ("sous_prefecture", rate(50, 150)),
                ("association", rate(20, 60)),
                ("operateur", rate(200, 600)),
            ]
            .into_iter()
            .map(|(k, r)| (k.to_string(), r))
            .collect(),
            partners: Default::default(),
            admin: rate(100, 500),
        }
    }
}

impl LimitsConfig {
    /// The bucket of a partner: its override, else its kind's.
    pub fn rate_for(&self, partner: &str, kind: crate::domain::partner::PartnerKind) -> Rate {
        self.partners
            .get(partner)
            .or_else(|| self.rate.get(kind.as_str()))
            .copied()
            .unwrap_or(Rate {
                per_second: 50,
                burst: 150,
            })
    }

    /// The same limits for every kind (tests and benchmarks that drive one partner hard).
    pub fn with_rate(mut self, per_second: u32, burst: u32) -> Self {
        for r in self.rate.values_mut() {
            *r = Rate { per_second, burst };
        }
        self.admin = Rate { per_second, burst };
        self
    }
}

/// Stopping on SIGTERM or SIGINT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds the hub waits for calls in flight after it stops accepting, before it exits
    /// anyway. 1 to 300.
    pub timeout_seconds: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 10,
        }
    }
}

/// OpenTelemetry: traces and metrics over OTLP/gRPC when an endpoint is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint of a collector (`http://127.0.0.1:4317`); empty exports nothing.
    pub otlp_endpoint: String,
    /// `service.name` of the hub's telemetry.
    pub service_name: String,
    /// Seconds between two metric exports.
    pub metrics_seconds: u64,
    /// Fraction of calls traced, 0.0 to 1.0, by trace id (the same ratio on the connectors
    /// keeps whole traces).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "relais-hub".into(),
            metrics_seconds: 10,
            sample_ratio: 1.0,
        }
    }
}

/// Fiches navettes: how long a recipient has to answer, and how long after that an unanswered
/// referral is kept open.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferralsConfig {
    /// Days from sending to the reply deadline (a sender may shorten it). 1 to 365.
    pub reply_days: u32,
    /// Days after the deadline an unanswered referral expires. 1 to 365.
    pub expire_after_days: u32,
}

impl Default for ReferralsConfig {
    fn default() -> Self {
        Self {
            reply_days: 10,
            expire_after_days: 30,
        }
    }
}

/// Qualified difficulties: when a flag is to be checked again with the person, by how it is
/// known (a request may give its own review day).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlagsConfig {
    /// Days after its qualification a declared difficulty shows as "à revoir". 1 to 3660.
    pub review_days_declared: u32,
    /// Days for a difficulty an agent observed.
    pub review_days_observed: u32,
    /// Days for an attested difficulty (a document, another service's decision).
    pub review_days_attested: u32,
}

impl Default for FlagsConfig {
    fn default() -> Self {
        Self {
            review_days_declared: 365,
            review_days_observed: 365,
            review_days_attested: 730,
        }
    }
}

impl FlagsConfig {
    /// Days until review for a qualification.
    pub fn review_days(&self, how: crate::domain::flag::Qualification) -> u32 {
        use crate::domain::flag::Qualification;
        match how {
            Qualification::Declared => self.review_days_declared,
            Qualification::Observed => self.review_days_observed,
            Qualification::Attested => self.review_days_attested,
        }
    }
}

/// The expiry scheduler: consents, mandates and flags that run out are ended (redactions
/// sent) by the hub itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiryConfig {
    /// Seconds between two runs: an expiry is applied at most this late (reads stop at once
    /// whatever the interval). 1 to 60.
    pub check_seconds: u64,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self { check_seconds: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days an audit entry is kept (CNIL guidance for access logs: six months to a year).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 365,
        }
    }
}

/// Paths of provided TLS files; empty means the development files under `data_dir/tls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `relais_hub=debug,info`); `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// Events read from the store per query when a subscriber catches up.
    pub batch_size: u32,
    /// Events buffered per subscriber before the reader waits for the network (HTTP/2 flow
    /// control then pauses it); bounds the memory a slow subscriber can hold.
    pub subscriber_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./relais-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            health_listen: String::new(),
            database_url: String::new(),
            matching_key: String::new(),
            server_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            certificate_validity_days: 365,
            cog_vintage: 2026,
            tls: TlsConfig::default(),
            expiry: ExpiryConfig::default(),
            log: LogConfig::default(),
            feed: FeedConfig::default(),
            audit: AuditConfig::default(),
            store: crate::store::StoreConfig::default(),
            flags: FlagsConfig::default(),
            referrals: ReferralsConfig::default(),
            limits: LimitsConfig::default(),
            shutdown: ShutdownConfig::default(),
            telemetry: TelemetryConfig::default(),
            console: ConsoleConfig::default(),
            territory: TerritoryConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            subscriber_buffer: 64,
        }
    }
}

impl Config {
    /// Reads the file (if any), then applies `RELAIS_*` environment overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    pub fn load_with_env(path: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading configuration {}", path.display()))?;
                // The file alone first: an unknown key or a wrong type is shown at its line and
                // column, with the line itself.
                if let Err(e) = toml::from_str::<Config>(&text) {
                    anyhow::bail!("invalid configuration {}: {e}", path.display());
                }
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing configuration {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("RELAIS_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            if let Some((section, field, default)) = find_key(&defaults, &key) {
                let value = env_value(default, value)
                    .with_context(|| format!("environment variable {name}"))?;
                match section {
                    None => {
                        table.insert(field, value);
                    }
                    Some(section) => {
                        let entry = table
                            .entry(section.clone())
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                        let toml::Value::Table(t) = entry else {
                            anyhow::bail!("`{section}` must be a table");
                        };
                        t.insert(field, value);
                    }
                }
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.console.listen.is_empty() {
            self.console
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| anyhow::anyhow!("console.listen `{}`: {e}", self.console.listen))?;
        }
        anyhow::ensure!(
            (1..=480).contains(&self.console.session_idle_minutes),
            "console.session_idle_minutes must be between 1 and 480"
        );
        anyhow::ensure!(
            (1..=24).contains(&self.console.session_max_hours),
            "console.session_max_hours must be between 1 and 24"
        );
        anyhow::ensure!(
            (1..=20).contains(&self.console.max_failures),
            "console.max_failures must be between 1 and 20"
        );
        anyhow::ensure!(
            (1..=1440).contains(&self.console.lockout_minutes),
            "console.lockout_minutes must be between 1 and 1440"
        );
        anyhow::ensure!(
            self.certificate_validity_days > 0,
            "certificate_validity_days must be positive"
        );
        anyhow::ensure!(self.feed.batch_size > 0, "feed.batch_size must be positive");
        anyhow::ensure!(
            self.feed.subscriber_buffer > 0,
            "feed.subscriber_buffer must be positive"
        );
        anyhow::ensure!(
            (1..=60).contains(&self.expiry.check_seconds),
            "expiry.check_seconds must be between 1 and 60"
        );
        for (key, days) in [
            ("declared", self.flags.review_days_declared),
            ("observed", self.flags.review_days_observed),
            ("attested", self.flags.review_days_attested),
        ] {
            anyhow::ensure!(
                (1..=3660).contains(&days),
                "flags.review_days_{key} must be between 1 and 3660"
            );
        }
        anyhow::ensure!(
            (1..=365).contains(&self.referrals.reply_days),
            "referrals.reply_days must be between 1 and 365"
        );
        anyhow::ensure!(
            (1..=365).contains(&self.referrals.expire_after_days),
            "referrals.expire_after_days must be between 1 and 365"
        );
        anyhow::ensure!(
            !self.server_names.is_empty(),
            "server_names cannot be empty"
        );
        anyhow::ensure!(
            self.health_listen.is_empty() || self.health_listen.parse::<SocketAddr>().is_ok(),
            "health_listen must be an address and port (127.0.0.1:7444) or empty"
        );
        let l = &self.limits;
        anyhow::ensure!(
            l.max_connections >= 16,
            "limits.max_connections must be at least 16"
        );
        anyhow::ensure!(
            (1..=l.max_connections).contains(&l.max_pending_handshakes),
            "limits.max_pending_handshakes must be between 1 and limits.max_connections"
        );
        anyhow::ensure!(
            (1..=120).contains(&l.handshake_timeout_seconds),
            "limits.handshake_timeout_seconds must be between 1 and 120"
        );
        anyhow::ensure!(
            l.max_concurrent_streams >= 1,
            "limits.max_concurrent_streams must be positive"
        );
        anyhow::ensure!(
            l.max_connections_per_certificate >= 1,
            "limits.max_connections_per_certificate must be positive"
        );
        anyhow::ensure!(
            l.max_calls_in_flight_per_partner >= 1 && l.max_calls_in_flight >= 1,
            "limits.max_calls_in_flight and max_calls_in_flight_per_partner must be positive"
        );
        anyhow::ensure!(
            (4 * 1024..=64 * 1024 * 1024).contains(&l.max_request_bytes),
            "limits.max_request_bytes must be between 4096 and 67108864"
        );
        anyhow::ensure!(
            l.max_subscriptions_per_partner >= 1,
            "limits.max_subscriptions_per_partner must be positive"
        );
        anyhow::ensure!(
            (1..=3600).contains(&l.request_timeout_seconds),
            "limits.request_timeout_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            (64 * 1024..=64 * 1024 * 1024).contains(&l.max_message_bytes),
            "limits.max_message_bytes must be between 65536 and 67108864"
        );
        for (key, rate) in &l.rate {
            anyhow::ensure!(
                crate::domain::partner::PartnerKind::parse(key).is_some(),
                "limits.rate.{key}: not a partner kind (communaute_de_communes, mairie, departement, sous_prefecture, association, operateur)"
            );
            anyhow::ensure!(
                rate.per_second >= 1 && rate.burst >= 1,
                "limits.rate.{key}: per_second and burst must be positive"
            );
        }
        anyhow::ensure!(
            l.admin.per_second >= 1 && l.admin.burst >= 1,
            "limits.admin: per_second and burst must be positive"
        );
        for (key, rate) in &l.partners {
            anyhow::ensure!(
                rate.per_second >= 1 && rate.burst >= 1,
                "limits.partners.{key}: per_second and burst must be positive"
            );
        }
        anyhow::ensure!(
            (1..=300).contains(&self.shutdown.timeout_seconds),
            "shutdown.timeout_seconds must be between 1 and 300"
        );
        let t = &self.telemetry;
        anyhow::ensure!(
            t.otlp_endpoint.is_empty()
                || t.otlp_endpoint.starts_with("http://")
                || t.otlp_endpoint.starts_with("https://"),
            "telemetry.otlp_endpoint must start with http:// or https:// (an OTLP/gRPC collector, port 4317)"
        );
        anyhow::ensure!(
            (1..=3600).contains(&t.metrics_seconds),
            "telemetry.metrics_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&t.sample_ratio),
            "telemetry.sample_ratio must be between 0.0 and 1.0"
        );
        Ok(())
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("relais.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn tls_paths(&self) -> crate::pki::TlsPaths {
        let mut paths = crate::pki::TlsPaths::in_data_dir(&self.data_dir);
        let pick = |configured: &str, default: &mut PathBuf| {
            if !configured.is_empty() {
                *default = PathBuf::from(configured);
            }
        };
        pick(&self.tls.ca_cert, &mut paths.ca_cert);
        pick(&self.tls.ca_key, &mut paths.ca_key);
        pick(&self.tls.server_cert, &mut paths.server_cert);
        pick(&self.tls.server_key, &mut paths.server_key);
        paths
    }

    pub fn matching_key_path(&self) -> PathBuf {
        if self.matching_key.is_empty() {
            self.data_dir.join("matching.key")
        } else {
            PathBuf::from(&self.matching_key)
        }
    }
}

/// Maps `tls_ca_cert` to (`tls`, `ca_cert`) and `listen` to (none, `listen`), if such a key
/// exists; other `RELAIS_*` variables belong to other programs (the client's `RELAIS_HUB`).
fn find_key<'a>(
    defaults: &'a toml::Table,
    key: &str,
) -> Option<(Option<String>, String, &'a toml::Value)> {
    if let Some(v) = defaults.get(key)
        && !v.is_table()
    {
        return Some((None, key.to_string(), v));
    }
    for (section, v) in defaults {
        if let (toml::Value::Table(t), Some(field)) = (v, key.strip_prefix(&format!("{section}_")))
            && let Some(default) = t.get(field)
        {
            return Some((Some(section.clone()), field.to_string(), default));
        }
    }
    None
}

/// Reads an environment value with the type of the key's default.
fn env_value(default: &toml::Value, raw: &str) -> anyhow::Result<toml::Value> {
    Ok(match default {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .with_context(|| format!("`{raw}` is not a whole number"))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .with_context(|| format!("`{raw}` is not true or false"))?,
        ),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_work_without_a_file() {
        let c = Config::load_with_env(None, &[]).unwrap();
        assert_eq!(c.listen.port(), 7443);
        assert_eq!(c.database_url(), "sqlite://./relais-data/relais.db");
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let err = format!("{:#}", Config::load_with_env(Some(&path), &[]).unwrap_err());
        assert!(err.contains("listen_port"), "{err}");
        std::fs::write(&path, "[tls]\nca_certificate = \"x\"\n").unwrap();
        assert!(Config::load_with_env(Some(&path), &[]).is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[feed]\nbatch_size = 10\n").unwrap();
        let c = Config::load_with_env(
            Some(&path),
            &env(&[
                ("RELAIS_LISTEN", "0.0.0.0:9000"),
                ("RELAIS_FEED_BATCH_SIZE", "20"),
                ("RELAIS_TLS_CA_CERT", "/etc/relais/ca.pem"),
                ("RELAIS_SERVER_NAMES", "hub.example.fr, 10.0.0.1"),
                ("RELAIS_HUB", "https://elsewhere"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.feed.batch_size, 20);
        assert_eq!(c.tls.ca_cert, "/etc/relais/ca.pem");
        assert_eq!(c.server_names, ["hub.example.fr", "10.0.0.1"]);
        let bad = Config::load_with_env(None, &env(&[("RELAIS_FEED_BATCH_SIZE", "many")]));
        assert!(bad.is_err());
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// The documented example is the default configuration, key for key.
    #[test]
    fn the_deploy_example_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hub.example.toml");
        let example = Config::load_with_env(Some(&path), &[]).unwrap();
        let defaults = Config::default();
        assert_eq!(
            toml::Table::try_from(example).unwrap(),
            toml::Table::try_from(defaults).unwrap()
        );
    }
}
