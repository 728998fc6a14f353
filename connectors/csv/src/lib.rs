//! The `csv` adapter: associations and CCAS often work in spreadsheets. It watches a drop
//! folder for exports (UTF-8 or Windows-1252, `;` or `,`), maps columns to persons, flags and
//! cases by the profile's mapping, reports each bad row with its line number and reason
//! without stopping the file, moves processed files aside, and writes a status file back for
//! partners that only read spreadsheets.

pub mod adapter;
pub mod config;
pub mod parse;

pub use adapter::CsvAdapter;
pub use config::CsvConfig;
