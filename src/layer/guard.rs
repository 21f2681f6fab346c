//! `RefusalGuardLayer`: runs detection on every answer and attaches the [`Verdict`].
//!
//! ```
//! use refusal_guard::layer::RefusalGuardLayer;
//! use refusal_guard::provider::OpenAiCompatible;
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//!
//! # fn build() -> Result<(), refusal_guard::Error> {
//! let qwen = OpenAiCompatible::dashscope_intl().api_key("sk-…").build()?;
//! let guarded = ServiceBuilder::new()
//!     .layer(
//!         RefusalGuardLayer::new()
//!             .window_tokens(16)
//!             .window_duration(Duration::from_millis(1000)),
//!     )
//!     .service(qwen);
//! # Ok(()) }
//! ```
//!
//! What it does, by response shape:
//! - **Complete answers**: the detectors judge the whole answer. A verdict in the
//!   stop set (by default the policy-driven classes that a re-route layer acts on) turns
//!   the response into [`Error::Refused`], which keeps the original completion; any
//!   other verdict is attached to the response's extensions.
//! - **Provider moderation errors** (a `data_inspection_failed` 400, say) become
//!   [`Error::Refused`] with a `ProviderBlock` verdict; the original error stays
//!   reachable as the refusal's cause ([`Error::provider_error`]).
//! - **Streams**: the response future does not resolve until the first chunks have been
//!   judged. The guard holds chunks back until it has seen `window_tokens` tokens or
//!   `window_duration` has passed, deciding earlier when a detector is already sure
//!   (`decide_confidence`), and up to `window_extension` tokens longer when the window
//!   ends on a refusal still forming ("I'm sorry, but I"). Then it either releases the held chunks unchanged and in
//!   order followed by the rest of the stream, or drops the upstream (the provider stops
//!   generating) and fails with [`Error::Refused`] holding what it had held back. Because
//!   the decision comes before the response, a gateway can put the verdict in headers.
//!   After the window the guard keeps watching: an output-stage block or a cut is turned
//!   into [`Error::Refused`] mid-stream, and the final verdict over the whole text is
//!   published through the [`StreamVerdict`] extension.
//!
//! A token of the window is one logprob entry where a chunk carries them, else one chunk
//! with content. The gateway asks DashScope, OpenAI and DeepSeek for logprobs by default,
//! so there the window is the provider's own tokens (16 of Qwen's are about 12 English
//! words, 5 Finnish ones or 22 Chinese characters: [`crate::tokens`]); a provider that
//! sends several tokens a chunk without logprobs is held back for more text than that.
//!
//! With [`RefusalGuardLayer::ask_logprobs`] the guard asks the provider for logprobs the
//! client did not request, judges with them, and hides them again (see [`super::logprobs`]).
//!
//! Only verdicts in the stop set stop anything. Put exactly the classes an outer layer
//! (the re-route layer, or the gateway) knows how to handle there; everything else is
//! released unchanged with its verdict attached. `observe_only` never stops at all, for
//! shadow deployments that only want the verdicts.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::watch;
use tower::{Layer, Service, ServiceExt};

use super::logprobs::{rejects_logprobs, strip_chunk, strip_completion, AskLogprobs};

use crate::detect::{Completeness, Detectors, Observation};
use crate::error::{Error, Refusal, RefusalRest};
use crate::judge::Decision;
use crate::provider::{ChatResponse, ChunkStream, ResponseBody};
use crate::verdict::{Verdict, VerdictSet};
use crate::wire::{ChatCompletionChunk, ChatRequest, FinishReason, TokenLogprob};

