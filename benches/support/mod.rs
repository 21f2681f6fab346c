//! What the benches share (`mod support;` in `benches/e5.rs`, `benches/cascade_cost.rs`,
//! `benches/pattern_scan.rs` and `benches/gateway_overhead.rs`): settings from the
//! environment, the one-core setup, the process CPU clock, and the shared datasets' answers
//! in a seeded order.
//!
//! A subfolder module, not a file at the top of benches/, so that cargo does not take it
//! for a bench target of its own.

// Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use refusal_guard::dataset::{datasets_dir, fnv1a64, read_records, Record};

/// Pins the models to one core and points the hf-hub cache at the checkout's own, unless
/// the caller set either: `RAYON_NUM_THREADS=1` (candle's matrix products run on rayon;
/// one core is what a tier gets beside a server's other work) and `HF_HOME=<repo>/.cache/hf`
/// (where `scripts/setup-models.sh` imports the test models). Call it first thing in
/// `main`, before anything starts rayon's thread pool.
pub fn one_core_setup() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    if std::env::var_os("HF_HOME").is_none() {
        std::env::set_var(
            "HF_HOME",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/hf"),
        );
    }
}

/// CPU time of the whole process (all its threads) in nanoseconds: on a machine shared
/// with other builds, wall time measures the contention; CPU time measures the work.
///
/// From `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, not /proc/self/task/*/schedstat: on some
/// kernels (this project's build VMs) schedstat only advances at scheduler ticks (4 ms),
/// coarser than a whole verdict. 0 where the clock is missing.
pub fn process_cpu_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
    }
    0
}

/// The setting `name` from the environment, or `default` when it is unset (or, with a
/// warning, when it does not parse).
pub fn env<T: std::str::FromStr + std::fmt::Display>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} does not parse; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// The shared datasets folder, or `None` after saying on stderr that `bench` is skipped
/// without it (a bench on a machine without ../shared measures nothing rather than fail).
pub fn datasets_or_skip(bench: &str) -> Option<PathBuf> {
    match datasets_dir() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("{bench} bench skipped: {e}");
            None
        }
    }
}

/// A response file's records with a non-empty answer, ordered by a seeded FNV-1a hash of
/// their ids: the first `n` are a sample that is the same on every machine and every Rust
/// release.
pub fn in_seeded_order(path: &Path, seed: u64) -> Result<Vec<Record>, String> {
    let mut records: Vec<(u64, Record)> = read_records(path)?
        .into_iter()
        .filter(|r| !r.response.trim().is_empty())
        .map(|r| (fnv1a64(format!("{seed}:{}", r.id).as_bytes()), r))
        .collect();
    records.sort_by_key(|(h, _)| *h);
    Ok(records.into_iter().map(|(_, r)| r).collect())
}
