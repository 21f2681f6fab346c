//! refusal-guard: Tower layers that find out when an LLM provider refuses, blocks or
//! evades, judge whether the refusal was justified, and re-route policy-driven blocks.
//!
//! The modules follow the pipeline:
//! - [`wire`]: the OpenAI-compatible wire format (requests, answers, chunks, errors, SSE);
//! - [`provider`]: the client contract and the HTTP client; [`mock`]: a scriptable provider;
//! - [`verdict`]: what an answer turned out to be;
//! - [`detect`]: the detectors that gather evidence; [`classify`]: the local models;
//! - [`judge`]: where evidence becomes a verdict (the trained combiner, prompt harm);
//! - [`layer`]: the tower layers that act on them;
//! - [`dataset`]: labeled answer files and their label mapping; [`cli`]: the command line;
//! - [`lang`]: which language a text is in (for the verdict log and the prompt judge);
//! - [`tokens`]: what a stream token is (Qwen's BPE where installed), for stream replays;
//! - [`audit`]: the pipeline over logged traffic, with reports;
//! - [`observe`]: what the gateway records: logs and traces (the subscriber, the
//!   per-request record) and the verdict log that `audit` reads.

pub mod audit;
pub mod classify;
pub mod cli;
pub mod dataset;
pub mod detect;
pub mod error;
pub mod gateway;
pub mod hub;
pub mod judge;
pub mod lang;
pub mod layer;
pub mod mock;
pub mod observe;
pub mod provider;
pub mod score;
pub mod tokens;
pub mod verdict;
pub mod wire;

pub use error::{BoxError, CooldownCause, Error};
pub use verdict::{Verdict, VerdictClass, VerdictKind};
