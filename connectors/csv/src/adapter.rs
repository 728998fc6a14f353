//! The `csv` adapter: drop folder in, status file out.

use crate::config::CsvConfig;
use crate::parse::parse_with;
use anyhow::Context as _;
use relais_connector_sdk::private::{
    create_private_dir, restrict, spreadsheet_safe, write_private,
};
use relais_connector_sdk::{Adapter, Received, State};
use relais_proto::v1 as pb;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

pub const STATUS_FILE: &str = "relais-statuts.csv";
const STATUS_HEADER: &str = "élément;vos identifiants;type;code ou démarche;état;détail;comment on le sait;échéance;priorité;pourquoi";

/// The cells of a row, priority and reason included.
const CELLS: usize = 10;

pub struct CsvAdapter {
    config: CsvConfig,
    /// One writer of the status file at a time.
    status: Mutex<()>,
}

impl CsvAdapter {
    pub fn new(config: CsvConfig) -> anyhow::Result<Self> {
        for f in &config.flags {
            f.check().map_err(|e| anyhow::anyhow!("[[flags]]: {e}"))?;
        }
        // New folders are the connector's own (0700): exports and statuses name persons. A
        // folder that exists is left as the partner set it up.
        for dir in [&config.drop_dir, &config.processed_dir, &config.status_dir] {
            create_private_dir(dir)
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

    /// The rows of the status file by item (`flag:<id>`…), each as its cells. Cells come back
    /// as written — made safe already — and writing them again leaves them as they are; a file
    /// of an earlier version, written before cells were made safe, is made safe on its next
    /// rewrite.
    fn read_status(&self) -> BTreeMap<String, Vec<String>> {
        let Ok(text) = std::fs::read_to_string(self.status_path()) else {
            return BTreeMap::new();
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        reader
            .records()
            .filter_map(Result::ok)
            .filter(|record| record.len() > 1)
            .map(|record| {
                let cells: Vec<String> = record.iter().map(str::to_string).collect();
                (cells[0].clone(), cells)
            })
            .collect()
    }

    /// Rewrites the status file whole (temporary file, then rename): a reader never sees
    /// half a file. It is 0600: it names persons and what other partners share about them.
    fn write_status(&self, rows: &BTreeMap<String, Vec<String>>) -> anyhow::Result<()> {
        let mut text = format!("\u{feff}{STATUS_HEADER}\n");
        for cells in rows.values() {
            text.push_str(&line(cells));
            text.push('\n');
        }
        let path = self.status_path();
        write_private(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
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
            // Reasons quote the export's cells: the report is as private as the export, and
            // opens in a spreadsheet like it.
            let mut report = String::from("\u{feff}ligne;raison\n");
            for b in &parsed.bad {
                report.push_str(&format!(
                    "{};{}\n",
                    b.line,
                    field(&b.reason.replace(';', ","))
                ));
                tracing::warn!(file = %name, line = b.line, reason = %b.reason, "bad row skipped");
            }
            let errors = self
                .config
                .processed_dir
                .join(format!("{name}.erreurs.csv"));
            write_private(&errors, report.as_bytes())
                .with_context(|| format!("writing {}", errors.display()))?;
        }
        let processed = self.config.processed_dir.join(&name);
        std::fs::rename(path, &processed)?;
        // The export is in the connector's keeping now, with the persons it names: 0600 like
        // what the connector writes. Best effort — a file dropped by another account cannot
        // be changed by this one, and that must not stop the import.
        if let Err(e) = restrict(&processed) {
            tracing::warn!(file = %name, error = %e, "processed export left with its own permissions");
        }
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

/// One cell of a file written for a spreadsheet. A cell that a spreadsheet would read as a
/// formula gets a leading `'` (other partners' free text reaches these files: `=HYPERLINK(…)`
/// must stay text); `;` and line breaks become spaces, so a row stays on one line; a cell
/// with a `"` is quoted, so the spreadsheet reads it as written rather than as a quoted
/// field of its own making.
fn field(value: &str) -> String {
    // Made safe before the line breaks are replaced: a cell beginning with a carriage return
    // is caught as such, and what follows can only begin with `'` or a harmless character.
    let value = spreadsheet_safe(value).replace([';', '\n', '\r'], " ");
    if value.contains('"') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn line(cells: &[String]) -> String {
    cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(";")
}

/// How a flag is known, in the words of the status file: "attestée (notification APA)".
fn how_known(f: &pb::Flag) -> String {
    let Some(q) = &f.qualification else {
        return String::new();
    };
    let (_, how) = relais_connector_sdk::write::qualification_words(Some(q));
    if q.evidence.is_empty() {
        how.to_string()
    } else {
        format!("{how} ({})", q.evidence)
    }
}

/// `aaaa-mm-jj` as a spreadsheet user writes it: `jj/mm/aaaa`.
fn french_day(day: &str) -> String {
    match day.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => day.to_string(),
    }
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
        // Raw values: `write_status` makes each cell safe for a spreadsheet (codes, procedures,
        // labels, answers and even local ids come from partners' software and people).
        let ids = local_ids.join(" ");
        let (key, row) = match event {
            Received::Flag(f) => {
                let key = format!("flag:{}", f.id);
                let state = if f.status == pb::FlagStatus::Retracted as i32 {
                    "retirée"
                } else if f.to_review {
                    "active, à revoir"
                } else {
                    "active"
                };
                let row = vec![
                    key.clone(),
                    ids,
                    "difficulté".to_string(),
                    f.code.clone(),
                    state.to_string(),
                    f.label.clone(),
                    how_known(f),
                    french_day(&f.review_on),
                ];
                (key, row)
            }
            Received::Case(c) => {
                let key = format!("case:{}", c.id);
                let row = vec![
                    key.clone(),
                    ids,
                    "démarche".to_string(),
                    c.procedure.clone(),
                    status_name(c.status),
                    c.missing_documents.join(", "),
                    String::new(),
                    french_day(&c.due_date),
                ];
                (key, row)
            }
            Received::Referral(r) => {
                let key = format!("referral:{}", r.id);
                let state = pb::ReferralState::try_from(r.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("REFERRAL_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                let state = if r.overdue {
                    format!("{state}, en retard")
                } else {
                    state
                };
                let detail = if r.expiry_reason.is_empty() {
                    r.answer.clone()
                } else {
                    r.expiry_reason.clone()
                };
                let row = vec![
                    key.clone(),
                    ids,
                    "fiche navette".to_string(),
                    format!("{} → {}", r.from_partner, r.to_partner),
                    state,
                    detail,
                    String::new(),
                    french_day(&r.due_date),
                ];
                (key, row)
            }
        };
        let _guard = self.status.lock().await;
        let mut rows = self.read_status();
        // The item's place in the queue stays until the next reading of the queue.
        let mut row = row;
        let kept = rows
            .get(&key)
            .map(|old| old.iter().skip(8).take(2).cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        row.extend(kept);
        row.resize(CELLS, String::new());
        rows.insert(key, row);
        self.write_status(&rows)
    }

    async fn prioritise(&self, queue: &[relais_connector_sdk::Priority]) -> anyhow::Result<()> {
        let by_key: std::collections::HashMap<&str, &relais_connector_sdk::Priority> =
            queue.iter().map(|p| (p.key.as_str(), p)).collect();
        let _guard = self.status.lock().await;
        let mut rows = self.read_status();
        for (key, cells) in rows.iter_mut() {
            cells.resize(CELLS, String::new());
            if !(key.starts_with("case:") || key.starts_with("referral:")) {
                continue;
            }
            let (rank, why) = by_key
                .get(key.as_str())
                .map_or((String::new(), String::new()), |p| {
                    (p.rank.to_string(), p.explanation.clone())
                });
            cells[8] = rank;
            cells[9] = why;
        }
        self.write_status(&rows)
    }

    async fn redact(&self, r: &pb::Redaction, local_ids: &[String]) -> anyhow::Result<()> {
        let _guard = self.status.lock().await;
        let mut rows = self.read_status();
        // The reasons beside the person's other rows may name what was redacted: blanked
        // until the next reading of the queue.
        let ids = local_ids.join(" ");
        if !ids.is_empty() {
            for cells in rows.values_mut() {
                if cells.get(1) == Some(&ids) && cells.len() > 8 {
                    cells.resize(CELLS, String::new());
                    cells[8].clear();
                    cells[9].clear();
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Columns;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn adapter(root: &Path) -> CsvAdapter {
        CsvAdapter::new(CsvConfig {
            drop_dir: root.join("depot"),
            processed_dir: root.join("traites"),
            status_dir: root.join("statuts"),
            delimiter: "auto".into(),
            encoding: "auto".into(),
            settle_seconds: 0,
            columns: Columns {
                local_id: "N° fiche".into(),
                family_name: None,
                given_name: None,
                birth_date: None,
                birth_date_format: "jj/mm/aaaa".into(),
                birth_place: None,
            },
            flags: vec![],
            case: None,
        })
        .unwrap()
    }

    /// The status file's rows as a spreadsheet reads them: cells after CSV unquoting.
    fn status_cells(root: &Path) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(root.join("statuts").join(STATUS_FILE)).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        rows
    }

    #[tokio::test]
    async fn other_partners_text_reaches_the_status_file_as_text() {
        let root = tempfile::tempdir().unwrap();
        let csv = adapter(root.path());
        let link = "=HYPERLINK(\"http://x\",\"y\")";
        csv.apply(
            &Received::Referral(pb::Referral {
                id: "r1".into(),
                from_partner: "departement-31".into(),
                to_partner: "mairie-aspet".into(),
                answer: link.into(),
                ..Default::default()
            }),
            &["-17".to_string()],
        )
        .await
        .unwrap();
        // A second event rewrites the file from what it read back: the referral's row goes
        // through a second time.
        csv.apply(
            &Received::Flag(pb::Flag {
                id: "f1".into(),
                code: "ISOLEMENT".into(),
                label: "@SUM(A1:A9)".into(),
                qualification: Some(pb::FlagQualification {
                    qualification: pb::Qualification::Attested as i32,
                    evidence: "décision du CCAS".into(),
                    ..Default::default()
                }),
                review_on: "2027-03-01".into(),
                to_review: true,
                ..Default::default()
            }),
            &["R-17".to_string()],
        )
        .await
        .unwrap();

        let rows = status_cells(root.path());
        let referral = rows.iter().find(|r| r[0] == "referral:r1").unwrap();
        assert_eq!(
            referral[5],
            format!("'{link}"),
            "neutralised once, not twice"
        );
        assert_eq!(
            referral[1], "'-17",
            "the partner's own id too: a spreadsheet would compute it"
        );
        let flag = rows.iter().find(|r| r[0] == "flag:f1").unwrap();
        assert_eq!(flag[5], "'@SUM(A1:A9)");
        assert_eq!(flag[1], "R-17");
        assert_eq!(flag[3], "ISOLEMENT");
        assert_eq!(flag[4], "active, à revoir");
        assert_eq!(flag[6], "attestée (décision du CCAS)");
        assert_eq!(flag[7], "01/03/2027");
        for cell in rows.iter().flatten() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell}"
            );
        }

        let status = root.path().join("statuts").join(STATUS_FILE);
        assert_eq!(mode(&status), 0o600);
        assert_eq!(mode(&root.path().join("statuts")), 0o700);
    }

    #[tokio::test]
    async fn error_reports_and_processed_exports_are_private() {
        let root = tempfile::tempdir().unwrap();
        let csv = adapter(root.path());
        let state = State::open(&root.path().join("etat")).await.unwrap();
        std::fs::write(
            root.path().join("depot").join("export.csv"),
            "N° fiche;Nom\nR-17;Castet\n;Inconnu\n",
        )
        .unwrap();
        assert_eq!(csv.poll(&state).await.unwrap(), 1);

        let report = root.path().join("traites").join("export.csv.erreurs.csv");
        assert_eq!(mode(&report), 0o600);
        let text = std::fs::read_to_string(&report).unwrap();
        assert!(text.contains("\n3;"), "{text}");
        assert_eq!(mode(&root.path().join("traites").join("export.csv")), 0o600);
        for dir in ["depot", "traites", "statuts"] {
            assert_eq!(mode(&root.path().join(dir)), 0o700, "{dir}");
        }
    }
}
