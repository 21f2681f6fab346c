//! Tower layers: where verdicts are acted on.
//!
//! - [`guard`]: [`RefusalGuardLayer`] judges answers (holding streams back until it can)
//!   and attaches the verdict, or stops what its stop set names.
//! - [`reroute`]: [`RerouteLayer`] sends what the guard stopped to the next provider,
//!   also mid-stream.
//! - [`cooldown`]: [`CooldownLayer`] stops asking a provider that failed request after
//!   request, for a while, so that an outage costs a fail-over and not a timeout.
//! - [`logprobs`]: [`AskLogprobs`], the guard's option to ask the provider for logprobs
//!   the client did not request, and to hide them again.

pub mod cooldown;
pub mod failover;
pub mod guard;
pub mod logprobs;
pub mod reroute;
#[cfg(test)]
mod scripted;

pub use cooldown::{Cooldown, CooldownLayer};
pub use guard::{HoldBack, RefusalGuard, RefusalGuardLayer, StreamVerdict};
pub use logprobs::AskLogprobs;
pub use reroute::{
    Attempt, Attempts, ContinuationStyle, PreRouteConfig, PreRouteStore, PreRouted, Prices, Reroute,
    RerouteLayer, Route,
};
