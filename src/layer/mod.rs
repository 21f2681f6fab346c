//! Tower layers: where verdicts are acted on.
//!
//! - [`guard`]: [`RefusalGuardLayer`] judges answers (holding streams back until it can)
//!   and attaches the verdict, or stops what its stop set names.
//! - [`reroute`]: [`RerouteLayer`] sends what the guard stopped to the next provider,
//!   also mid-stream.

pub mod failover;
pub mod guard;
pub mod reroute;

pub use guard::{HoldBack, RefusalGuard, RefusalGuardLayer, StreamVerdict};
pub use reroute::{Attempt, Attempts, ContinuationStyle, Prices, Reroute, RerouteLayer, Route};
