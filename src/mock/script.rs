//! Scripts: what the mock answers to one request, and how it renders them.
//!
//! A [`Script`] says what to answer (text pieces, an error, a status) and how to misbehave
//! (delays, a cut connection, a malformed event, a missing `[DONE]`). It does not say how
//! to frame the answer: [`Script::plan`] renders it in the mode the request asked for, a
//! server-sent-event stream for `stream: true`, one JSON body otherwise, through the wire
//! types and [`crate::wire::sse`]'s encoders, so the mock cannot drift from what the
//! client decodes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::wire::sse::{encode_data, encode_done, encode_raw_data};
use crate::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta, FinishReason, Logprobs,
    Message, MessageContent, ModerationStage, Role, TokenLogprob, TopLogprob, Usage,
};

/// The message DashScope's moderation sends for a stage.
pub fn moderation_message(stage: ModerationStage) -> &'static str {
    match stage {
        ModerationStage::Input => "Input data may contain inappropriate content.",
        ModerationStage::Output => "Output data may contain inappropriate content.",
    }
}

/// DashScope's OpenAI-compatible moderation error body, exactly as it sends it:
/// `{"error":{"code":"data_inspection_failed","type":"data_inspection_failed","message":…,"param":null},"id":…,"request_id":…}`.
pub fn moderation_body(stage: ModerationStage, id: &str, request_id: &str) -> Value {
    json!({
        "error": {
            "code": "data_inspection_failed",
            "type": "data_inspection_failed",
            "message": moderation_message(stage),
            "param": null
        },
        "id": id,
        "request_id": request_id
    })
}

/// Per-token log-probabilities a script reports (when the request asks for `logprobs`).
#[derive(Debug, Clone, PartialEq)]
pub enum LogprobValues {
    /// The same value for every token.
    Constant(f64),
    /// One value per token, in order; tokens past the end repeat the last value.
    PerToken(Vec<f64>),
}

impl LogprobValues {
    fn at(&self, i: usize) -> f64 {
        match self {
            LogprobValues::Constant(v) => *v,
            LogprobValues::PerToken(v) => v.get(i).or(v.last()).copied().unwrap_or(0.0),
        }
    }
}

impl From<f64> for LogprobValues {
    fn from(v: f64) -> Self {
        LogprobValues::Constant(v)
    }
}

impl From<Vec<f64>> for LogprobValues {
    fn from(v: Vec<f64>) -> Self {
        LogprobValues::PerToken(v)
    }
}

impl From<&[f64]> for LogprobValues {
    fn from(v: &[f64]) -> Self {
        LogprobValues::PerToken(v.to_vec())
    }
}

/// A latch a test opens to let a paused script go on (see [`Script::pause_after`]).
///
/// Clones share the latch. Once open it stays open.
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(watch::Sender::new(false)))
    }

    /// Opens the gate: every script waiting on it goes on.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Whether the gate has been opened.
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|open| *open).await;
    }
}

#[derive(Debug, Clone)]
enum Kind {
    /// A normal answer (possibly empty), streamed or complete.
    Answer,
    /// An HTTP error status with a body, in both modes.
    Status { status: u16, body: String },
}

/// What the mock answers to one request.
///
/// Build one with a constructor ([`Script::answer`], [`Script::moderation_error`],
/// [`Script::status`], …) and refine it with the builder methods. Positions (`n`) count
/// content chunks: `error_after(2)` sends the role chunk and two content chunks, then the
/// error event. Several position-based behaviours may be combined; at one position they
/// apply in this order: pause, error event, malformed event, dropped connection.
///
/// Every script answers in the mode the request asks for. For a request without
/// `stream: true`, the complete answer is one `chat.completion` JSON; a scripted
/// error event becomes an HTTP 400 with the same body (a provider that blocks an answer
/// it has not sent yet answers with an error), a malformed event a body that is not
/// JSON, a dropped connection a body cut in the middle, and the stream-only knobs
/// (`delay_between_chunks`, `no_done`) do nothing.
#[derive(Debug, Clone)]
pub struct Script {
    kind: Kind,
    pieces: Vec<String>,
    /// Content sent after `pieces`: one piece, this many times (see [`Script::repeated`]).
    repeat: Option<(String, usize)>,
    reasoning: Vec<String>,
    logprobs: Option<LogprobValues>,
    finish_reason: FinishReason,
    error_event: Option<(usize, ErrorEvent)>,
    drop_after: Option<usize>,
    malformed_at: Option<usize>,
    pause_after: Option<(usize, Gate)>,
    no_done: bool,
    no_finish: bool,
    /// Answers streamed (`true`) or whole whatever the request asked.
    answers_as: Option<bool>,
    with_usage: bool,
    delay_first_byte: Duration,
    delay_between_chunks: Duration,
    headers: Vec<(String, String)>,
    /// Each answer ends with the request's number ([`Script::numbered`]).
    numbered: bool,
}