/// Default hold-back window in tokens: the streaming target's 16. How many refusals it
/// decides, in Qwen's tokens, is `refusal-guard eval --stream-window 16` (docs/testing.md;
/// the figures of 2026-12-06 are in models/combiner/README.md, "Windows cut in Qwen's tokens").
pub const DEFAULT_WINDOW_TOKENS: usize = 16;
/// Default hold-back window in time: a slow stream is released after this long.
pub const DEFAULT_WINDOW_DURATION: Duration = Duration::from_millis(1000);
/// Default extension of the window: tokens held back past `window_tokens` when the window
/// ends on a refusal still forming (see [`RefusalGuardLayer::window_extension`]).
///
/// Measured 2026-12-06 (`refusal-guard eval --tier e5 --stream-window 16 --window-extension
/// 16`, against `--window-extension 0`, in Qwen's tokens, over the four shared response
/// files, the team's regression sets and eight team files never trained on): English
/// refusals stopped before release 6,086 → 6,175 of 7,307, Chinese 809 → 813 of 934
/// (regression-zh 20 → 23 of 46); English answers stopped 1,712 → 1,760 of 10,416 (35 of the
/// 48 in gptfuzz, whose "answers" open with a refusal and then comply; none more in the
/// regression sets); 1.9% of English and 0.9% of Chinese answers held the longer window.
pub const DEFAULT_WINDOW_EXTENSION: usize = 16;
/// Default number of tokens between early judgements inside the window.
pub const DEFAULT_DECIDE_EVERY: usize = 4;
/// Default confidence at which a verdict inside the window is final at once.
pub const DEFAULT_DECIDE_CONFIDENCE: f32 = 0.8;

/// The guard's configuration, shared by every service the layer builds.
#[derive(Debug, Clone)]
struct GuardConfig {
    detectors: Detectors,
    window_tokens: usize,
    window_extension: usize,
    window_duration: Duration,
    decide_confidence: f32,
    decide_every: usize,
    stop_on: VerdictSet,
    observe_only: bool,
    logprobs: AskLogprobs,
    judge_prompts_early: bool,
}

/// A layer that judges every answer (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct RefusalGuardLayer {
    config: Arc<GuardConfig>,
}

