//! Tower layers: where verdicts are acted on.
//!
//! - [`guard`]: [`RefusalGuardLayer`] judges answers (holding streams back until it can)
//!   and attaches the verdict, or stops what its stop set names.

pub mod guard;

pub use guard::{HoldBack, RefusalGuard, RefusalGuardLayer, StreamVerdict};
