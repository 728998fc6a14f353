//! The `csv` adapter: drop folder in, status file out.

use crate::config::CsvConfig;
use crate::parse::{Item, read, scan};
use anyhow::Context as _;
use relais_connector_sdk::private::{
    create_private_dir, create_private_file, restrict, spreadsheet_safe, write_private,
};
use relais_connector_sdk::state::DeadLetter;
use relais_connector_sdk::{Adapter, Received, State};
use relais_proto::v1 as pb;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
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
        config.check().map_err(|e| anyhow::anyhow!("{e}"))?;
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
        spreadsheet_rows(&text)
            .into_iter()
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

    fn errors_path(&self, name: &str) -> PathBuf {
        self.config
            .processed_dir
            .join(format!("{name}.erreurs.csv"))
    }

    /// Imports one export, as a stream: a first pass for its digest, lines and encoding, a
    /// second that reads the rows into the outbox (staged, committed when the whole file was
    /// read) and the refused rows into `<file>.erreurs.csv`. A file rejected whole sends
    /// nothing, and its errors file says why.
    async fn import(&self, path: &Path, state: &State) -> anyhow::Result<u64> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // One open file for both passes: a file replaced meanwhile is not half one, half the
        // other, and is told apart before the file is set aside.
        let opened = std::fs::File::open(path)?;
        let (scan, opened) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut opened = opened;
            let s = scan(&mut opened)?;
            std::io::Seek::rewind(&mut opened)?;
            Ok((s, opened))
        })
        .await??;
        let identity = same_file_key(&opened.metadata()?);
        // The same name with other content is another export.
        let source = format!("{name}#{}", &scan.sha256[..16]);
        let processed = self.config.processed_dir.join(&name);
        let Some(mut import) = state.begin_import(&source).await? else {
            tracing::info!(file = %name, "already imported; moved aside");
            self.set_aside(path, &processed, &name)?;
            return Ok(0);
        };
        if let Err(rejected) = scan.check(&self.config.encoding) {
            import.abort().await?;
            return self.rejected_whole(path, &processed, &name, rejected);
        }
        let encoding = scan.encoding(&self.config.encoding);
        let delimiter = scan.delimiter(&self.config.delimiter, encoding);
        // A progress bar for long imports, when a person watches a terminal.
        let bar = (scan.lines > 200 && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(scan.lines.saturating_sub(1));
            bar.set_message(name.clone());
            bar
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(256);
        let reader = {
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let file = std::io::BufReader::new(opened);
                Ok(read(file, encoding, delimiter, &config, |item| {
                    tx.blocking_send(item).is_ok()
                }))
            })
        };
        // Refused rows, as they come; the file is the errors file once the import is done.
        let part = self
            .config
            .processed_dir
            .join(format!(".{name}.erreurs.csv.part"));
        let mut errors: Option<std::io::BufWriter<std::fs::File>> = None;
        let (mut bad, mut rows) = (0u64, 0u64);
        while let Some(item) = rx.recv().await {
            rows += 1;
            if let Some(bar) = &bar
                && rows % 200 == 0
            {
                bar.set_position(rows);
            }
            match item {
                Item::Row { line, writes } => {
                    for w in &writes {
                        import.push(line, w).await?;
                    }
                }
                Item::Bad(b) => {
                    bad += 1;
                    let out = match errors.as_mut() {
                        Some(out) => out,
                        None => {
                            let file = create_private_file(&part)?;
                            let mut out = std::io::BufWriter::new(file);
                            out.write_all(ERRORS_HEADER.as_bytes())?;
                            errors.insert(out)
                        }
                    };
                    out.write_all(error_line(Some(b.line), &b.reason).as_bytes())?;
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let outcome = reader.await??;
        let errors_path = self.errors_path(&name);
        if let Some(mut out) = errors.take() {
            out.flush()?;
        }
        let summary = match outcome {
            Ok(summary) => summary,
            Err(rejected) => {
                import.abort().await?;
                let _ = std::fs::remove_file(&part);
                return self.rejected_whole(path, &processed, &name, rejected);
            }
        };
        let queued = import.commit().await?;
        if bad > 0 {
            std::fs::rename(&part, &errors_path)
                .with_context(|| format!("writing {}", errors_path.display()))?;
        } else if errors_path.exists() {
            // An earlier export of that name had refused rows; this one has none.
            std::fs::remove_file(&errors_path)
                .with_context(|| format!("removing {}", errors_path.display()))?;
        }
        let unchanged = std::fs::metadata(path).is_ok_and(|m| same_file_key(&m) == identity);
        if unchanged {
            self.set_aside(path, &processed, &name)?;
        } else {
            tracing::warn!(file = %name, "the export changed while it was read: what was read is imported, the new version is read next");
        }
        if !summary.missing_flag_columns.is_empty() {
            tracing::warn!(file = %name, columns = %summary.missing_flag_columns.join(", "), "flag columns of the profile absent from this export: not read");
        }
        if bad > 0 {
            tracing::warn!(file = %name, rows = summary.rows, refused = bad, errors = %errors_path.display(), "export imported; refused rows are in the errors file");
        } else {
            tracing::info!(file = %name, rows = summary.rows, writes = queued.unwrap_or(0), "export imported");
        }
        Ok(queued.unwrap_or(0))
    }

    /// A file rejected whole: its errors file says why, and it is set aside; nothing was sent.
    fn rejected_whole(
        &self,
        path: &Path,
        processed: &Path,
        name: &str,
        rejected: crate::parse::Rejected,
    ) -> anyhow::Result<u64> {
        let errors_path = self.errors_path(name);
        let text = format!(
            "{ERRORS_HEADER}{}",
            error_line(
                Some(rejected.line),
                &format!(
                    "fichier refusé en entier, rien n'a été envoyé : {}",
                    rejected.reason
                )
            )
        );
        write_private(&errors_path, text.as_bytes())
            .with_context(|| format!("writing {}", errors_path.display()))?;
        self.set_aside(path, processed, name)?;
        tracing::warn!(file = %name, line = rejected.line, reason = %rejected.reason, errors = %errors_path.display(), "export rejected whole: nothing sent");
        Ok(0)
    }

    /// Moves an export into the processed folder, private to the connector's account.
    fn set_aside(&self, path: &Path, processed: &Path, name: &str) -> anyhow::Result<()> {
        std::fs::rename(path, processed)
            .with_context(|| format!("moving {} to {}", path.display(), processed.display()))?;
        // The export is in the connector's keeping now, with the persons it names: 0600 like
        // what the connector writes. Best effort — a file dropped by another account cannot
        // be changed by this one, and that must not stop the import.
        if let Err(e) = restrict(processed) {
            tracing::warn!(file = %name, error = %e, "processed export left with its own permissions");
        }
        Ok(())
    }

    /// Adds refused writes to their files' errors files: one line per row (the first reason a
    /// row got stands), in line order.
    fn report_refused(&self, letters: &[DeadLetter]) -> anyhow::Result<()> {
        let mut by_file: BTreeMap<String, Vec<(Option<i64>, String)>> = BTreeMap::new();
        for l in letters {
            // `<file name>#<digest>` (the name may hold a `#` of its own), ` (replayed)` after a
            // replay.
            let Some((name, _)) = l.source.rsplit_once('#') else {
                // Writes that did not come from a file have no errors file.
                continue;
            };
            let name = name.to_string();
            if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                continue;
            }
            let reason = if l.code == relais_connector_sdk::state::DEPENDENT {
                l.reason.clone()
            } else {
                format!(
                    "{} : {}",
                    l.write.describe_fr(),
                    relais_connector_sdk::write::refusal_fr(&l.code, &l.reason)
                )
            };
            by_file.entry(name).or_default().push((l.line, reason));
        }
        for (name, new) in by_file {
            let path = self.errors_path(&name);
            let mut rows: Vec<(Option<i64>, String)> = read_errors(&path);
            for (line, reason) in new {
                if line.is_some() && rows.iter().any(|(l, _)| *l == line) {
                    continue;
                }
                rows.push((line, reason));
            }
            rows.sort_by_key(|(l, _)| l.unwrap_or(i64::MAX));
            let mut text = String::from(ERRORS_HEADER);
            for (line, reason) in &rows {
                text.push_str(&error_line(line.map(|l| l as u64), reason));
            }
            write_private(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::warn!(file = %name, errors = %path.display(), "rows refused by the hub added to the errors file");
        }
        Ok(())
    }
}

/// What tells a file apart from another put at its path: device, inode, size, modification time.
fn same_file_key(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec())
}

