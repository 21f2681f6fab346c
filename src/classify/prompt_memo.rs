//! The prompt judgments a [`Cascade`](super::Cascade) has made or started, remembered by
//! the prompt's sha256 (a bounded LRU), so that one request's prompt is judged once.
//!
//! Why: the prompt judgment is the slow part of splitting a refusal (the encoder tier takes
//! milliseconds where the n-gram model takes microseconds), and the same prompt is asked
//! about more than once: a block and then a refusal of the same request, each attempt of a
//! re-routed request, a client's retries. And a judgment can start *before* it is needed:
//! the guard layer's [`judge_prompts_early`](crate::layer::RefusalGuardLayer::judge_prompts_early)
//! starts it when the request is sent, so it runs while the provider is still answering,
//! and a refusal finds it done. Each entry is a shared future: whoever asks first starts it,
//! later askers wait on the same run.
//!
//! Keys are hashes, not texts, so memory is bounded by the entry count whatever the prompts'
//! length. The judgment of a prompt depends only on the prompt and the installed models, so
//! a remembered one is as good as a fresh one.

use futures::future::{BoxFuture, FutureExt, Shared};

use super::text_lru::TextLru;
use super::PromptJudgement;

/// What the cascade's prompt question returns: the judgment and the tier that made it.
pub type Judged = Option<(PromptJudgement, String)>;

/// A judgment under way or done, which any number of askers can await.
pub type Pending = Shared<BoxFuture<'static, Judged>>;

/// Entries kept by default: a few seconds of a busy gateway's distinct prompts.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The prompt judgments made or started, newest kept.
pub struct PromptMemo {
    entries: TextLru<Pending>,
}

impl std::fmt::Debug for PromptMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptMemo")
            .field("entries", &self.entries.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}

impl Default for PromptMemo {
    fn default() -> Self {
        PromptMemo::with_capacity(DEFAULT_CAPACITY)
    }
}

impl PromptMemo {
    /// A memo keeping at most `capacity` judgments (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        PromptMemo {
            entries: TextLru::with_capacity(capacity),
        }
    }

    /// The judgment of `prompt`: the remembered one, or one started now with `judge` and
    /// remembered. The caller awaits the returned future (or lets it run elsewhere).
    pub fn get_or_start(&self, prompt: &str, judge: impl FnOnce() -> BoxFuture<'static, Judged>) -> Pending {
        self.entries.get_or_insert_with(prompt, || judge().shared())
    }

    /// Forgets the judgment of `prompt` (one under way still finishes for whoever awaits it),
    /// so that the next asker judges it anew.
    pub fn forget(&self, prompt: &str) {
        self.entries.remove(prompt);
    }

    /// Forgets every judgment (one under way still finishes for whoever awaits it).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// How many judgments are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts `pending` on the tokio runtime, if there is one, so that it makes progress before
/// anyone awaits it. Elsewhere (a plain executor) it runs when first awaited.
pub fn run_now(pending: &Pending) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(pending.clone().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn judged(p: f32) -> Judged {
        Some((PromptJudgement::harm(p), "test".into()))
    }

    #[tokio::test]
    async fn a_prompt_is_judged_once_and_the_oldest_entry_goes_first() {
        let memo = PromptMemo::with_capacity(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let judge = |p: f32| {
            let runs = runs.clone();
            move || {
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    judged(p)
                }
                .boxed()
            }
        };
        assert_eq!(memo.get_or_start("a", judge(0.1)).await, judged(0.1));
        // Remembered: the second judge is never run, and the first answer comes back.
        assert_eq!(memo.get_or_start("a", judge(0.9)).await, judged(0.1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        memo.get_or_start("b", judge(0.2)).await;
        memo.get_or_start("c", judge(0.3)).await;
        assert_eq!(memo.len(), 2);
        // "a" was the least recently used, so it was dropped and is judged again.
        assert_eq!(memo.get_or_start("a", judge(0.4)).await, judged(0.4));
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_started_judgment_runs_before_anyone_awaits_it() {
        let memo = PromptMemo::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = memo.get_or_start("p", move || {
            async move {
                let _ = tx.send(());
                judged(0.5)
            }
            .boxed()
        });
        run_now(&pending);
        // Nobody awaits `pending`; the spawned run still reaches the send.
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .expect("the judgment did not start on its own")
            .expect("sender dropped");
        assert_eq!(pending.await, judged(0.5));
    }
}
