//! The errors every layer of the hub returns. Callers tell the variants apart (bad input, not
//! found, conflict, denied…); `api::status` is the one place that maps them to gRPC codes.

use std::fmt;

/// One field of a request that is wrong, and why (mapped to `google.rpc.BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every wrong field is listed.
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    /// Nothing of that kind the caller may see has this id (`id` is what the caller sent, or
    /// empty when naming it back would tell more than the caller knows).
    #[error("{what} not found{}", if .id.is_empty() { String::new() } else { format!(": {}", .id) })]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller's `expected_version` is not the current one.
    #[error("stale version for {what} {id}: expected {expected}, current {current}")]
    StaleVersion {
        what: &'static str,
        id: String,
        expected: i64,
        current: i64,
    },
    /// A concurrent write won (a unique key taken meanwhile); retrying may succeed.
    #[error("concurrent write: {0}")]
    Conflict(String),
    /// A lifecycle rule forbids the change.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller is over one of its limits (call rate, open subscriptions); with
    /// `retry_after`, the call may be sent again after that long.
    #[error("{message}")]
    Exhausted {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The hub is stopping; the call can be sent again (to another replica, or once restarted).
    #[error("the hub is shutting down: retry, or resume the feed from your cursor")]
    ShuttingDown,
    /// The database cannot be reached for now; the call can be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// A local id already linked to a person, relinked to another (by id or by traits that are
    /// not that person's): one answer, naming no person, whether the other traits belong to
    /// someone or to nobody.
    pub fn link_conflict(local_id: &impl fmt::Display) -> Self {
        Error::FailedPrecondition(format!(
            "local id `{local_id}` is already linked to a person with other traits: a local id \
             names one person; unlink it first, or ask the administrator to merge two records \
             of the same person"
        ))
    }

    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

impl From<sqlx::Error> for Error {
    /// Classifies database errors: what can succeed later (the database is unreachable or
    /// restarting, a concurrent write won) apart from what will not.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // PostgreSQL: class 08 connection exception, 57P admin shutdown / cannot
                // connect now, 53 insufficient resources; 40001/40P01 serialization/deadlock.
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    Error::Unavailable(e.to_string())
                } else if db.is_unique_violation() || code == "40001" || code == "40P01" {
                    Error::Conflict(e.to_string())
                } else {
                    Error::Internal(format!("database: {e}"))
                }
            }
            _ => Error::Internal(format!("database: {e}")),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("stored document: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a value does not parse into a domain type. The domain does not know where the value
/// came from; the api layer attaches the field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(description: impl Into<String>) -> Self {
        Invalid(description.into())
    }
}

/// Collects field violations so that a request reports all its errors at once.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the parsed value, or records why the field `field` does not parse.
    pub fn field<T>(&mut self, field: &str, parsed: Result<T, Invalid>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(Invalid(description)) => {
                self.0.push(FieldViolation::new(field, description));
                None
            }
        }
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of a parse that reports its own field paths; its violations join
    /// these, any other error is returned.
    pub fn merge<T>(&mut self, parsed: Result<T>) -> Result<Option<T>> {
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(Error::Invalid(violations)) => {
                self.0.extend(violations);
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// `Ok` when no violation was recorded.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}