impl Default for RefusalGuardLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RefusalGuardLayer {
    /// A guard with the default detectors, a 16-token / 1 s window, and the policy-driven
    /// stop set.
    pub fn new() -> Self {
        RefusalGuardLayer {
            config: Arc::new(GuardConfig {
                detectors: Detectors::default(),
                window_tokens: DEFAULT_WINDOW_TOKENS,
                window_extension: DEFAULT_WINDOW_EXTENSION,
                window_duration: DEFAULT_WINDOW_DURATION,
                decide_confidence: DEFAULT_DECIDE_CONFIDENCE,
                decide_every: DEFAULT_DECIDE_EVERY,
                stop_on: VerdictSet::policy_driven(),
                observe_only: false,
                logprobs: AskLogprobs::off(),
                judge_prompts_early: false,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut GuardConfig)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The detectors that judge answers.
    pub fn detectors(self, detectors: Detectors) -> Self {
        self.edit(|c| c.detectors = detectors)
    }

    /// How many tokens a stream may hold back before the guard must decide. 0 turns the
    /// hold-back off (chunks pass at once, and only the final verdict is recorded).
    pub fn window_tokens(self, tokens: usize) -> Self {
        self.edit(|c| c.window_tokens = tokens)
    }

    /// Tokens held back past the window when it ends on a refusal still forming: the
    /// window's verdict is an answer, but a pattern read a refusal, an apology or an AI
    /// disclaimer in it ("I'm sorry, but I", "As an AI developed by OpenAI, I must"). 16
    /// of Qwen's tokens are about 12 English words, and a refusal after a sentence of
    /// sympathy is often cut just before its verb. The window's time limit still holds.
    /// 0 turns it off.
    pub fn window_extension(self, tokens: usize) -> Self {
        self.edit(|c| c.window_extension = tokens)
    }

    /// How long a stream may be held back before the guard must decide.
    pub fn window_duration(self, duration: Duration) -> Self {
        self.edit(|c| c.window_duration = duration)
    }

    /// The confidence at which a non-answer verdict inside the window is acted on at once.
    pub fn decide_confidence(self, confidence: f32) -> Self {
        self.edit(|c| c.decide_confidence = confidence)
    }

    /// How many tokens arrive between two early judgements inside the window (the first
    /// comes with the first token). Default 4; 1 judges every chunk.
    pub fn decide_every(self, tokens: usize) -> Self {
        self.edit(|c| c.decide_every = tokens.max(1))
    }

    /// The verdict classes that stop an answer (as [`Error::Refused`]).
    pub fn stop_on(self, classes: VerdictSet) -> Self {
        self.edit(|c| c.stop_on = classes)
    }

    /// Never stop anything; only attach verdicts.
    pub fn observe_only(self, yes: bool) -> Self {
        self.edit(|c| c.observe_only = yes)
    }

    /// Asks the provider for logprobs the client did not request, for the checks only,
    /// and hides them from the client (default off; see [`super::logprobs`]).
    pub fn ask_logprobs(self, ask: AskLogprobs) -> Self {
        self.edit(|c| c.logprobs = ask)
    }

    /// Starts judging each request's prompt when the request is sent, so the judgment runs
    /// while the provider is still answering and a refusal finds it done (default off).
    ///
    /// The prompt is judged only to split a refusal or a block (justified, or a policy
    /// over-block to re-route), and only the learned decision judges it. Off, it is judged
    /// when a refusal arrives, which adds the judgment's time (milliseconds with the
    /// encoder tier; see benches/e5.rs) to the refusal's path and nothing to an answer's.
    /// On, every request pays the judgment in CPU time, refusal or not: turn it on where
    /// refusals are common or their latency matters more than CPU at peak load. Either way
    /// a prompt is judged once (the cascade remembers recent judgments,
    /// [`crate::classify::prompt_memo`]).
    pub fn judge_prompts_early(self, yes: bool) -> Self {
        self.edit(|c| c.judge_prompts_early = yes)
    }

    /// Names the wrapped provider for the logprob option, unless it was named already.
    pub(crate) fn name_provider(self, name: &Arc<str>) -> Self {
        if !self.config.logprobs.is_on() || self.config.logprobs.provider_name().is_some() {
            return self;
        }
        self.edit(|c| c.logprobs = c.logprobs.clone().provider(name.clone()))
    }
}

impl<S> Layer<S> for RefusalGuardLayer {
    type Service = RefusalGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let provider = Arc::new(OnceLock::new());
        if let Some(name) = self.config.logprobs.provider_name() {
            let _ = provider.set(name.clone());
        }
        RefusalGuard {
            inner,
            config: self.config.clone(),
            provider,
        }
    }
}

/// The service [`RefusalGuardLayer`] builds.
#[derive(Debug, Clone)]
pub struct RefusalGuard<S> {
    inner: S,
    config: Arc<GuardConfig>,
    /// The wrapped provider's name, once known: what a logprob rejection is remembered by.
    provider: Arc<OnceLock<Arc<str>>>,
}

/// How the window ended, recorded on streamed responses as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldBack {
    /// Tokens seen when the decision was made.
    pub tokens: usize,
    /// Chunks held back when the decision was made.
    pub chunks: usize,
    /// How long the window lasted.
    pub waited: Duration,
    /// Whether the decision came early (a confident verdict before the window filled).
    pub early: bool,
}

/// The verdict over a whole stream, published when the stream ends (an extension).
#[derive(Debug, Clone)]
pub struct StreamVerdict(watch::Receiver<Option<Verdict>>);

impl StreamVerdict {
    /// A handle and the sender that resolves it (layers that replace a stream replace its verdict too).
    pub(crate) fn channel() -> (watch::Sender<Option<Verdict>>, StreamVerdict) {
        let (tx, rx) = watch::channel(None);
        (tx, StreamVerdict(rx))
    }

    /// A handle that is already resolved.
    pub fn resolved(verdict: Verdict) -> StreamVerdict {
        let (tx, handle) = Self::channel();
        let _ = tx.send(Some(verdict));
        handle
    }

    /// The final verdict, if the stream has ended.
    pub fn get(&self) -> Option<Verdict> {
        self.0.borrow().clone()
    }

