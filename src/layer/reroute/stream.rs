//! The stream the re-route layer hands to the caller: the upstream's chunks, watched so
//! that a cut after content was released continues on the next provider.

use std::collections::VecDeque;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;

use super::continuation::{continuation_request, overlap};
use super::{estimate_tokens, fails_over, usage_of, Run};
use crate::error::Error;
use crate::layer::StreamVerdict;
use crate::provider::{ChunkStream, ResponseBody};
use crate::verdict::{Verdict, VerdictClass};
use crate::wire::{ChatCompletionChunk, FinishReason, Usage};

/// How much of a continuation is read before the overlap with the released text is
/// judged: enough to see a repeated sentence, little enough not to delay the stream.
const CONTINUATION_HEAD_BYTES: usize = 64;

pub(super) struct Continuing {
    run: Run,
    current: ChunkStream,
    /// The provider index answering now.
    index: usize,
    /// The attempt record of the provider answering now.
    attempt: usize,
    /// Content the caller has received so far.
    released: String,
    /// Tokens the current provider has sent (for the usage estimate when it sends none).
    tokens: u64,
    usage_seen: bool,
    pending: VecDeque<ChatCompletionChunk>,
    /// The id of the first chunk: continuation chunks carry it too, so the caller sees one stream.
    stream_id: Option<String>,
    rerouted: bool,
    continuations: usize,
    marked: bool,
    done: bool,
    /// Whether all that was released is the text of choice 0: a tool call, a legacy
    /// function call or a second choice cannot be continued from released text (a
    /// fallback would be handed an empty answer and start a new one after a half call).
    text_only: bool,
    /// The final verdict of the provider answering now, and the caller's handle to feed.
    verdict_source: Option<StreamVerdict>,
    verdict_tx: Option<watch::Sender<Option<Verdict>>>,
}

