//! How a server's model passes share the machine: at most a few run at once, at most a few
//! more wait, and the rest are not run at all.
//!
//! A model pass (an encoder reading an answer or a request, a generative guard's
//! generation) is milliseconds to seconds of one core. A server runs them as requests need
//! them, on tokio's blocking threads ([`blocking`]), and two bounds keep them from taking
//! the server down with them:
//! - **at most [`concurrent_passes`] run at once** (half the CPU's threads by default), so
//!   that a burst of passes cannot take every core from the requests that need none;
//! - **at most [`queued_passes`] wait for a turn** (8 per turn by default), a request's
//!   reading before an answer's ([`Priority`]). A pass that
//!   would wait behind more is *shed*: it is not run, and its caller judges without it
//!   ([`ClassifyError::Busy`]). Without this bound, traffic that needs passes faster than
//!   the turns can run them (short Chinese answers, each read by the encoder, at a few
//!   hundred requests a second on two cores) queued without end: every request waited
//!   for the whole queue ahead of it, seconds and growing (docs/gateway.md). Shed, an
//!   answer keeps the cheaper tiers' verdict, and a refusal whose request could not be
//!   checked is not re-routed (fail safe, [`crate::classify::PromptJudgement::unchecked`]).
//!
//! A waiting pass whose caller has gone (a client that hung up, a timeout around the
//! verdict: the future [`blocking`] returned was dropped) gives its place back unrun
//! (*abandoned*): a pass is only worth its core while somebody waits for its reading, and
//! with a generative guard's passes (seconds each) a full queue outlasts many clients'
//! timeouts. A pass already running is not stopped.
//!
//! [`pass_counters`] counts passes run, shed and abandoned, and those waiting now; the
//! gateway serves them as `refusal_guard_model_passes_total`,
//! `refusal_guard_model_passes_shed_total`, `refusal_guard_model_passes_abandoned_total` and
//! `refusal_guard_model_passes_waiting`. The batch
//! commands (`audit`, `eval`, `train`) judge on worker threads of their own, without a
//! runtime: their passes run inline and neither bound applies.
//!
//! ```
//! use refusal_guard::classify::{blocking, ClassifyError, Priority};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 1)]
//! # async fn main() {
//! // On a tokio runtime this waits for a turn on a blocking thread, or is shed when the
//! // queue is full; elsewhere it runs inline.
//! match blocking("example", Priority::Answer, || Ok::<_, ClassifyError>(40 + 2)).await {
//!     Ok(n) => assert_eq!(n, 42),
//!     Err(ClassifyError::Busy { waiting, .. }) => println!("{waiting} passes wait: judge without it"),
//!     Err(e) => panic!("{e}"),
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::ClassifyError;

/// The environment variable that sets [`concurrent_passes`]: a whole number from 1 (more
/// passes at once give the encoder more of the machine and the requests that need no pass
/// less; `serve` on a machine that does nothing else may want every core). Read once per
/// process; a value that is not a whole number from 1 gets a one-line notice on stderr (as
/// an unknown [`super::packed::KERNEL_ENV`] does) and the default is used.
pub const MODEL_PASSES_ENV: &str = "REFUSAL_GUARD_MODEL_PASSES";

/// The environment variable that sets [`queued_passes`]: a whole number from 0 (0: a pass
/// never waits; it runs at once or is shed) up to [`MAX_QUEUED_PASSES`]. Read once per
/// process; another value gets a one-line notice on stderr and the default (a larger one,
/// the maximum).
pub const MODEL_QUEUE_ENV: &str = "REFUSAL_GUARD_MODEL_QUEUE";

/// Passes allowed to wait, per pass allowed to run, by default ([`queued_passes`]).
///
/// Why 8: a pass waits for at most about this many passes ahead of it on its turn. An e5
/// pass is 3-30 ms on this project's 2-core machine (a request, a short answer, a
/// 128-token answer), so a request that needs one waits at most a quarter of a second
/// however far the traffic outruns the encoder, while a burst of a few requests is never
/// shed.
pub const DEFAULT_QUEUE_PER_PASS: usize = 8;