    /// Waits for the stream to end; `None` if it was dropped before its end.
    pub async fn wait(&self) -> Option<Verdict> {
        let mut rx = self.0.clone();
        let result = rx.wait_for(Option::is_some).await.map(|v| v.clone());
        match result {
            Ok(v) => v,
            Err(_) => rx.borrow().clone(),
        }
    }
}

impl<S> Service<ChatRequest> for RefusalGuard<S>
where
    // Clone: a provider that rejects the logprobs the guard asked for is asked again.
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let prompt = crate::layer::reroute::continuation::judged_prompt(&request);
        let config = self.config.clone();
        if config.judge_prompts_early {
            if let (Some(p), Decision::Learned(models)) = (prompt.as_deref(), config.detectors.decision()) {
                if !p.trim().is_empty() {
                    models.prompt.start_judging_prompt(p);
                }
            }
        }
        let known = self.provider.clone();
        let asked = config.logprobs.ask(&request, known.get().map(|n| &**n));
        let mut hide = asked.is_some();
        let (future, retry) = match asked {
            Some(asked) => (self.inner.call(asked), Some((self.inner.clone(), request))),
            None => (self.inner.call(request), None),
        };
        let guarded = async move {
            let mut result = future.await;
            if let Some((inner, request)) = retry {
                let rejected_by = result
                    .as_ref()
                    .err()
                    .filter(|e| rejects_logprobs(e))
                    .and_then(Error::as_provider)
                    .map(|e| e.provider.clone());
                if let Some(provider) = rejected_by {
                    // Once, without them; and never again for this provider and model.
                    config.logprobs.remember_rejection(&provider, &request.model);
                    let _ = known.set(Arc::from(provider));
                    hide = false;
                    result = inner.oneshot(request).await;
                }
            }
            if let Some(name) = result.as_ref().ok().and_then(ChatResponse::provider) {
                if known.get().is_none() {
                    let _ = known.set(Arc::from(name));
                }
            }
            match result {
                Ok(response) => guard_response(config, prompt, response, hide).await,
                Err(error) => guard_error(&config, prompt.as_deref(), error).await,
            }
        };
        Box::pin(tracing::Instrument::instrument(
            guarded,
            tracing::info_span!("guard"),
        ))
    }
}

/// A moderation error becomes a `ProviderBlock` refusal; other errors pass unchanged.
async fn guard_error(
    config: &GuardConfig,
    prompt: Option<&str>,
    error: Error,
) -> Result<ChatResponse, Error> {
    let Some(provider_error) = error.as_provider().filter(|e| e.is_moderation()) else {
        return Err(error);
    };
    let observation = Observation {
        prompt,
        error: Some(provider_error),
        ..Observation::text("")
    };
    let verdict = config.detectors.judge(&observation).await;
    Err(Error::Refused(Box::new(Refusal {
        verdict,
        provider: Some(provider_error.provider.clone()),
        held: Vec::new(),
        completion: None,
        cause: Some(error),
        rest: None,
    })))
}

/// Judges an answer; `hide` says the guard asked for its logprobs, which are then removed
/// from everything that leaves the guard.
async fn guard_response(
    config: Arc<GuardConfig>,
    prompt: Option<String>,
    mut response: ChatResponse,
    hide: bool,
) -> Result<ChatResponse, Error> {
    let provider = response.provider().map(str::to_string);
    match response.body {
        ResponseBody::Complete(mut completion) => {
            let text = completion.text();
            let observation = Observation {
                prompt: prompt.as_deref(),
                text: &text,
                tokens: completion.token_logprobs(),
                finish_reason: completion.finish_reason(),
                error: None,
                completeness: Completeness::Complete,
            };
            let calls_tools = completion
                .choices
                .first()
                .and_then(|c| c.message.tool_calls.as_ref())
                .is_some_and(|calls| !calls.is_empty());
            let verdict = if calls_tools {
                tool_call_verdict()
            } else {
                config.detectors.judge(&observation).await
            };
            if hide {
                strip_completion(&mut completion);
            }
            if stops(&config, &verdict) {
                return Err(Error::Refused(Box::new(Refusal {
                    verdict,
                    provider,
                    held: Vec::new(),
                    completion: Some(completion),
                    cause: None,
                    rest: None,
                })));
            }
            response.extensions.insert(verdict);
            response.body = ResponseBody::Complete(completion);
            Ok(response)
        }
        ResponseBody::Stream(stream) => {
            let mut watcher = StreamWatch::new(config, prompt, provider, hide);
            let window = watcher.hold_back(stream).await;
            match window {
                Window::Stop(refusal) => Err(Error::Refused(refusal)),
                Window::Fail(error) => Err(error),
                Window::Release {
                    verdict,
                    hold_back,
                    held,
                    upstream,
                } => {
                    let (tx, handle) = StreamVerdict::channel();
                    response.extensions.insert(verdict);
                    response.extensions.insert(hold_back);
                    response.extensions.insert(handle);
                    response.body = ResponseBody::Stream(watcher.release(held, upstream, tx));
                    Ok(response)
                }
            }
        }
    }
}