impl Continuing {
    pub(super) fn start(
        run: Run,
        upstream: ChunkStream,
        index: usize,
        attempt: usize,
        verdict_source: Option<StreamVerdict>,
        verdict_tx: watch::Sender<Option<Verdict>>,
    ) -> ChunkStream {
        let state = Continuing {
            run,
            current: upstream,
            index,
            attempt,
            released: String::new(),
            tokens: 0,
            usage_seen: false,
            pending: VecDeque::new(),
            stream_id: None,
            rerouted: index > 0,
            continuations: 0,
            marked: false,
            done: false,
            text_only: true,
            verdict_source,
            verdict_tx: Some(verdict_tx),
        };
        Box::pin(
            futures::stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            })
            .fuse(),
        )
    }

    async fn next(&mut self) -> Option<Result<ChatCompletionChunk, Error>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(Ok(self.emit(chunk)));
            }
            if self.done {
                return None;
            }
            match self.current.next().await {
                Some(Ok(chunk)) => return Some(Ok(self.emit(chunk))),
                Some(Err(error)) => {
                    if self.continuable(&error) {
                        match self.continue_elsewhere(error).await {
                            Ok(()) => continue,
                            Err(error) => {
                                self.done = true;
                                return Some(Err(error));
                            }
                        }
                    }
                    self.done = true;
                    return Some(Err(error));
                }
                None => {
                    self.done = true;
                    self.close_attempt();
                    self.publish_verdict().await;
                    if self.rerouted && !self.marked {
                        let marker = self.marker_chunk();
                        return Some(Ok(marker));
                    }
                    return None;
                }
            }
        }
    }

    /// Passes a chunk to the caller, keeping the record of what was released.
    fn emit(&mut self, mut chunk: ChatCompletionChunk) -> ChatCompletionChunk {
        if self.stream_id.is_none() {
            self.stream_id = chunk.id.clone();
        } else if self.continuations > 0 {
            chunk.id = self.stream_id.clone();
        }
        self.released.push_str(chunk.content());
        self.text_only &= chunk.choices.iter().all(|c| {
            c.index == 0
                && c.delta.tool_calls.as_ref().is_none_or(Vec::is_empty)
                && !c.delta.extra.contains_key("function_call")
        });
        self.tokens += chunk.token_count() as u64;
        if let Some(usage) = &chunk.usage {
            self.usage_seen = true;
            let usage = usage.clone();
            self.set_usage(usage, false);
        }
        if self.rerouted && chunk.finish_reason().is_some() {
            chunk.extra.insert("refusal_guard".into(), self.marker());
            self.marked = true;
        }
        chunk
    }

    async fn publish_verdict(&mut self) {
        if let Some(tx) = self.verdict_tx.take() {
            let verdict = match self.verdict_source.take() {
                Some(source) => source.wait().await,
                None => None,
            };
            let _ = tx.send(verdict);
        }
    }

    fn marker(&self) -> serde_json::Value {
        let attempts = self.run.attempts.snapshot();
        json!({
            "rerouted": true,
            "continued": self.continuations > 0,
            "providers": attempts.iter().map(|a| a.provider.as_str()).collect::<Vec<_>>(),
            "verdicts": attempts.iter().map(|a| a.verdict.map(|v| v.as_str())).collect::<Vec<_>>(),
        })
    }

    /// A final chunk for a re-routed stream that ended without a finish chunk to mark.
    fn marker_chunk(&mut self) -> ChatCompletionChunk {
        self.marked = true;
        let mut chunk = ChatCompletionChunk::closing(self.stream_id.clone(), FinishReason::Stop);
        chunk.extra.insert("refusal_guard".into(), self.marker());
        chunk
    }

    fn set_usage(&self, usage: Usage, estimated: bool) {
        let cost = self
            .run
            .config
            .prices
            .get(&self.provider_name())
            .map(|p| p.cost(&usage));
        self.run.attempts.update(self.attempt, |a| {
            a.usage = Some(usage);
            a.usage_estimated = estimated;
            a.cost = cost;
        });
    }

    fn provider_name(&self) -> String {
        self.run
            .attempts
            .snapshot()
            .get(self.attempt)
            .map(|a| a.provider.clone())
            .unwrap_or_default()
    }

    /// The current provider is done: estimate its usage if it reported none.
    fn close_attempt(&mut self) {
        if !self.usage_seen {
            let (usage, _) = usage_of(None, self.run.estimated_prompt_tokens(), self.tokens);
            self.set_usage(usage.unwrap_or_default(), true);
        }
    }

    fn continuable(&self, error: &Error) -> bool {
        if !self.run.config.continue_mid_stream
            || !self.text_only
            || self.index + 1 >= self.run.provider_count()
        {
            return false;
        }
        match error {
            Error::Refused(r) => self.run.reroutes(&r.verdict),
            Error::Truncated { .. } | Error::Timeout { .. } => true,
            Error::Transport { .. } | Error::Malformed { .. } => true,
            Error::Provider(e) => e.is_moderation() || e.is_retryable(),
            _ => false,
        }
    }

    /// Asks the next providers, in order, to continue what was released.
    async fn continue_elsewhere(&mut self, cause: Error) -> Result<(), Error> {
        self.close_attempt();
        tracing::info!(
            provider = %self.provider_name(),
            verdict = cause.as_refusal().map(|r| r.verdict.class().as_str()),
            "stream cut after content; continuing on the next provider"
        );
        self.run.attempts.update(self.attempt, |a| {
            a.error = Some(cause.to_string());
            if let Some(r) = cause.as_refusal() {
                a.verdict = Some(r.verdict.class());
            }
        });
        let mut last = cause;
        for index in self.index + 1..self.run.provider_count() {
            let request =
                continuation_request(&self.run.request, &self.released, &self.run.config.continuation);
            let request = self.run.request_for(index, &request);
            let model = request.model.clone();
            let started = Instant::now();
            let result = self.run.call_fallback(index, request).await;
            let mut attempt = self.run.attempt(index, None, &model, started.elapsed());
            attempt.continuation = true;
            match result {
                Ok(response) => {
                    attempt.verdict = response.extensions.get::<Verdict>().map(Verdict::class);
                    if let Some(v) = response
                        .extensions
                        .get::<Verdict>()
                        .filter(|v| !continues_answer(v.class()))
                    {
                        // A refusal is not the rest of an answer: spliced after the released
                        // text it would read as one garbled reply. A class the route
                        // re-routes asks the next provider; any other ends the stream with
                        // the cut that started this.
                        let moves_on = self.run.reroutes(v);
                        attempt.error = Some(format!("continuation not used: {v}"));
                        self.run.record(attempt);
                        if moves_on {
                            continue;
                        }
                        return Err(last);
                    }
                    self.verdict_source = response.extensions.get::<StreamVerdict>().cloned().or_else(|| {
                        response
                            .extensions
                            .get::<Verdict>()
                            .cloned()
                            .map(StreamVerdict::resolved)
                    });
                    let (stream, head) = match response.body {
                        ResponseBody::Stream(mut stream) => {
                            match read_head(&mut stream, &self.released).await {
                                Ok(head) => (stream, head),
                                Err(e) => {
                                    // Nothing of it reached the caller: the next provider may still do.
                                    attempt.error = Some(e.to_string());
                                    self.run.record(attempt);
                                    last = e;
                                    continue;
                                }
                            }
                        }
                        ResponseBody::Complete(c) => {
                            (attempt.usage, attempt.usage_estimated) = usage_of(
                                c.usage.as_ref(),
                                self.run.estimated_prompt_tokens(),
                                estimate_tokens(&c.text()),
                            );
                            let chunks = crate::provider::as_chunks(c);
                            (Box::pin(futures::stream::empty()) as ChunkStream, chunks)
                        }
                    };
                    self.attempt = self.run.record(attempt);
                    self.index = index;
                    self.current = stream;
                    self.tokens = 0;
                    self.usage_seen = false;
                    self.rerouted = true;
                    self.continuations += 1;
                    self.pending = self.trim(head).into();
                    return Ok(());
                }
                Err(Error::Refused(refusal)) if refusal.verdict.class() == VerdictClass::Empty => {
                    // Nothing (or only whitespace) left to say: the answer was all but
                    // complete when it was cut. What the fallback sent is the end of it.
                    attempt.verdict = Some(VerdictClass::Empty);
                    self.attempt = self.run.record(attempt);
                    self.index = index;
                    self.current = Box::pin(futures::stream::empty());
                    self.tokens = 0;
                    self.usage_seen = false;
                    self.rerouted = true;
                    self.continuations += 1;
                    self.pending = self.trim(refusal.held).into();
                    return Ok(());
                }
                Err(e) if fails_over(&e) || e.as_refusal().is_some_and(|r| self.run.reroutes(&r.verdict)) => {
                    attempt.verdict = e.as_refusal().map(|r| r.verdict.class());
                    attempt.error = Some(e.to_string());
                    self.run.record(attempt);
                    // A provider skipped in its cooldown says nothing about this answer:
                    // the cut that started the continuation stays the stream's error.
                    if e.cooling_down_for().is_none() {
                        last = e;
                    }
                }
                Err(e) => {
                    attempt.error = Some(e.to_string());
                    self.run.record(attempt);
                    return Err(e);
                }
            }
        }
        Err(last)
    }

    /// Drops what the continuation repeats of the released text, and the role marker
    /// (the caller already had the stream's first chunk).
    fn trim(&self, mut head: Vec<ChatCompletionChunk>) -> Vec<ChatCompletionChunk> {
        let text: String = head.iter().map(|c| c.content()).collect();
        let mut skip = overlap(&self.released, &text, self.run.config.min_overlap);
        for chunk in &mut head {
            for choice in &mut chunk.choices {
                choice.delta.role = None;
                if skip > 0 {
                    if let Some(content) = choice.delta.content.as_mut() {
                        let cut = skip.min(content.len());
                        content.drain(..cut);
                        skip -= cut;
                        // Drop the logprobs of dropped text with it: they describe tokens the caller never sees.
                        if cut > 0 {
                            choice.logprobs = None;
                        }
                    }
                }
            }
        }
        head.retain(|c| {
            c.usage.is_some()
                || !c.extra.is_empty()
                || c.choices.iter().any(|ch| {
                    ch.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                        || ch.finish_reason.is_some()
                        || ch.delta.tool_calls.is_some()
                        || ch.delta.reasoning_content.is_some()
                })
        });
        head
    }
}