/// How many model passes (an encoder's, a generative guard's) a process runs at once on
/// tokio's blocking threads ([`blocking`]): [`MODEL_PASSES_ENV`] where set, else half the
/// CPU's threads, at least one.
///
/// Why a bound: each pass is milliseconds of one core's time, and a server runs them as
/// requests need them. Unbounded, a burst of passes took every core from the threads that
/// serve the requests needing none: on the project's 2-core machine at 2,000 requests/s,
/// with about 2% of answers needing an encoder pass, the gateway added 234 ms at p99 where
/// the bound leaves 23 ms (docs/gateway.md, "What the verdict costs the gateway").
pub fn concurrent_passes() -> usize {
    static CHOSEN: OnceLock<usize> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let half = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        from_env(MODEL_PASSES_ENV, "a whole number from 1", 1, half)
    })
}

/// The most passes [`MODEL_QUEUE_ENV`] may let wait. Each waits on one of tokio's
/// blocking threads (512 by default, shared with the runtime's file work), and passes are
/// served in order: were every blocking thread taken by a waiting pass, the pass first in
/// line could find none to start on, and none would run.
pub const MAX_QUEUED_PASSES: usize = 256;

/// How many model passes may wait for a turn at once ([`MODEL_QUEUE_ENV`] where set, at
/// most [`MAX_QUEUED_PASSES`], else [`DEFAULT_QUEUE_PER_PASS`] times [`concurrent_passes`]);
/// a pass that would wait behind this many is shed (see the module docs).
pub fn queued_passes() -> usize {
    static CHOSEN: OnceLock<usize> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let default = (DEFAULT_QUEUE_PER_PASS * concurrent_passes()).min(MAX_QUEUED_PASSES);
        let asked = from_env(MODEL_QUEUE_ENV, "a whole number from 0", 0, default);
        if asked > MAX_QUEUED_PASSES {
            eprintln!(
                "note: {MODEL_QUEUE_ENV}={asked} is over {MAX_QUEUED_PASSES}; using {MAX_QUEUED_PASSES}"
            );
        }
        asked.min(MAX_QUEUED_PASSES)
    })
}

/// The whole number in the environment variable `name` (at least `min`), else `default`;
/// a value that is not one gets a one-line notice.
fn from_env(name: &str, what: &str, min: usize, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(asked) => parse_count(&asked, min).unwrap_or_else(|| {
            eprintln!("note: {name}={asked:?} is not {what}; using {default}");
            default
        }),
    }
}

/// A whole number from `min`.
fn parse_count(text: &str, min: usize) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|&n| n >= min)
}

/// Model passes run, shed and waiting in this process's servers ([`pass_counters`]).
#[derive(Debug, Default)]
pub struct PassCounters {
    /// Passes that took a turn.
    pub run: Counter,
    /// Passes not run because [`queued_passes`] already waited for a turn.
    pub shed: Counter,
    /// Passes admitted to wait, then given up unrun because their caller had gone.
    pub abandoned: Counter,
    /// Passes waiting for a turn now: near [`queued_passes`], the next ones are shed.
    pub waiting: Gauge,
}

/// The process's pass counters (one set for the process, as the turns are).
pub fn pass_counters() -> &'static PassCounters {
    static COUNTERS: LazyLock<PassCounters> = LazyLock::new(PassCounters::default);
    &COUNTERS
}

/// The turns of [`concurrent_passes`] and the queue of [`queued_passes`], shared by every
/// tier of the process.
static PASSES: LazyLock<Turns> =
    LazyLock::new(|| Turns::new(concurrent_passes(), queued_passes(), pass_counters()));

/// Which passes go first when passes wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A reading of a request's harm. It decides whether a refusal is re-routed, and shed
    /// it fails safe (the refusal is kept): the product's first job undone. So a waiting
    /// request pass takes the next free turn before any answer pass, and it is shed only
    /// when [`queued_passes`] *request* passes already wait.
    Request,
    /// A reading of an answer. It refines a verdict the cheaper tiers have already made
    /// (an unsure whole answer, a short reply), so under load it waits behind the request
    /// passes and is the first to be shed.
    Answer,
}

impl Priority {
    fn index(self) -> usize {
        match self {
            Priority::Request => 0,
            Priority::Answer => 1,
        }
    }
}

