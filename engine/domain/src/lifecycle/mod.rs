//! The message lifecycle, in one place: the states and the table of allowed
//! moves ([`state`]), how a new message starts ([`start`]), what claiming a due message
//! writes ([`claim`]), what each end of
//! an attempt or engine decision writes ([`outcome`]), how a provider's
//! webhook report becomes a history entry ([`report`]), and how concurrent
//! outcomes of one message merge.
//!
//! States, in order: `scheduled` (send_at in the future) → `accepted` →
//! `queued` → `sending` → `sent` → `delivered` → `read`, and the terminal
//! `failed | bounced | rejected | expired`. A message is stored `queued`
//! (or `scheduled`) with the history `accepted, queued` (or `accepted,
//! scheduled`); a suppressed batch member is stored `rejected`. Nothing moves
//! backwards: a late or out-of-order report is recorded in the history but
//! does not change the state ([`MessageState::can_advance_to`]).
//!
//! Everything here is pure: the caller passes the time. Storage writes what
//! these functions decide (its SQL guard `msgengine_can_advance` is a safety
//! net tested against [`MessageState::can_advance_to`]).

pub mod claim;
pub mod outcome;
pub mod report;
pub mod start;

/// The state table sits below the message types it is part of (`crate::state`);
/// named here too, as the lifecycle's first part.
pub use crate::state::{self, MessageState};
pub use claim::Claim;
pub use outcome::{Call, Next, Outcome, STORAGE_REJECTED_REASON};
pub use report::{merge_reports, report_event, ProviderReport};
pub use start::{suppressed_reason, Start};