/// The body of a scripted error event.
#[derive(Debug, Clone)]
enum ErrorEvent {
    /// DashScope's moderation body for a stage (ids filled in per request).
    Moderation(ModerationStage),
    /// A body given as it is.
    Custom(Value),
}

impl Script {
    fn base(kind: Kind, pieces: Vec<String>) -> Self {
        Script {
            kind,
            pieces,
            repeat: None,
            reasoning: Vec::new(),
            logprobs: None,
            finish_reason: FinishReason::Stop,
            error_event: None,
            drop_after: None,
            malformed_at: None,
            pause_after: None,
            no_done: false,
            no_finish: false,
            answers_as: None,
            with_usage: false,
            delay_first_byte: Duration::ZERO,
            delay_between_chunks: Duration::ZERO,
            headers: Vec::new(),
            numbered: false,
        }
    }

    /// An answer with `text`, streamed in token-like pieces (see [`split_pieces`]).
    pub fn answer(text: impl AsRef<str>) -> Self {
        Self::base(Kind::Answer, split_pieces(text.as_ref()))
    }

    /// An answer streamed in exactly these pieces, one content chunk each.
    pub fn chunks<I, S>(pieces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::base(Kind::Answer, pieces.into_iter().map(Into::into).collect())
    }

    /// An answer of `piece` repeated `times` times, one content chunk per copy, produced
    /// as the client reads it: the mock never holds more than one copy, so a test can
    /// send gigabytes without the mock's memory growing. For a request without `stream:
    /// true` the complete JSON body is produced the same way. Between copies there is no
    /// `delay_between_chunks`, and the position-based knobs (`drop_after`, `error_after`,
    /// …) count only the pieces before the copies. `piece` is sent as JSON text, so the
    /// content is exactly `piece` repeated.
    pub fn repeated(piece: impl Into<String>, times: usize) -> Self {
        let mut s = Self::base(Kind::Answer, Vec::new());
        s.repeat = Some((piece.into(), times));
        s
    }

    /// An answer of at least `bytes` bytes of content, in chunks of 16 KiB of ASCII text
    /// ([`Script::repeated`]): an upstream that floods the client, to test body limits.
    pub fn huge(bytes: usize) -> Self {
        const CHUNK: usize = 16 << 10;
        let line = "All work and no play makes a very long answer. ";
        let piece: String = line.chars().cycle().take(CHUNK).collect();
        Self::repeated(piece, bytes.div_ceil(CHUNK).max(1))
    }

    /// The whole content text this script answers with (its pieces, then the repeated
    /// piece of [`Script::repeated`]); for a huge script this allocates all of it.
    pub fn text(&self) -> String {
        let mut text = self.pieces.concat();
        if let Some((piece, times)) = &self.repeat {
            text.push_str(&piece.repeat(*times));
        }
        text
    }

    /// An answer with no content at all (`finish_reason: stop`).
    pub fn empty() -> Self {
        Self::base(Kind::Answer, Vec::new())
    }

    /// An answer cut by output moderation: `text`, then `finish_reason: content_filter`.
    pub fn content_filter(text: impl AsRef<str>) -> Self {
        Self::answer(text).finish_reason(FinishReason::ContentFilter)
    }

    /// DashScope's moderation block as an HTTP 400, in both modes (DashScope checks the
    /// input before it starts a stream).
    pub fn moderation_error(stage: ModerationStage) -> Self {
        let mut s = Self::base(
            Kind::Status {
                status: 400,
                body: String::new(),
            },
            Vec::new(),
        );
        s.error_event = Some((0, ErrorEvent::Moderation(stage)));
        s
    }

