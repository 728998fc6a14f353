//! The `[csv]` section of a connector profile.

pub use relais_connector_sdk::write::FlagColumn;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// Where the partner's software (or a person) drops exports. Drop files whole: write them
    /// elsewhere and move them in, or the adapter waits `settle_seconds` after the last change.
    pub drop_dir: PathBuf,
    /// Where processed files go (with a `.erreurs.csv` beside each file that had bad rows).
    pub processed_dir: PathBuf,
    /// Where the status file (`relais-statuts.csv`) is written for the partner to read.
    pub status_dir: PathBuf,
    /// `;`, `,` or `auto` (the header line decides).
    #[serde(default = "auto")]
    pub delimiter: String,
    /// `utf-8`, `windows-1252` or `auto` (UTF-8 when valid, else Windows-1252).
    #[serde(default = "auto")]
    pub encoding: String,
    #[serde(default = "settle")]
    pub settle_seconds: u64,
    pub columns: Columns,
    /// Columns that raise a flag when the cell says yes (`oui`, `x`, `1`, `vrai`, `yes`).
    #[serde(default)]
    pub flags: Vec<FlagColumn>,
    /// Columns that open a case.
    pub case: Option<CaseColumns>,
    /// The local id's pattern, compiled once.
    #[serde(skip)]
    pub pattern: std::sync::OnceLock<Option<regex_lite::Regex>>,
}

fn auto() -> String {
    "auto".into()
}

fn settle() -> u64 {
    2
}

/// Column names (as in the header line) for the person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub local_id: String,
    /// The form of a local id, as a regular expression the whole cell must match
    /// (`R-[0-9]+`): a row whose id does not is refused, before anything is sent.
    pub local_id_pattern: Option<String>,
    /// This partner links persons by its local id only: no pivot columns (name, first name,
    /// birth date and place) — the hub then never recognises a person another partner knows.
    /// Without it, a profile must map all four.
    #[serde(default)]
    pub local_id_only: bool,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub birth_date: Option<String>,
    /// `jj/mm/aaaa` (default) or `aaaa-mm-jj`.
    #[serde(default = "date_format")]
    pub birth_date_format: String,
    pub birth_place: Option<String>,
}

fn date_format() -> String {
    "jj/mm/aaaa".into()
}

impl Columns {
    /// The pivot columns mapped (name, first name, birth date, birth place), in that order.
    pub fn pivot(&self) -> Vec<&str> {
        [
            &self.family_name,
            &self.given_name,
            &self.birth_date,
            &self.birth_place,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
    }
}

impl CsvConfig {
    /// Checked when the connector starts: the pivot columns, the local id's pattern, the
    /// flag columns, the date format. Each message names the key to fix.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.columns;
        let mapped = c.pivot().len();
        match (mapped, c.local_id_only) {
            (4, false) | (0, true) => {}
            (4, true) => {
                return Err(
                    "[csv.columns] maps the four pivot columns and says local_id_only = true: \
                     remove one or the other"
                        .into(),
                );
            }
            (n, _) => {
                return Err(format!(
                    "[csv.columns] maps {n} of the 4 columns that recognise a person \
                     (family_name, given_name, birth_date, birth_place): map all four, or say \
                     local_id_only = true if this partner links persons by its own id only \
                     (nobody is then recognised across partners)"
                ));
            }
        }
        if let Some(p) = &c.local_id_pattern
            && let Err(e) = regex_lite::Regex::new(p)
        {
            return Err(format!("[csv.columns] local_id_pattern `{p}`: {e}"));
        }
        if !["jj/mm/aaaa", "aaaa-mm-jj"].contains(&c.birth_date_format.as_str()) {
            return Err(format!(
                "[csv.columns] birth_date_format `{}`: jj/mm/aaaa or aaaa-mm-jj",
                c.birth_date_format
            ));
        }
        if ![";", ",", "auto"].contains(&self.delimiter.as_str()) {
            return Err(format!(
                "[csv] delimiter `{}`: \";\", \",\" or \"auto\"",
                self.delimiter
            ));
        }
        if !["utf-8", "windows-1252", "auto"].contains(&self.encoding.as_str()) {
            return Err(format!(
                "[csv] encoding `{}`: \"utf-8\", \"windows-1252\" or \"auto\"",
                self.encoding
            ));
        }
        for f in &self.flags {
            f.check().map_err(|e| format!("[[csv.flags]]: {e}"))?;
        }
        Ok(())
    }

    /// The local id's pattern, anchored (the whole cell must match), when the profile gives one.
    pub fn local_id_pattern(&self) -> Option<&regex_lite::Regex> {
        self.pattern
            .get_or_init(|| {
                self.columns
                    .local_id_pattern
                    .as_ref()
                    .and_then(|p| regex_lite::Regex::new(&format!("^(?:{p})$")).ok())
            })
            .as_ref()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseColumns {
    /// The partner's own reference of the case.
    pub case_ref: String,
    pub procedure: String,
    pub theme: Option<String>,
    /// Missing documents, separated by `|`.
    pub missing_documents: Option<String>,
}