/// Runs slow model code off the async runtime: on a tokio runtime through
/// `spawn_blocking`, where it waits for one of the process's [`concurrent_passes`] (or is
/// shed with [`ClassifyError::Busy`] when [`queued_passes`] already wait, see [`Priority`]);
/// elsewhere (a plain executor, as `eval` and `audit` use) inline.
pub async fn blocking<T: Send + 'static>(
    name: &str,
    priority: Priority,
    f: impl FnOnce() -> Result<T, ClassifyError> + Send + 'static,
) -> Result<T, ClassifyError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => blocking_on(&PASSES, handle, name, priority, f).await,
        Err(_) => f(),
    }
}

/// [`blocking`] on the turns `turns` (the process's, or a test's own).
async fn blocking_on<T: Send + 'static>(
    turns: &'static Turns,
    handle: tokio::runtime::Handle,
    name: &str,
    priority: Priority,
    f: impl FnOnce() -> Result<T, ClassifyError> + Send + 'static,
) -> Result<T, ClassifyError> {
    // Admitted here, on the async side: a shed pass costs no thread, and the count of
    // waiting passes includes those whose blocking thread has not started yet.
    let admitted = turns.admit(priority).map_err(|waiting| ClassifyError::Busy {
        model: name.to_string(),
        waiting,
    })?;
    let caller = Caller::new(turns);
    let gone = caller.gone.clone();
    let ran = handle.spawn_blocking(move || admitted.run_unless(&gone, f)).await;
    caller.stays();
    match ran {
        Ok(Some(result)) => result,
        // Only a dropped `Caller` sets the flag, so nobody reads this.
        Ok(None) => Err(ClassifyError::model(name, "its caller had gone")),
        Err(e) => Err(ClassifyError::model(name, e)),
    }
}

/// The waiting side of one admitted pass: dropped before [`Caller::stays`] (the future
/// awaiting the pass was dropped), it tells the pass its caller has gone, so that a pass
/// still waiting for a turn gives its place back unrun.
struct Caller {
    turns: &'static Turns,
    gone: Arc<AtomicBool>,
    waiting: bool,
}

impl Caller {
    fn new(turns: &'static Turns) -> Self {
        Caller {
            turns,
            gone: Arc::new(AtomicBool::new(false)),
            waiting: true,
        }
    }

    /// The pass's reading has come back: nothing to tell it.
    fn stays(mut self) {
        self.waiting = false;
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        if self.waiting {
            self.turns.leave(&self.gone);
        }
    }
}

/// A counting semaphore that blocking threads wait on, with a bound on how many may wait
/// and request passes first ([`Priority`]).
///
/// Why not tokio's: a pass waits for its turn on its blocking thread, never on an async
/// task. A tokio semaphore hands a released turn to the next waiting *task*, which must then
/// be polled to use it; where a runtime's thread is itself blocked waiting for a turn (a
/// caller that drives the verdict with `futures::executor::block_on` inside a runtime, as
/// tests and embedders do), the task holding the turn is never polled, and both wait
/// forever. Waiting on the blocking thread, the holder is always a running pass.
struct Turns {
    state: Mutex<Queue>,
    freed: Condvar,
    max_waiting: usize,
    counters: &'static PassCounters,
}

/// Free turns, and the passes admitted that do not hold one yet: a line per [`Priority`],
/// first come first served within it.
///
/// Why lines and not a count: a freed turn wakes every waiter (the next may be a request
/// pass's), and the first to win the lock would otherwise take it, whoever came first. In
/// one bench run that random order let some passes wait far longer than the queue's
/// length and doubled the gateway's added p99 under overload (docs/gateway.md).
struct Queue {
    free: usize,
    lines: [VecDeque<u64>; 2],
    next_id: u64,
}

impl Queue {
    fn waiting(&self) -> usize {
        self.lines[0].len() + self.lines[1].len()
    }

    /// How many passes a new pass of `priority` would wait behind: those admitted before it
    /// that go before it, less the turns free for them. `None` when a turn is left for it
    /// at once.
    fn ahead_of(&self, priority: Priority) -> Option<usize> {
        let before = match priority {
            Priority::Request => self.lines[0].len(),
            Priority::Answer => self.waiting(),
        };
        before.checked_sub(self.free)
    }

    /// Whether the waiting pass `id` of `priority` may take a free turn now: it is first in
    /// its line, and no request pass waits before an answer pass.
    fn may_take(&self, priority: Priority, id: u64) -> bool {
        self.free > 0
            && self.lines[priority.index()].front() == Some(&id)
            && (priority == Priority::Request || self.lines[0].is_empty())
    }
}

