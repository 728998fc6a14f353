//! A connector's profile (`partner.toml`): where the hub is, who the connector is, and its
//! adapter's section. Unknown keys are an error; relative paths are relative to the file.

use anyhow::Context;
use relais_proto::v1 as pb;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The hub's address (`https://hub.relais.cc-comminges.fr:7443`).
    pub hub: String,
    /// The partner's identity bundle, from `relais admin partner add`.
    pub identity: PathBuf,
    /// The connector's own state: cursor, outbox, dead letters.
    pub state_dir: PathBuf,
    /// The connector's pseudonymous agent id, named on every call.
    pub agent: String,
    /// The purpose of the connector's calls (`accompagnement`, `instruction`…).
    pub purpose: String,
    /// Seconds between two readings of the partner's system.
    #[serde(default = "poll")]
    pub poll_seconds: u64,
    /// Seconds between two readings of the partner's work queue (its priorities written beside
    /// the statuses; each reading is audited for each person on it); 0: never, at least 300.
    #[serde(default = "queue")]
    pub queue_seconds: u64,
    /// OpenTelemetry (`[telemetry]`, the hub's keys): the trace context of each write sent,
    /// and the outbox, dead-letter and cursor-lag gauges, over OTLP/gRPC. Absent: nothing.
    #[serde(default = "telemetry")]
    pub telemetry: relais_hub::config::TelemetryConfig,
    /// The adapter: `csv`, `http` or `sql`; its section has the same name.
    #[serde(rename = "adapter")]
    adapter_name: String,
    csv: Option<relais_adapter_csv::CsvConfig>,
    http: Option<relais_adapter_http::HttpConfig>,
    sql: Option<relais_adapter_sql::SqlConfig>,
    /// The adapter's configuration, from its section.
    #[serde(skip)]
    pub adapter: Option<AdapterConfig>,
}

fn telemetry() -> relais_hub::config::TelemetryConfig {
    relais_hub::config::TelemetryConfig {
        service_name: "relais-connector".into(),
        ..Default::default()
    }
}

fn poll() -> u64 {
    10
}

fn queue() -> u64 {
    3600
}

#[derive(Debug, Clone)]
pub enum AdapterConfig {
    Csv(Box<relais_adapter_csv::CsvConfig>),
    Http(Box<relais_adapter_http::HttpConfig>),
    Sql(Box<relais_adapter_sql::SqlConfig>),
}