    /// A moderation error event as the first event of a `200` stream, before any content
    /// (an HTTP 400 for a request that does not stream).
    pub fn stream_error(stage: ModerationStage) -> Self {
        Self::empty().error_event_at(0, ErrorEvent::Moderation(stage))
    }

    /// An HTTP error status with this body (sent as `application/json` when it parses as
    /// JSON, as `text/plain` otherwise), in both modes: `status(429, …)`, `status(503, "")`.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self::base(
            Kind::Status {
                status,
                body: body.into(),
            },
            Vec::new(),
        )
    }

    /// Streams `text` as `reasoning_content` (Qwen's thinking) before the answer.
    pub fn reasoning(mut self, text: impl AsRef<str>) -> Self {
        self.reasoning = split_pieces(text.as_ref());
        self
    }

    /// Reports these log-probabilities for the tokens (a constant `-0.1`, or a
    /// `vec![…]` per token) when the request asks for `logprobs: true`, with as many
    /// `top_logprobs` alternatives as the request's `top_logprobs`. A real provider sends
    /// none unless asked, and neither does the mock.
    pub fn with_logprobs(mut self, values: impl Into<LogprobValues>) -> Self {
        self.logprobs = Some(values.into());
        self
    }

    /// Ends each answer with the number of the request it answers (` (#17)`, counting every
    /// chat request the mock received from 0), so that no two answers are the same text:
    /// a guard keeps the encoder's vectors of recent answers, and a benchmark that sent it
    /// one text again and again would time that memory rather than the encoder. Only the
    /// [`MockProvider::set_default`](super::MockProvider::set_default) script and queued
    /// ones are numbered this way, as the mock serves them.
    pub fn numbered(mut self) -> Self {
        self.numbered = true;
        self
    }

    /// This script as it answers request number `index`: with its number appended where
    /// [`Script::numbered`] asks for it, unchanged otherwise.
    pub(crate) fn for_request(mut self, index: usize) -> Self {
        if self.numbered {
            self.pieces.push(format!(" (#{index})"));
        }
        self
    }

    /// The finish reason of the answer (default `stop`).
    pub fn finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = reason;
        self
    }

    /// After `n` content chunks, a `data: {"error":…}` event with DashScope's
    /// output-moderation body, and the stream ends (no finish chunk, no `[DONE]`).
    pub fn error_after(self, n: usize) -> Self {
        self.error_event_at(n, ErrorEvent::Moderation(ModerationStage::Output))
    }

    /// After `n` content chunks, a `data:` event carrying `body` (any error shape:
    /// OpenRouter's, a rate limit, …), and the stream ends.
    pub fn error_event_after(self, n: usize, body: Value) -> Self {
        self.error_event_at(n, ErrorEvent::Custom(body))
    }

    fn error_event_at(mut self, n: usize, event: ErrorEvent) -> Self {
        self.error_event = Some((n, event));
        self
    }

    /// After `n` content chunks, closes the connection without ending the body properly
    /// (no `[DONE]`, no final HTTP chunk): what a crashed upstream or a proxy timeout does.
    pub fn drop_after(mut self, n: usize) -> Self {
        self.drop_after = Some(n);
        self
    }

    /// After `n` content chunks, sends a `data:` event that is not JSON.
    pub fn malformed_at(mut self, n: usize) -> Self {
        self.malformed_at = Some(n);
        self
    }

    /// After `n` content chunks, waits until `gate` is opened. Lets a test observe the
    /// caller while the mock is provably in the middle of the stream.
    pub fn pause_after(mut self, n: usize, gate: &Gate) -> Self {
        self.pause_after = Some((n, gate.clone()));
        self
    }

    /// Ends the stream cleanly (the HTTP body completes) after the last content chunk,
    /// with neither the finish chunk nor `data: [DONE]`: an answer cut short by something
    /// that closed the body politely.
    pub fn no_done(mut self) -> Self {
        self.no_done = true;
        self.no_finish = true;
        self
    }

    /// Answers as a stream (`true`) or as one JSON body whatever the request's `stream`
    /// asks: a provider, or a proxy before it, that ignores the field.
    pub fn answers_as_stream(mut self, stream: bool) -> Self {
        self.answers_as = Some(stream);
        self
    }

    /// Sends the finish chunk (and the usage chunk, when asked) but not `data: [DONE]`:
    /// a whole answer from a provider that leaves the terminator out.
    pub fn finish_without_done(mut self) -> Self {
        self.no_done = true;
        self
    }

    /// Honours `stream_options.include_usage`: a final chunk with empty `choices` and the
    /// token counts. Without it the mock behaves like a provider that ignores the option.
    /// Complete answers always carry `usage`.
    pub fn with_usage(mut self) -> Self {
        self.with_usage = true;
        self
    }

    /// Waits this long before sending the response head.
    pub fn delay_first_byte(mut self, delay: Duration) -> Self {
        self.delay_first_byte = delay;
        self
    }

    /// Waits this long between two stream events.
    pub fn delay_between_chunks(mut self, delay: Duration) -> Self {
        self.delay_between_chunks = delay;
        self
    }

    /// Adds a response header (`retry-after`, …).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The content pieces this script streams.
    pub fn pieces(&self) -> &[String] {
        &self.pieces
    }

    /// Renders the SSE body this script streams for `request` (treated as a stream
    /// request), without delays, pauses or a cut connection. Benches and decoder tests
    /// use it to get realistic bytes without a server.
    pub fn render_stream(&self, request: &ChatRequest) -> Bytes {
        let mut request = request.clone();
        request.stream = Some(true);
        let plan = self.plan(&request, &Ids::new(0));
        let mut out = Vec::new();
        for step in plan.steps {
            match step {
                Step::Send(bytes, _) => out.extend_from_slice(&bytes),
                Step::Repeat(bytes, times, _) => {
                    for _ in 0..times {
                        out.extend_from_slice(&bytes);
                    }
                }
                _ => {}
            }
        }
        out.into()
    }

    pub(crate) fn delay_before_head(&self) -> Duration {
        self.delay_first_byte
    }

    /// Renders the script for one request.
    pub(crate) fn plan(&self, request: &ChatRequest, ids: &Ids) -> Plan {
        let mut headers = vec![("x-request-id".to_string(), ids.request_id.clone())];
        headers.extend(self.headers.iter().cloned());
        let error_body = |event: &ErrorEvent| match event {
            ErrorEvent::Moderation(stage) => moderation_body(*stage, &ids.id, &ids.request_id),
            ErrorEvent::Custom(v) => v.clone(),
        };
        match &self.kind {
            Kind::Status { status, body } => {
                let body = match &self.error_event {
                    Some((_, event)) => error_body(event).to_string(),
                    None => body.clone(),
                };
                let json = serde_json::from_str::<Value>(&body).is_ok();
                Plan::whole(*status, json, headers, body.into())
            }
            Kind::Answer if self.answers_as.unwrap_or(request.is_stream()) => {
                self.plan_stream(request, ids, headers, &error_body)
            }
            Kind::Answer => {
                if let Some((_, event)) = &self.error_event {
                    return Plan::whole(400, true, headers, error_body(event).to_string().into());
                }
                if self.malformed_at.is_some() {
                    return Plan::whole(
                        200,
                        true,
                        headers,
                        Bytes::from_static(b"<html>502 Bad Gateway</html>"),
                    );
                }
                if let Some(plan) = self.plan_repeated_whole(request, ids, &headers) {
                    return plan;
                }
                let body = serde_json::to_vec(&self.completion(request, ids)).expect("wire types serialise");
                let mut plan = Plan::whole(200, true, headers, body.into());
                if self.drop_after.is_some() {
                    // Send the first half of the JSON, then cut.
                    if let Some(Step::Send(bytes, _)) = plan.steps.pop() {
                        plan.steps
                            .push(Step::Send(bytes.slice(..bytes.len() / 2), Sent::Other));
                    }
                    plan.steps.push(Step::Drop);
                }
                if let Some((_, gate)) = &self.pause_after {
                    plan.steps.insert(0, Step::Wait(gate.clone()));
                }
                plan
            }
        }
    }

    /// The complete JSON answer of a [`Script::repeated`] script, produced one copy at a
    /// time: the JSON up to the content, the JSON-escaped piece repeated, the rest.
    fn plan_repeated_whole(
        &self,
        request: &ChatRequest,
        ids: &Ids,
        headers: &[(String, String)],
    ) -> Option<Plan> {
        const MARK: &str = "\u{1}repeated content\u{1}";
        let (piece, times) = self.repeat.as_ref()?;
        let mut completion = self.completion(request, ids);
        let message = &mut completion.choices[0].message;
        let before = message.content.as_ref().map(|c| c.text()).unwrap_or_default();
        message.content = Some(MessageContent::Text(format!("{before}{MARK}")));
        let json = serde_json::to_string(&completion).expect("wire types serialise");
        let mark = serde_json::to_string(MARK).expect("strings serialise");
        let mark = &mark[1..mark.len() - 1];
        let at = json.find(mark).expect("the mark is in the body");
        let escaped = serde_json::to_string(piece).expect("strings serialise");
        let mut plan = Plan::whole(
            200,
            true,
            headers.to_vec(),
            Bytes::copy_from_slice(&json.as_bytes()[..at]),
        );
        plan.steps.push(Step::Repeat(
            Bytes::copy_from_slice(&escaped.as_bytes()[1..escaped.len() - 1]),
            *times,
            Sent::Content,
        ));
        plan.steps.push(Step::Send(
            Bytes::copy_from_slice(&json.as_bytes()[at + mark.len()..]),
            Sent::Other,
        ));
        Some(plan)
    }

    fn plan_stream(
        &self,
        request: &ChatRequest,
        ids: &Ids,
        headers: Vec<(String, String)>,
        error_body: &dyn Fn(&ErrorEvent) -> Value,
    ) -> Plan {
        let mut steps = Vec::new();
        let mut events = 0usize;
        let gap = self.delay_between_chunks;
        let mut send = |steps: &mut Vec<Step>, bytes: Bytes, kind: Sent| {
            if events > 0 && !gap.is_zero() {
                steps.push(Step::Sleep(gap));
            }
            events += 1;
            steps.push(Step::Send(bytes, kind));
        };
        let want_logprobs = request.logprobs == Some(true) && self.logprobs.is_some();
        let top_k = request.top_logprobs.unwrap_or(0) as usize;

        // What happens after `k` content chunks; `true` when the stream ends there.
        let at =
            |k: usize, steps: &mut Vec<Step>, send: &mut dyn FnMut(&mut Vec<Step>, Bytes, Sent)| -> bool {
                if let Some((n, gate)) = &self.pause_after {
                    if *n == k {
                        steps.push(Step::Wait(gate.clone()));
                    }
                }
                if let Some((n, event)) = &self.error_event {
                    if *n == k {
                        send(steps, encode_data(&error_body(event)), Sent::Other);
                        return true;
                    }
                }
                if self.malformed_at == Some(k) {
                    send(
                        steps,
                        encode_raw_data("{\"id\":\"chatcmpl-mock\",\"choices\":[{\"delta\""),
                        Sent::Other,
                    );
                }
                if self.drop_after == Some(k) {
                    steps.push(Step::Drop);
                    return true;
                }
                false
            };

        if at(0, &mut steps, &mut send) {
            return Plan::stream(headers, steps);
        }
        let role = ChunkChoice {
            delta: Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Default::default()
            },
            ..Default::default()
        };
        send(
            &mut steps,
            encode_data(&self.chunk(request, ids, vec![role])),
            Sent::Role,
        );
        for piece in &self.reasoning {
            let choice = ChunkChoice {
                delta: Delta {
                    reasoning_content: Some(piece.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            send(
                &mut steps,
                encode_data(&self.chunk(request, ids, vec![choice])),
                Sent::Other,
            );
        }
        for (i, piece) in self.pieces.iter().enumerate() {
            let choice = ChunkChoice {
                delta: Delta {
                    content: Some(piece.clone()),
                    ..Default::default()
                },
                logprobs: want_logprobs.then(|| Logprobs {
                    content: Some(vec![self.token_logprob(i, piece, top_k)]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            send(
                &mut steps,
                encode_data(&self.chunk(request, ids, vec![choice])),
                Sent::Content,
            );
            if at(i + 1, &mut steps, &mut send) {
                return Plan::stream(headers, steps);
            }
        }
        // Positions past the last piece still apply, right after it.
        for k in self.pieces.len() + 1..=self.max_position() {
            if at(k, &mut steps, &mut send) {
                return Plan::stream(headers, steps);
            }
        }
        if let Some((piece, times)) = &self.repeat {
            let choice = ChunkChoice {
                delta: Delta {
                    content: Some(piece.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let bytes = encode_data(&self.chunk(request, ids, vec![choice]));
            if *times > 0 {
                send(&mut steps, bytes.clone(), Sent::Content);
                steps.push(Step::Repeat(bytes, times - 1, Sent::Content));
            }
        }
        if self.no_finish {
            return Plan::stream(headers, steps);
        }
        let finish = ChunkChoice {
            finish_reason: Some(self.finish_reason.clone()),
            ..Default::default()
        };
        send(
            &mut steps,
            encode_data(&self.chunk(request, ids, vec![finish])),
            Sent::Other,
        );
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        if self.with_usage && include_usage {
            let mut chunk = self.chunk(request, ids, Vec::new());
            chunk.usage = Some(self.usage(request));
            send(&mut steps, encode_data(&chunk), Sent::Other);
        }
        if !self.no_done {
            send(&mut steps, encode_done(), Sent::Other);
        }
        Plan::stream(headers, steps)
    }

    fn max_position(&self) -> usize {
        [
            self.pause_after.as_ref().map(|(n, _)| *n),
            self.error_event.as_ref().map(|(n, _)| *n),
            self.malformed_at,
            self.drop_after,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
    }

    fn chunk(&self, request: &ChatRequest, ids: &Ids, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        let mut extra = Map::new();
        extra.insert("system_fingerprint".into(), Value::Null);
        ChatCompletionChunk {
            id: Some(ids.id.clone()),
            object: Some("chat.completion.chunk".into()),
            created: Some(ids.created),
            model: Some(request.model.clone()),
            choices,
            usage: None,
            extra,
        }
    }

    fn token_logprob(&self, i: usize, piece: &str, top_k: usize) -> TokenLogprob {
        let logprob = self.logprobs.as_ref().map(|v| v.at(i)).unwrap_or(0.0);
        let top = (0..top_k)
            .map(|j| {
                if j == 0 {
                    TopLogprob {
                        token: piece.to_string(),
                        logprob,
                        bytes: Some(piece.as_bytes().to_vec()),
                        ..Default::default()
                    }
                } else {
                    let token = format!(" alt{j}");
                    TopLogprob {
                        bytes: Some(token.as_bytes().to_vec()),
                        token,
                        logprob: logprob - 1.5 * j as f64,
                        ..Default::default()
                    }
                }
            })
            .collect();
        TokenLogprob {
            token: piece.to_string(),
            logprob,
            bytes: Some(piece.as_bytes().to_vec()),
            top_logprobs: Some(top),
            ..Default::default()
        }
    }

    fn usage(&self, request: &ChatRequest) -> Usage {
        let prompt_chars: usize = request
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| c.text().chars().count())
            .sum();
        let prompt = (prompt_chars as u64).div_ceil(4).max(1);
        let completion = (self.pieces.len() + self.reasoning.len()) as u64;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            ..Default::default()
        }
    }

    fn completion(&self, request: &ChatRequest, ids: &Ids) -> ChatCompletion {
        let mut message = Message::new(Role::Assistant, self.pieces.concat());
        if !self.reasoning.is_empty() {
            message
                .extra
                .insert("reasoning_content".into(), Value::String(self.reasoning.concat()));
        }
        let logprobs = (request.logprobs == Some(true) && self.logprobs.is_some()).then(|| {
            let top_k = request.top_logprobs.unwrap_or(0) as usize;
            Logprobs {
                content: Some(
                    self.pieces
                        .iter()
                        .enumerate()
                        .map(|(i, p)| self.token_logprob(i, p, top_k))
                        .collect(),
                ),
                ..Default::default()
            }
        });
        let mut extra = Map::new();
        extra.insert("system_fingerprint".into(), Value::Null);
        ChatCompletion {
            id: Some(ids.id.clone()),
            object: Some("chat.completion".into()),
            created: Some(ids.created),
            model: Some(request.model.clone()),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: Some(self.finish_reason.clone()),
                logprobs,
                extra: Map::new(),
            }],
            usage: Some(self.usage(request)),
            extra,
        }
    }
}

/// Splits text into token-like pieces: words with their leading whitespace
/// (`"Hello, world"` → `"Hello,"`, `" world"`), and CJK text one character a piece
/// (`"抱歉，我"` → `"抱"`, `"歉"`, `"，"`, `"我"`). Joining the pieces gives the text back.
pub fn split_pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            // Whitespace before a CJK character leads it, as it would lead a word.
            if current.chars().any(|c| !c.is_whitespace()) {
                pieces.push(std::mem::take(&mut current));
            }
            current.push(c);
            pieces.push(std::mem::take(&mut current));
        } else if c.is_whitespace() {
            if current.chars().any(|c| !c.is_whitespace()) {
                pieces.push(std::mem::take(&mut current));
            }
            current.push(c);
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF     // Hangul Jamo
        | 0x2E80..=0x303F   // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
        | 0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3100..=0x31FF   // Bopomofo, Hangul compatibility Jamo, Kanbun, …
        | 0x3200..=0x4DBF   // enclosed CJK, compatibility, extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0xFE30..=0xFE4F   // CJK compatibility forms
        | 0xFF00..=0xFFEF   // half- and full-width forms (，！？)
        | 0x20000..=0x3FFFF // extensions B and later
    )
}

/// The ids one response carries.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub id: String,
    pub request_id: String,
    pub created: u64,
}

impl Ids {
    pub fn new(index: usize) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ids {
            id: format!("chatcmpl-mock-{index:06}"),
            request_id: format!("6f1d3a2c-0000-4000-8000-{index:012x}"),
            created,
        }
    }
}

/// What a sent event was, for the progress record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Role,
    Content,
    Other,
}