/// A tool call is an answer: the model did what it was asked, in the form asked. Its
/// (usually empty) content must not read as an empty answer.
fn tool_call_verdict() -> Verdict {
    let mut verdict = Verdict::new(crate::verdict::VerdictKind::Answer, 1.0);
    verdict.evidence.push(crate::verdict::Evidence {
        source: "tool_calls".into(),
        suggests: crate::verdict::VerdictClass::Answer,
        score: 1.0,
        reason: "the model called a tool".into(),
        span: None,
        tokens: Vec::new(),
    });
    verdict
}

/// Whether a window judged an answer ends on a refusal still forming: a pattern read a
/// non-answer in it (a refusal formula too weak alone, an apology, an AI disclaimer).
fn refusal_forming(verdict: &Verdict) -> bool {
    verdict.class() == crate::verdict::VerdictClass::Answer
        && verdict
            .evidence
            .iter()
            .any(|e| e.source == "patterns" && e.suggests.is_non_answer())
}

fn stops(config: &GuardConfig, verdict: &Verdict) -> bool {
    !config.observe_only && !verdict.is_answer() && config.stop_on.contains(verdict.class())
}

/// What the hold-back window decided.
enum Window {
    Stop(Box<Refusal>),
    /// The upstream failed before saying anything (a dropped connection, a body cut off,
    /// a malformed chunk): nothing was released, so the failure is the whole outcome. It
    /// is not an empty answer, and a fallback is asked the request anew, not to continue.
    Fail(Error),
    Release {
        verdict: Verdict,
        hold_back: HoldBack,
        held: Vec<ChatCompletionChunk>,
        /// `None` when the upstream already ended inside the window.
        upstream: Option<UpstreamRest>,
    },
}

/// What is left of the upstream after the window: the stream, or the error that ended it.
enum UpstreamRest {
    Stream(ChunkStream),
    Error(Error),
}

/// The running state of one guarded stream: the text and tokens so far.
struct StreamWatch {
    config: Arc<GuardConfig>,
    prompt: Option<String>,
    provider: Option<String>,
    text: String,
    tokens: Vec<TokenLogprob>,
    token_count: usize,
    finish_reason: Option<FinishReason>,
    tool_calls: bool,
    /// The guard asked for the logprobs: they are taken out of every chunk it records.
    hide: bool,
}

/// Tokens from the start whose alternatives (`top_logprobs`) are kept: the opening checks
/// read the first eight. Later tokens keep only the token and its logprob, which is all
/// the loop and low-confidence checks read.
const ALTERNATIVES_KEPT: usize = 16;

impl StreamWatch {
    fn new(config: Arc<GuardConfig>, prompt: Option<String>, provider: Option<String>, hide: bool) -> Self {
        StreamWatch {
            config,
            prompt,
            provider,
            text: String::new(),
            tokens: Vec::new(),
            token_count: 0,
            finish_reason: None,
            tool_calls: false,
            hide,
        }
    }

    /// Records a chunk; when the guard asked for its logprobs, moves them out of it.
    fn record(&mut self, chunk: &mut ChatCompletionChunk) {
        self.text.push_str(chunk.content());
        self.token_count += chunk.token_count();
        if self.hide {
            let taken = chunk
                .choices
                .first_mut()
                .and_then(|c| c.logprobs.take())
                .and_then(|l| l.content);
            strip_chunk(chunk);
            for token in taken.into_iter().flatten() {
                self.keep(token);
            }
        } else {
            for token in chunk.token_logprobs() {
                if self.tokens.len() < ALTERNATIVES_KEPT {
                    self.tokens.push(token.clone());
                } else {
                    self.keep(TokenLogprob {
                        token: token.token.clone(),
                        logprob: token.logprob,
                        ..Default::default()
                    });
                }
            }
        }
        if chunk.choices.iter().any(|c| c.delta.tool_calls.is_some()) {
            // Tool-call fragments carry no content but are the answer: they fill the window too.
            self.tool_calls = true;
            self.token_count += 1;
        }
        if let Some(reason) = chunk.finish_reason() {
            self.finish_reason = Some(reason.clone());
        }
    }

    fn keep(&mut self, mut token: TokenLogprob) {
        if self.tokens.len() >= ALTERNATIVES_KEPT {
            token.top_logprobs = None;
            token.bytes = None;
        }
        self.tokens.push(token);
    }

