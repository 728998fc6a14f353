//! Plain types and rules of the territory: partners, persons, flags, cases, referrals, the
//! taxonomy and the lifecycle. Parse, don't validate: a value of a domain type is valid, and
//! nobody checks it again. No I/O here.

pub mod accessibility;
pub mod case;
pub mod category;
pub mod change;
pub mod clock;
pub mod commune;
pub mod consent;
pub mod context;
pub mod flag;
pub mod ids;
pub mod partner;
pub mod pivot;
pub mod priority;
pub mod referral;
pub mod taxonomy;

pub use case::{Case, CaseStatus, CaseTransition};
pub use category::{DataCategory, Theme};
pub use clock::{Clock, Day, ShiftedClock, SystemClock, Timestamp, paris};
pub use context::{Purpose, RequestContext};
pub use flag::{Flag, FlagStatus};
pub use ids::{AgentId, CaseId, FlagId, LocalId, PartnerId, PersonId, ReferralId, RequestId};
pub use partner::{Partner, PartnerKind, PartnerStatus};
pub use referral::{Referral, ReferralState};
pub use taxonomy::FlagCode;