/// One step of a rendered response body.
#[derive(Debug)]
pub(crate) enum Step {
    Send(Bytes, Sent),
    /// The same write this many times, produced one at a time as the body is read.
    Repeat(Bytes, usize, Sent),
    Sleep(Duration),
    Wait(Gate),
    /// Close the connection without finishing the body.
    Drop,
}

/// A rendered response: head and body steps.
#[derive(Debug)]
pub(crate) struct Plan {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

impl Plan {
    fn whole(status: u16, json: bool, headers: Vec<(String, String)>, body: Bytes) -> Self {
        Plan {
            status,
            content_type: if json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            },
            headers,
            steps: vec![Step::Send(body, Sent::Other)],
        }
    }

    fn stream(headers: Vec<(String, String)>, steps: Vec<Step>) -> Self {
        Plan {
            status: 200,
            content_type: "text/event-stream",
            headers,
            steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_their_leading_space() {
        assert_eq!(split_pieces("Hello, big world!"), ["Hello,", " big", " world!"]);
        assert_eq!(split_pieces("  two  spaces"), ["  two", "  spaces"]);
    }

    #[test]
    fn cjk_is_one_char_a_piece() {
        assert_eq!(split_pieces("抱歉，我无法"), ["抱", "歉", "，", "我", "无", "法"]);
        assert_eq!(split_pieces("Qwen 是 AI"), ["Qwen", " 是", " AI"]);
    }

    #[test]
    fn pieces_join_back_to_the_text() {
        for text in [
            "",
            " ",
            "a",
            "As an AI developed by Alibaba Cloud, I cannot.\n\nOK",
            "混合 mixed 文本。 end ",
        ] {
            assert_eq!(split_pieces(text).concat(), text);
        }
    }

    #[test]
    fn repeated_content_renders_every_copy() {
        let script = Script::repeated("a \"quoted\" 片段 ", 3);
        assert_eq!(script.text(), "a \"quoted\" 片段 ".repeat(3));
        let request = ChatRequest::new("m", vec![Message::user("hi")]);
        let body = script.render_stream(&request);
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text.matches("片段").count(), 3);
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let huge = Script::huge(100_000);
        assert!(huge.text().len() >= 100_000);
    }

    #[test]
    fn logprob_values_repeat_the_last() {
        let v = LogprobValues::from(vec![-0.1, -2.0]);
        assert_eq!([v.at(0), v.at(1), v.at(5)], [-0.1, -2.0, -2.0]);
        assert_eq!(LogprobValues::from(-0.5).at(9), -0.5);
    }
}
