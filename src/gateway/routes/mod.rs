//! The gateway's routes, one file each.
//!
//! - [`passthrough`]: every OpenAI-compatible path the gateway does not judge, forwarded
//!   to the primary provider of the request's route.

pub mod passthrough;
