//! The `[sql]` section of a connector profile.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://…`. Give the connector a role that
    /// may read the table and write the status table only.
    pub url: String,
    /// The table or view to read.
    pub table: String,
    /// A column that grows with every change: a sequence, or an update time stored as
    /// sortable text (`2026-11-28T10:00:00`).
    pub watermark_column: String,
    /// `integer` or `text`.
    #[serde(default = "integer")]
    pub watermark_type: String,
    /// Rows read per poll at most.
    #[serde(default = "batch")]
    pub batch: u32,
    /// Where statuses are written back (created when missing): one row per item the hub
    /// shares, keyed by `item`.
    pub status_table: String,
    pub columns: Columns,
    /// Columns that raise a flag when the row says yes (`oui`, `x`, `1`, `vrai`, `yes`,
    /// `true`), each with its qualification (`[[sql.flags]]`; review days as `YYYY-MM-DD`).
    #[serde(default)]
    pub flags: Vec<relais_connector_sdk::write::FlagColumn>,
}

fn integer() -> String {
    "integer".into()
}

fn batch() -> u32 {
    500
}

/// Column names of the table. Every column is read as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub local_id: String,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    /// As `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub birth_place: Option<String>,
    /// The partner's reference of the case on the row; no case without it.
    pub case_ref: Option<String>,
    pub procedure: Option<String>,
    pub theme: Option<String>,
    /// The case's status in the lifecycle's words (`in_progress`, `waiting_documents`…).
    pub status: Option<String>,
    /// Missing documents, separated by `|`.
    pub missing_documents: Option<String>,
}
