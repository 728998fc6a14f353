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