impl Turns {
    fn new(turns: usize, max_waiting: usize, counters: &'static PassCounters) -> Self {
        Turns {
            state: Mutex::new(Queue {
                free: turns.max(1),
                lines: [VecDeque::new(), VecDeque::new()],
                next_id: 0,
            }),
            freed: Condvar::new(),
            max_waiting,
            counters,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one pass: a free turn, or a place in its line. `Err(waiting)`, counted
    /// as shed, when `max_waiting` passes would already wait ahead of it.
    fn admit(&self, priority: Priority) -> Result<Admitted<'_>, usize> {
        let mut q = self.lock();
        if let Some(ahead) = q.ahead_of(priority).filter(|&ahead| ahead >= self.max_waiting) {
            self.counters.shed.inc();
            return Err(ahead);
        }
        let id = q.next_id;
        q.next_id += 1;
        q.lines[priority.index()].push_back(id);
        self.counters.waiting.set(q.waiting() as i64);
        Ok(Admitted {
            turns: Some(self),
            priority,
            id,
        })
    }

    /// Tells the pass that waits on `gone` that its caller has gone, and wakes the waiters.
    ///
    /// The flag is set before the lock is taken: a waiter reads it under the lock, so it
    /// either sees it or is already asleep when the wake-up comes.
    fn leave(&self, gone: &AtomicBool) {
        gone.store(true, Ordering::SeqCst);
        drop(self.lock());
        self.freed.notify_all();
    }
}

/// An admitted pass that does not hold a turn yet; dropped unrun (its blocking thread never
/// started, or its caller left while it waited), it gives its place back.
struct Admitted<'a> {
    turns: Option<&'a Turns>,
    priority: Priority,
    id: u64,
}

