//! The `sql` adapter, for partners whose software keeps its data in a database it lets the
//! connector read (the département's APA/RSA application): it polls a table — or better, a view
//! made for Relais — by a watermark column (a sequence, or an update time as sortable text),
//! turns each new row into writes (the person, the case opened, and the lifecycle moves that
//! bring it to the row's status), and writes what the hub shares back into a status table.
//! PostgreSQL, MariaDB/MySQL and SQLite, chosen by the URL.

pub mod adapter;
pub mod config;
pub mod lifecycle;

pub use adapter::SqlAdapter;
pub use config::SqlConfig;
