//! The `csv` adapter: drop folder in, status file out.

use crate::config::CsvConfig;
use crate::parse::parse_with;
use relais_connector_sdk::{Adapter, Received, State};
use relais_proto::v1 as pb;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

pub const STATUS_FILE: &str = "relais-statuts.csv";
const STATUS_HEADER: &str = "élément;vos identifiants;type;code ou démarche;état;détail";

pub struct CsvAdapter {
    config: CsvConfig,
    /// One writer of the status file at a time.
    status: Mutex<()>,
}

impl CsvAdapter {
    pub fn new(config: CsvConfig) -> anyhow::Result<Self> {
        for dir in [&config.drop_dir, &config.processed_dir, &config.status_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        Ok(Self {
            config,
            status: Mutex::new(()),
        })
    }

    /// Exports ready to import: `.csv` files in the drop folder that have not changed for
    /// `settle_seconds`, oldest name first.
    fn ready_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let settle = Duration::from_secs(self.config.settle_seconds);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.config.drop_dir)? {
            let path = entry?.path();
            let is_csv = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let settled = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= settle);
            if path.is_file() && is_csv && settled {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    fn status_path(&self) -> PathBuf {
        self.config.status_dir.join(STATUS_FILE)
    }

    fn read_status(&self) -> BTreeMap<String, String> {
        let Ok(text) = std::fs::read_to_string(self.status_path()) else {
            return BTreeMap::new();
        };
        text.trim_start_matches('\u{feff}')
            .lines()
            .skip(1)
            .filter_map(|l| {
                l.split_once(';')
                    .map(|(k, _)| (k.to_string(), l.to_string()))
            })
            .collect()
    }

    /// Rewrites the status file whole (temporary file, then rename): a reader never sees
    /// half a file.
    fn write_status(&self, rows: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let mut text = format!("\u{feff}{STATUS_HEADER}\n");
        for row in rows.values() {
            text.push_str(row);
            text.push('\n');
        }
        let tmp = self.config.status_dir.join(format!(".{STATUS_FILE}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.status_path())?;
        Ok(())
    }

    async fn import(&self, path: &Path, state: &State) -> anyhow::Result<u64> {
        let bytes = std::fs::read(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The same name with other content is another export.
        let source = format!("{name}#{}", &hex::encode(Sha256::digest(&bytes))[..16]);
        // A progress bar for long imports, when a person watches a terminal.
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        let bar = (lines > 200 && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(lines.saturating_sub(1));
            bar.set_message(name.clone());
            bar
        });
        let parsed = parse_with(&bytes, &self.config, |rows| {
            if let Some(bar) = &bar
                && rows % 50 == 0
            {
                bar.set_position(rows);
            }
        });
        if let Some(bar) = bar {
            bar.finish_with_message(format!("{name}: {} rows read", parsed.rows));
        }
        let queued = state.enqueue(&parsed.writes, &source, true).await?;
        if !parsed.bad.is_empty() {
            let mut report = String::from("\u{feff}ligne;raison\n");
            for b in &parsed.bad {
                report.push_str(&format!("{};{}\n", b.line, b.reason.replace(';', ",")));
                tracing::warn!(file = %name, line = b.line, reason = %b.reason, "bad row skipped");
            }
            std::fs::write(
                self.config
                    .processed_dir
                    .join(format!("{name}.erreurs.csv")),
                report,
            )?;
        }
        std::fs::rename(path, self.config.processed_dir.join(&name))?;
        tracing::info!(file = %name, rows = parsed.rows, writes = parsed.writes.len(), bad = parsed.bad.len(), queued, "export imported");
        Ok(if queued {
            parsed.writes.len() as u64
        } else {
            0
        })
    }
}

fn status_name(s: i32) -> String {
    pb::CaseStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CASE_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

fn clean(s: &str) -> String {
    s.replace([';', '\n', '\r'], " ")
}

#[async_trait::async_trait]
impl Adapter for CsvAdapter {
    fn name(&self) -> &'static str {
        "csv"
    }

    async fn poll(&self, state: &State) -> anyhow::Result<u64> {
        let mut writes = 0;
        for path in self.ready_files()? {
            writes += self.import(&path, state).await?;
        }
        Ok(writes)
    }

    async fn apply(&self, event: &Received, local_ids: &[String]) -> anyhow::Result<()> {
        let ids = clean(&local_ids.join(" "));
        let (key, row) = match event {
            Received::Flag(f) => (
                format!("flag:{}", f.id),
                format!(
                    "flag:{};{ids};difficulté;{};{};{}",
                    f.id,
                    f.code,
                    if f.status == pb::FlagStatus::Retracted as i32 {
                        "retirée"
                    } else {
                        "active"
                    },
                    clean(&f.label)
                ),
            ),
            Received::Case(c) => (
                format!("case:{}", c.id),
                format!(
                    "case:{};{ids};démarche;{};{};{}",
                    c.id,
                    c.procedure,
                    status_name(c.status),
                    clean(&c.missing_documents.join(", "))
                ),
            ),
            Received::Referral(r) => (
                format!("referral:{}", r.id),
                format!(
                    "referral:{};{ids};fiche navette;{} → {};{};{}",
                    r.id,
                    r.from_partner,
                    r.to_partner,
                    pb::ReferralState::try_from(r.state)
                        .map(|s| s
                            .as_str_name()
                            .trim_start_matches("REFERRAL_STATE_")
                            .to_lowercase())
                        .unwrap_or_default(),
                    clean(&r.answer)
                ),
            ),
        };
        let _guard = self.status.lock().await;
        let mut rows = self.read_status();
        rows.insert(key, row);
        self.write_status(&rows)
    }

    async fn redact(&self, r: &pb::Redaction, _local_ids: &[String]) -> anyhow::Result<()> {
        let _guard = self.status.lock().await;
        let mut rows = self.read_status();
        for id in &r.flag_ids {
            rows.remove(&format!("flag:{id}"));
        }
        for id in &r.case_ids {
            rows.remove(&format!("case:{id}"));
        }
        for id in &r.referral_ids {
            rows.remove(&format!("referral:{id}"));
        }
        self.write_status(&rows)
    }
}