impl Admitted<'_> {
    /// Runs `f` once a turn is free for it, and frees the turn after (a panic in `f` too);
    /// `None`, unrun, when `gone` is set (by [`Turns::leave`]) before its turn comes.
    fn run_unless<T>(mut self, gone: &AtomicBool, f: impl FnOnce() -> T) -> Option<T> {
        struct Turn<'a>(&'a Turns);
        impl Drop for Turn<'_> {
            fn drop(&mut self) {
                self.0.lock().free += 1;
                // Every waiter looks; only the one whose turn it is takes it.
                self.0.freed.notify_all();
            }
        }
        let turns = self.turns.expect("an admitted pass runs once");
        let mut q = turns.lock();
        loop {
            if gone.load(Ordering::SeqCst) {
                drop(q);
                turns.counters.abandoned.inc();
                // Dropping `self` gives the place back and wakes the next in line.
                return None;
            }
            if q.may_take(self.priority, self.id) {
                break;
            }
            q = turns.freed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        self.turns = None;
        q.free -= 1;
        q.lines[self.priority.index()].pop_front();
        turns.counters.waiting.set(q.waiting() as i64);
        if q.free > 0 && q.waiting() > 0 {
            // A turn is still free, and the next in line may have waited only for this one.
            turns.freed.notify_all();
        }
        drop(q);
        turns.counters.run.inc();
        let _turn = Turn(turns);
        Some(f())
    }

    /// [`Self::run_unless`] for a caller that never leaves.
    #[cfg(test)]
    fn run<T>(self, f: impl FnOnce() -> T) -> T {
        self.run_unless(&AtomicBool::new(false), f)
            .expect("nobody leaves")
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(turns) = self.turns {
            let mut q = turns.lock();
            q.lines[self.priority.index()].retain(|&id| id != self.id);
            turns.counters.waiting.set(q.waiting() as i64);
            drop(q);
            // The next in line may have waited for this one.
            turns.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn the_variables_take_whole_numbers_from_their_minimum() {
        assert_eq!(parse_count("3", 1), Some(3));
        assert_eq!(parse_count(" 1 ", 1), Some(1));
        assert_eq!(parse_count("0", 0), Some(0));
        for bad in ["0", "-2", "two", "1.5", ""] {
            assert_eq!(parse_count(bad, 1), None, "{bad:?}");
        }
    }

    fn counters() -> &'static PassCounters {
        Box::leak(Box::default())
    }

    /// An answer pass holding `turns`' only turn until the sender is used (or dropped).
    fn hold_the_turn(turns: &'static Turns) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (release, hold) = mpsc::channel::<()>();
        let (started, holder_started) = mpsc::channel();
        let holder = turns.admit(Priority::Answer).expect("a free turn");
        let holder = std::thread::spawn(move || {
            holder.run(|| {
                started.send(()).unwrap();
                let _ = hold.recv();
            })
        });
        holder_started.recv().unwrap();
        (release, holder)
    }

    /// One turn, two places in the queue: with the turn held and two passes waiting, the
    /// next is shed at once (it takes no thread and does not wait); once the holder ends, the
    /// waiters run, and places free up again.
    #[test]
    fn a_pass_beyond_the_queue_is_shed_and_the_queued_ones_still_run() {
        let c = counters();
        let turns: &'static Turns = Box::leak(Box::new(Turns::new(1, 2, c)));
        let (release, holder) = hold_the_turn(turns);
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let place = turns.admit(Priority::Answer).expect("a place in the queue");
                std::thread::spawn(move || place.run(|| i))
            })
            .collect();
        assert_eq!(
            turns.admit(Priority::Answer).err(),
            Some(2),
            "a third waiter is shed"
        );
        assert_eq!((c.shed.get(), c.waiting.get()), (1, 2));
        release.send(()).unwrap();
        holder.join().unwrap();
        let mut ran: Vec<i32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        ran.sort();
        assert_eq!(ran, [0, 1]);
        assert_eq!((c.run.get(), c.waiting.get()), (3, 0));
        let q = turns.lock();
        assert_eq!((q.free, q.waiting()), (1, 0));
    }

    /// A waiting pass whose caller leaves gives its place back unrun, is counted as
    /// abandoned, and the pass behind it moves up: once the holder ends, that one runs.
    #[test]
    fn a_waiting_pass_whose_caller_leaves_is_not_run_and_frees_its_place() {
        let c = counters();
        let turns: &'static Turns = Box::leak(Box::new(Turns::new(1, 2, c)));
        let (release, holder) = hold_the_turn(turns);
        let gone = Arc::new(AtomicBool::new(false));
        let (left, leaver) = mpsc::channel();
        {
            let (place, gone) = (turns.admit(Priority::Answer).unwrap(), gone.clone());
            std::thread::spawn(move || left.send(place.run_unless(&gone, || "ran")));
        }
        let stayer = {
            let place = turns.admit(Priority::Answer).unwrap();
            std::thread::spawn(move || place.run(|| "ran"))
        };
        assert!(turns.admit(Priority::Answer).is_err(), "the queue is full");
        while turns.lock().waiting() < 2 {
            std::thread::yield_now();
        }
        turns.leave(&gone);
        let left = leaver
            .recv_timeout(Duration::from_secs(10))
            .expect("the pass whose caller left still waits for a turn");
        assert_eq!(left, None, "the pass ran for nobody");
        assert_eq!((c.abandoned.get(), c.waiting.get()), (1, 1));
        let again = turns.admit(Priority::Answer).expect("the place given back");
        release.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(stayer.join().unwrap(), "ran");
        assert_eq!(again.run(|| 3), 3);
        assert_eq!((c.run.get(), c.shed.get(), c.abandoned.get()), (3, 1, 1));
        assert_eq!(turns.lock().waiting(), 0);
    }

    /// Through the async side: the future of a pass that waits for a turn is dropped (a
    /// timeout around the verdict); the pass never runs, and the next caller's does.
    #[test]
    fn a_dropped_future_abandons_its_waiting_pass() {
        let c = counters();
        let turns: &'static Turns = Box::leak(Box::new(Turns::new(1, 4, c)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        rt.block_on(async {
            let (release, hold) = mpsc::channel::<()>();
            let (started, holder_started) = mpsc::channel();
            let holder = tokio::spawn(blocking_on(
                turns,
                handle.clone(),
                "test",
                Priority::Answer,
                move || {
                    started.send(()).unwrap();
                    hold.recv().unwrap();
                    Ok(1)
                },
            ));
            holder_started.recv().unwrap();
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let waited = tokio::time::timeout(
                Duration::from_millis(50),
                blocking_on(turns, handle.clone(), "test", Priority::Answer, move || {
                    flag.store(true, Ordering::SeqCst);
                    Ok(2)
                }),
            )
            .await;
            assert!(waited.is_err(), "the turn was held: {waited:?}");
            // The blocking thread notices its caller left.
            for _ in 0..2_000 {
                if c.abandoned.get() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!((c.abandoned.get(), c.waiting.get()), (1, 0));
            release.send(()).unwrap();
            assert_eq!(holder.await.unwrap().unwrap(), 1);
            let next = blocking_on(turns, handle.clone(), "test", Priority::Answer, || Ok(3)).await;
            assert_eq!(next.unwrap(), 3);
            assert!(!ran.load(Ordering::SeqCst), "the abandoned pass ran");
            assert_eq!((c.run.get(), c.abandoned.get()), (2, 1));
        });
    }

    /// A queue of 0: a pass runs when a turn is free and is shed otherwise; a place taken
    /// and given back unrun (its thread never started) frees it.
    #[test]
    fn with_no_queue_a_pass_runs_at_once_or_not_at_all() {
        let c = counters();
        let turns = Turns::new(1, 0, c);
        let first = turns.admit(Priority::Request).expect("the free turn");
        assert!(turns.admit(Priority::Request).is_err(), "no turn and no queue");
        drop(first);
        let again = turns.admit(Priority::Answer).expect("the place given back");
        assert_eq!(again.run(|| 7), 7);
        assert_eq!((c.run.get(), c.shed.get(), c.waiting.get()), (1, 1, 0));
    }

    /// With the turn held and the answer passes' queue full: a request pass is still
    /// admitted, and it takes the freed turn before the answer passes that waited longer.
    #[test]
    fn a_request_pass_goes_before_the_waiting_answer_passes_and_is_not_shed_by_them() {
        let c = counters();
        let turns: &'static Turns = Box::leak(Box::new(Turns::new(1, 2, c)));
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (release, holder) = hold_the_turn(turns);
        let pass = |priority, name: &'static str| {
            let place = turns.admit(priority).unwrap_or_else(|_| panic!("{name} shed"));
            let order = order.clone();
            std::thread::spawn(move || place.run(|| order.lock().unwrap().push(name)))
        };
        let answers = [
            pass(Priority::Answer, "answer 1"),
            pass(Priority::Answer, "answer 2"),
        ];
        assert!(
            turns.admit(Priority::Answer).is_err(),
            "the answers' queue is full"
        );
        // Let both answer passes reach their wait before the request pass comes.
        while turns.lock().lines[1].len() < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        let request = pass(Priority::Request, "request");
        release.send(()).unwrap();
        holder.join().unwrap();
        request.join().unwrap();
        answers.into_iter().for_each(|a| a.join().unwrap());
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], "request", "{order:?}");
        assert_eq!((c.run.get(), c.shed.get()), (4, 1));
    }

    /// Tasks waiting for passes, and the runtime's only thread blocked on a pass of its own
    /// (a caller driving the verdict with `futures::executor::block_on` inside a runtime):
    /// every pass still runs. With turns handed to waiting tasks, the next task's turn
    /// waited for a thread that waited for a turn, for ever.
    #[test]
    fn a_runtime_thread_blocked_on_a_pass_never_starves_the_waiting_tasks() {
        let (done, finished) = mpsc::channel();
        // Fewer waiters than the queue holds, so none is shed.
        let waiters = (concurrent_passes() + 3).min(queued_passes());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(async {
                let pass = |i: usize| {
                    blocking("test", Priority::Answer, move || {
                        std::thread::sleep(Duration::from_millis(5));
                        Ok(i)
                    })
                };
                let tasks: Vec<_> = (0..waiters).map(|i| tokio::spawn(pass(i))).collect();
                tokio::task::yield_now().await;
                let mine = futures::executor::block_on(pass(99));
                let mut theirs = Vec::new();
                for t in tasks {
                    theirs.push(t.await.unwrap());
                }
                (mine, theirs)
            });
            let _ = done.send(got);
        });
        let (mine, theirs) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the passes deadlocked");
        // Other tests of this process share the queue: a pass may be shed, never lost.
        let ran: Vec<usize> = theirs
            .into_iter()
            .filter_map(|r| match r {
                Ok(i) => Some(i),
                Err(ClassifyError::Busy { .. }) => None,
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert!(
            matches!(mine, Ok(99) | Err(ClassifyError::Busy { .. })),
            "{mine:?}"
        );
        assert!(ran.windows(2).all(|w| w[0] < w[1]) && !ran.is_empty(), "{ran:?}");
    }
}