/// Reads the first chunks of a continuation: enough content to judge an overlap, or all
/// of it when it is short. A continuation that so far repeats the released text from its
/// start (a model that starts the answer over) is read on until it diverges or has
/// repeated all of it, so that the repeat is recognised and dropped whatever its length;
/// what is read that way would be dropped anyway, so nothing the caller needs waits.
async fn read_head(stream: &mut ChunkStream, released: &str) -> Result<Vec<ChatCompletionChunk>, Error> {
    let mut head = Vec::new();
    let mut text = String::new();
    let restarting = |text: &str| text.len() < released.len() && released.starts_with(text);
    while text.len() < CONTINUATION_HEAD_BYTES || restarting(&text) {
        match stream.next().await {
            Some(Ok(chunk)) => {
                text.push_str(chunk.content());
                head.push(chunk);
            }
            Some(Err(e)) => return Err(e),
            None => {
                // An ended stream must not be polled again.
                *stream = Box::pin(futures::stream::empty());
                break;
            }
        }
    }
    Ok(head)
}

/// Whether a continuation judged `class` may be streamed on after the released text: an
/// answer, or nothing (the answer was all but complete when it was cut).
fn continues_answer(class: VerdictClass) -> bool {
    matches!(class, VerdictClass::Answer | VerdictClass::Empty)
}
