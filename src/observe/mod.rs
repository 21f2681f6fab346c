//! What the gateway records of its traffic, off the request path.
//!
//! - [`verdict_log`]: every judged exchange as one JSON line in the schema `audit` reads,
//!   written to rotating, compressed files by one writer thread behind a bounded queue.

pub mod verdict_log;

pub use verdict_log::{
    Entry, Exchange, LineSink, RotatingFiles, VerdictLog, VerdictLogBuilder, VerdictLogConfig,
};
