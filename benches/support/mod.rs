//! What the one-core benches share (`mod support;` in `benches/e5.rs` and
//! `benches/cascade_cost.rs`): the one-core setup and the process CPU clock.
//!
//! A subfolder module, not a file at the top of benches/, so that cargo does not take it
//! for a bench target of its own.

use std::path::PathBuf;

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
