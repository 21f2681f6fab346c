//! Audit: run the verdict pipeline over logged traffic and report what came back.
//!
//! A gateway team wants to know, for last week's traffic, how often each provider and model
//! refused, blocked or evaded, in which languages, whether it got worse over time, and how
//! sure the pipeline was. This module answers that offline, with exactly the detectors the
//! layers use online ([`Detectors`]), so the audit and the gateway never disagree.
//!
//! The parts, one job each:
//! - [`input`]: which files a list of paths, folders and globs names, and how to open them
//!   (gzip, stdin);
//! - [`item`]: turning one JSON Lines row, one raw response or error body, or one recorded
//!   SSE transcript into an [`Item`] to judge;
//! - [`run`]: the streaming pipeline: a reader thread, a bounded channel, one worker per
//!   core, an in-order collector (memory stays flat on a million rows);
//! - [`tally`]: the counts every report is drawn from;
//! - [`report`]: the terminal table, Markdown, HTML with plots, JSON, per-record lines;
//! - [`review`]: which of the answers a person should label first, for `train`.
//!
//! Bad input (a line that is not JSON, a row of the wrong shape, a cut gzip file) is
//! reported with its file and line and skipped, never fatal, unless the caller asks to stop
//! at the first ([`AuditOptions::strict`]): one bad row must not cost a night's run.

pub mod input;
pub mod item;
pub mod report;
pub mod review;
pub mod run;
pub mod tally;

pub use input::{Input, InputKind, Location};
pub use item::{Item, Sidecar};
pub use run::{audit, AuditError, AuditOptions, Outcome};
pub use tally::{BadRecord, Counts, Tally};

#[doc(no_inline)]
pub use crate::detect::Detectors;