    /// Whether `error` ended the stream before it said anything: a failure (a stall, a
    /// cut, a malformed chunk), which a fallback answers anew, not an empty answer to stop.
    /// A provider's error event (a moderation block) is judged as evidence instead.
    fn failed_before_text(&self, error: &Error) -> bool {
        error.provider_error().is_none() && self.text.trim().is_empty()
    }

    async fn judge(&self, completeness: Completeness, error: Option<&Error>) -> Verdict {
        // A tool call cut by a broken connection is still a call, not an empty answer; a
        // moderation error after it is still a block.
        if self.tool_calls && error.is_none_or(|e| e.provider_error().is_none()) {
            return tool_call_verdict();
        }
        let observation = Observation {
            prompt: self.prompt.as_deref(),
            text: &self.text,
            tokens: &self.tokens,
            finish_reason: self.finish_reason.as_ref(),
            error: error.and_then(Error::provider_error),
            completeness,
        };
        self.config.detectors.judge(&observation).await
    }

    fn refusal(&self, verdict: Verdict, held: Vec<ChatCompletionChunk>, cause: Option<Error>) -> Refusal {
        Refusal {
            verdict,
            provider: self.provider.clone(),
            held,
            completion: None,
            cause,
            rest: None,
        }
    }

    /// A refusal stopped inside the window, with the unread rest of its stream (its
    /// logprobs taken out when the guard asked for them).
    fn stopped(
        &self,
        verdict: Verdict,
        held: Vec<ChatCompletionChunk>,
        upstream: ChunkStream,
    ) -> Box<Refusal> {
        let rest: ChunkStream = if self.hide {
            Box::pin(upstream.map(|item| {
                item.map(|mut chunk| {
                    strip_chunk(&mut chunk);
                    chunk
                })
            }))
        } else {
            upstream
        };
        let mut refusal = self.refusal(verdict, held, None);
        refusal.rest = Some(RefusalRest::new(rest));
        Box::new(refusal)
    }

    /// Pulls chunks until the window is full, the deadline passes, the upstream ends, or a
    /// detector is sure.
    async fn hold_back(&mut self, mut upstream: ChunkStream) -> Window {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.window_duration;
        let mut held = Vec::new();
        let mut next_check = 1;
        let hold_back = |held: &Vec<ChatCompletionChunk>, tokens, early| HoldBack {
            tokens,
            chunks: held.len(),
            waited: started.elapsed(),
            early,
        };
        if self.config.window_tokens == 0 {
            let verdict = Verdict::new(crate::verdict::VerdictKind::Answer, 0.5);
            return Window::Release {
                verdict,
                hold_back: hold_back(&held, 0, false),
                held,
                upstream: Some(UpstreamRest::Stream(upstream)),
            };
        }
        // The window's end, moved once by the extension when the window ends on a
        // refusal still forming; `judged` is the verdict that decided not to move it.
        let mut limit = self.config.window_tokens;
        let mut judged = None;
        loop {
            let next = tokio::time::timeout_at(deadline, upstream.next()).await;
            let (completeness, error) = match next {
                Err(_elapsed) => (Completeness::Partial, None),
                Ok(None) => (Completeness::Complete, None),
                Ok(Some(Err(e))) => {
                    let completeness = if matches!(e, Error::Truncated { .. }) || e.provider_error().is_none()
                    {
                        Completeness::Truncated
                    } else {
                        Completeness::Complete
                    };
                    (completeness, Some(e))
                }
                Ok(Some(Ok(mut chunk))) => {
                    self.record(&mut chunk);
                    held.push(chunk);
                    if self.token_count < limit {
                        // Judging every chunk would re-scan the growing prefix up to 16
                        // times; every few tokens decides just as early in practice.
                        if self.token_count >= next_check {
                            next_check = self.token_count + self.config.decide_every;
                            let verdict = self.judge(Completeness::Partial, None).await;
                            if stops(&self.config, &verdict)
                                && verdict.confidence >= self.config.decide_confidence
                            {
                                return Window::Stop(self.stopped(verdict, held, upstream));
                            }
                        }
                        continue;
                    }
                    if limit == self.config.window_tokens && self.config.window_extension > 0 {
                        let verdict = self.judge(Completeness::Partial, None).await;
                        if !stops(&self.config, &verdict) && refusal_forming(&verdict) {
                            limit = self.token_count + self.config.window_extension;
                            next_check = self.token_count + self.config.decide_every;
                            continue;
                        }
                        judged = Some(verdict);
                    }
                    (Completeness::Partial, None)
                }
            };
            if let Some(e) = error.as_ref().filter(|e| self.failed_before_text(e)) {
                tracing::debug!(error = %e, chunks = held.len(), "upstream failed inside the window before any text");
                return Window::Fail(error.expect("matched Some"));
            }
            let mut verdict = match judged.take() {
                Some(v) => v,
                None => self.judge(completeness, error.as_ref()).await,
            };
            verdict.elapsed = started.elapsed();
            let hb = hold_back(&held, self.token_count, false);
            let ended = completeness != Completeness::Partial;
            if stops(&self.config, &verdict) {
                return Window::Stop(match (ended, error) {
                    (false, None) => self.stopped(verdict, held, upstream),
                    (_, error) => Box::new(self.refusal(verdict, held, error)),
                });
            }
            let upstream = match (ended, error) {
                (false, _) => Some(UpstreamRest::Stream(upstream)),
                (true, Some(e)) => Some(UpstreamRest::Error(e)),
                (true, None) => None,
            };
            return Window::Release {
                verdict,
                hold_back: hb,
                held,
                upstream,
            };
        }
    }

