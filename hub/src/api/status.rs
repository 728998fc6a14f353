//! The one place where errors become gRPC statuses (AIP-193): bad input is
//! `INVALID_ARGUMENT` with `google.rpc.BadRequest` field violations, the others carry a
//! `google.rpc.ErrorInfo` with a stable reason.

use crate::error::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

const DOMAIN: &str = "relais.v1";

fn info(code: Code, reason: &str, message: String) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, std::collections::HashMap::new()),
    )
}

pub fn to_status(e: Error) -> Status {
    match e {
        Error::Invalid(violations) => {
            let message = e_message(&violations);
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        e @ Error::NotFound { .. } => info(Code::NotFound, "NOT_FOUND", e.to_string()),
        Error::AlreadyExists(m) => info(Code::AlreadyExists, "ALREADY_EXISTS", m),
        e @ Error::StaleVersion { .. } => info(Code::Aborted, "STALE_VERSION", e.to_string()),
        Error::Conflict(m) => info(Code::Aborted, "CONCURRENT_WRITE", m),
        Error::FailedPrecondition(m) => info(Code::FailedPrecondition, "FAILED_PRECONDITION", m),
        Error::Unauthenticated(m) => info(Code::Unauthenticated, "UNAUTHENTICATED", m),
        Error::PermissionDenied(m) => info(Code::PermissionDenied, "PERMISSION_DENIED", m),
        Error::Exhausted {
            message,
            retry_after,
        } => {
            let mut details = ErrorDetails::with_error_info(
                "RESOURCE_EXHAUSTED",
                DOMAIN,
                std::collections::HashMap::new(),
            );
            if let Some(wait) = retry_after {
                details.set_retry_info(Some(wait));
            }
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        e @ Error::ShuttingDown => info(Code::Unavailable, "SHUTTING_DOWN", e.to_string()),
        // The detail of these two is in the hub's log (see `api::finish_call`), not for callers.
        Error::Unavailable(_) => info(
            Code::Unavailable,
            "STORE_UNAVAILABLE",
            "the hub's database is unavailable; retry later".into(),
        ),
        Error::Internal(_) => info(
            Code::Internal,
            "INTERNAL",
            "internal error; the hub's log has the detail".into(),
        ),
    }
}

fn e_message(violations: &[crate::error::FieldViolation]) -> String {
    Error::Invalid(violations.to_vec()).to_string()
}