/// The errors file's header.
const ERRORS_HEADER: &str = "\u{feff}ligne;raison\n";

/// One line of an errors file.
fn error_line(line: Option<u64>, reason: &str) -> String {
    format!(
        "{};{}\n",
        line.map(|l| l.to_string()).unwrap_or_default(),
        field(reason)
    )
}

/// The rows after the header of a file this adapter wrote for a spreadsheet (`;`, a BOM).
fn spreadsheet_rows(text: &str) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes())
        .records()
        .filter_map(Result::ok)
        .collect()
}

/// The rows of an errors file (none when it does not exist).
fn read_errors(path: &Path) -> Vec<(Option<i64>, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    spreadsheet_rows(&text)
        .into_iter()
        .map(|r| {
            (
                r.get(0).and_then(|l| l.parse().ok()),
                r.get(1).unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A case's status in French (`en attente de pièces`), as the hub's printed sheets say it.
fn status_name(s: i32) -> String {
    pb::CaseStatus::try_from(s)
        .ok()
        .and_then(|s| {
            relais_hub::domain::CaseStatus::parse(
                &s.as_str_name()
                    .trim_start_matches("CASE_STATUS_")
                    .to_lowercase(),
            )
        })
        .map(|s| s.label_fr().to_string())
        .unwrap_or_default()
}

/// A referral's state in French.
fn referral_state(s: i32) -> &'static str {
    match pb::ReferralState::try_from(s) {
        Ok(pb::ReferralState::Sent) => "envoyée, pas encore lue",
        Ok(pb::ReferralState::Acknowledged) => "reçue par le service",
        Ok(pb::ReferralState::Answered) => "répondue",
        Ok(pb::ReferralState::Closed) => "close",
        Ok(pb::ReferralState::Expired) => "expirée sans réponse",
        _ => "",
    }
}

/// A procedure code with its theme in words: `F1342 (Logement)`.
fn procedure_label(procedure: &str, theme: &str) -> String {
    match relais_hub::domain::Theme::parse(theme) {
        Ok(t) => format!("{procedure} ({})", t.label_fr()),
        Err(_) => procedure.to_string(),
    }
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

    async fn rejected(&self, letters: &[DeadLetter]) -> anyhow::Result<()> {
        self.report_refused(letters)
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
                    if f.label.is_empty() {
                        f.code.clone()
                    } else {
                        format!("{} ({})", f.code, f.label)
                    },
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
                    procedure_label(&c.procedure, &c.theme),
                    status_name(c.status),
                    c.missing_documents.join(", "),
                    String::new(),
                    french_day(&c.due_date),
                ];
                (key, row)
            }
            Received::Referral(r) => {
                let key = format!("referral:{}", r.id);
                let state = referral_state(r.state).to_string();
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
                    format!("de {} à {}", r.from_partner, r.to_partner),
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
            pattern: Default::default(),
            columns: Columns {
                local_id: "N° fiche".into(),
                local_id_pattern: None,
                local_id_only: true,
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
        assert_eq!(flag[3], "ISOLEMENT (@SUM(A1:A9))");
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