    /// The stream the caller sees: the held chunks, then the rest of the upstream, watched.
    fn release(
        self,
        held: Vec<ChatCompletionChunk>,
        upstream: Option<UpstreamRest>,
        verdict_tx: watch::Sender<Option<Verdict>>,
    ) -> ChunkStream {
        let state = Released {
            watch: self,
            held: held.into_iter(),
            upstream,
            verdict_tx: Some(verdict_tx),
        };
        // Fused: callers may poll an ended stream once more (the re-route layer does
        // when a continuation ends early), and that must be a quiet `None`.
        Box::pin(
            futures::stream::unfold(state, |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            })
            .fuse(),
        )
    }
}

/// The state of a released stream.
struct Released {
    watch: StreamWatch,
    held: std::vec::IntoIter<ChatCompletionChunk>,
    upstream: Option<UpstreamRest>,
    verdict_tx: Option<watch::Sender<Option<Verdict>>>,
}

impl Released {
    async fn next(&mut self) -> Option<Result<ChatCompletionChunk, Error>> {
        if let Some(chunk) = self.held.next() {
            return Some(Ok(chunk));
        }
        match self.upstream.take() {
            Some(UpstreamRest::Stream(mut stream)) => match stream.next().await {
                Some(Ok(mut chunk)) => {
                    self.watch.record(&mut chunk);
                    self.upstream = Some(UpstreamRest::Stream(stream));
                    Some(Ok(chunk))
                }
                Some(Err(e)) => Some(Err(self.after_window_error(e).await)),
                None => {
                    self.publish(Completeness::Complete, None).await;
                    None
                }
            },
            Some(UpstreamRest::Error(e)) => Some(Err(self.after_window_error(e).await)),
            None => {
                if self.verdict_tx.is_some() {
                    self.publish(Completeness::Complete, None).await;
                }
                None
            }
        }
    }

    /// An error after content was released: an output-stage block or a cut. It is
    /// recorded as the final verdict and, when the stop set covers it, handed on as a
    /// refusal so that an outer layer can continue elsewhere.
    async fn after_window_error(&mut self, error: Error) -> Error {
        // The window closed on time with nothing, then the upstream stalled or was cut.
        let failed_before_text = self.watch.failed_before_text(&error);
        let completeness = if error.provider_error().is_some() {
            Completeness::Complete
        } else {
            Completeness::Truncated
        };
        let verdict = self.watch.judge(completeness, Some(&error)).await;
        self.send(verdict.clone());
        if stops(&self.watch.config, &verdict) && !failed_before_text {
            Error::Refused(Box::new(self.watch.refusal(verdict, Vec::new(), Some(error))))
        } else {
            error
        }
    }

    async fn publish(&mut self, completeness: Completeness, error: Option<&Error>) {
        let verdict = self.watch.judge(completeness, error).await;
        self.send(verdict);
    }

    fn send(&mut self, verdict: Verdict) {
        if let Some(tx) = self.verdict_tx.take() {
            let _ = tx.send(Some(verdict));
        }
    }
}