impl ConnectorConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: ConnectorConfig =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut config.identity);
        rebase(&mut config.state_dir);
        config.adapter = Some(match (config.adapter_name.as_str(), config.csv.take()) {
            ("csv", Some(mut c)) => {
                c.check()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                rebase(&mut c.drop_dir);
                rebase(&mut c.processed_dir);
                rebase(&mut c.status_dir);
                AdapterConfig::Csv(Box::new(c))
            }
            ("csv", None) => anyhow::bail!("adapter `csv` needs a [csv] section"),
            ("http", _) => match config.http.take() {
                Some(h) => {
                    h.validate()?;
                    AdapterConfig::Http(Box::new(h))
                }
                None => anyhow::bail!("adapter `http` needs an [http] section"),
            },
            ("sql", _) => match config.sql.take() {
                Some(q) => AdapterConfig::Sql(Box::new(q)),
                None => anyhow::bail!("adapter `sql` needs a [sql] section"),
            },
            (other, _) => {
                anyhow::bail!("unknown adapter `{other}` (this version has: csv, http, sql)")
            }
        });
        config.purpose()?;
        if (1..300).contains(&config.queue_seconds) {
            anyhow::bail!(
                "{}: queue_seconds = {} — at least 300 (each reading of the work queue is audited for every person on it), or 0 for never",
                path.display(),
                config.queue_seconds
            );
        }
        Ok(config)
    }

    pub fn purpose(&self) -> anyhow::Result<pb::Purpose> {
        pb::Purpose::from_str_name(&format!("PURPOSE_{}", self.purpose.to_ascii_uppercase()))
            .filter(|p| *p != pb::Purpose::Unspecified)
            .with_context(|| format!("unknown purpose `{}`", self.purpose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped profile loads, and its sample export reads without a bad row.
    #[test]
    fn the_shipped_profiles_load_and_their_samples_parse() {
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
        let mut seen = 0;
        for entry in std::fs::read_dir(&profiles).unwrap() {
            let dir = entry.unwrap().path();
            let config = ConnectorConfig::load(&dir.join("partner.toml")).unwrap();
            let Some(AdapterConfig::Csv(csv)) = &config.adapter else {
                seen += 1;
                continue;
            };
            for sample in std::fs::read_dir(&csv.drop_dir).unwrap() {
                let bytes = std::fs::read(sample.unwrap().path()).unwrap();
                let parsed = relais_adapter_csv::parse::parse(&bytes, csv);
                assert_eq!(parsed.rejected, None, "{}", dir.display());
                assert!(parsed.bad.is_empty(), "{}: {:?}", dir.display(), parsed.bad);
                assert!(parsed.rows >= 2);
                assert!(
                    parsed.writes.len() as u64 > parsed.rows,
                    "flags were raised"
                );
            }
            seen += 1;
        }
        assert!(seen >= 2);
    }

    /// What a profile gets wrong stops the connector at start, naming the place: an unknown
    /// flag code with its line, a profile mapping some pivot columns but not all.
    #[test]
    fn profiles_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let head = "hub = \"h\"\nidentity = \"i\"\nstate_dir = \"s\"\nagent = \"a\"\npurpose = \"accompagnement\"\nadapter = \"csv\"\n[csv]\ndrop_dir = \"d\"\nprocessed_dir = \"p\"\nstatus_dir = \"s\"\n";
        std::fs::write(
            &path,
            format!("{head}[csv.columns]\nlocal_id = \"id\"\nlocal_id_only = true\n[[csv.flags]]\ncolumn = \"Sans internet\"\ncode = \"SANS_INTRNET\"\n"),
        )
        .unwrap();
        let e = format!("{:#}", ConnectorConfig::load(&path).unwrap_err());
        assert!(e.contains("line 16") && e.contains("SANS_INTRNET"), "{e}");
        std::fs::write(
            &path,
            format!("{head}[csv.columns]\nlocal_id = \"id\"\nfamily_name = \"Nom\"\ngiven_name = \"Prénom\"\nbirth_place = \"Lieu\"\n"),
        )
        .unwrap();
        let e = format!("{:#}", ConnectorConfig::load(&path).unwrap_err());
        assert!(
            e.contains("maps 3 of the 4") && e.contains("local_id_only"),
            "{e}"
        );
        std::fs::write(&path, format!("{head}[csv.columns]\nlocal_id = \"id\"\n")).unwrap();
        assert!(
            ConnectorConfig::load(&path).is_err(),
            "no pivot column, and not said"
        );
    }

    #[test]
    fn unknown_keys_and_purposes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "hub = \"h\"\nidentity = \"i\"\nstate_dir = \"s\"\nagent = \"a\"\npurpose = \"gossip\"\nadapter = \"csv\"\n[csv]\ndrop_dir = \"d\"\nprocessed_dir = \"p\"\nstatus_dir = \"s\"\n[csv.columns]\nlocal_id = \"id\"\n").unwrap();
        assert!(ConnectorConfig::load(&path).is_err());
        std::fs::write(&path, "hub = \"h\"\nidentity = \"i\"\nstate_dir = \"s\"\nagent = \"a\"\npurpose = \"accompagnement\"\ncolour = \"blue\"\nadapter = \"csv\"\n[csv]\ndrop_dir = \"d\"\nprocessed_dir = \"p\"\nstatus_dir = \"s\"\n[csv.columns]\nlocal_id = \"id\"\n").unwrap();
        assert!(ConnectorConfig::load(&path).is_err());
    }
}
