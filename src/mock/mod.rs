//! A scriptable mock provider: a real HTTP server on the loopback interface that speaks
//! the OpenAI / DashScope chat-completions wire format.
//!
//! Why a real server and not a fake `Service`: the failures this crate exists for live on
//! the wire. An error event after some content, a stream cut without `[DONE]`, a connection
//! that closes in the middle of a chunked body, a client that leaves while the provider is
//! still generating: only real HTTP (here through axum and hyper, to the real
//! [`OpenAiCompatible`] client over reqwest) shows whether the client, the layers and a
//! gateway behave. The same server serves the crate's tests and benches, the gateway's
//! tests, and SDK tests in other languages that only need a base URL.
//!
//! Each `POST /v1/chat/completions` consumes the next [`Script`] of a queue (or the
//! default script when the queue is empty) and answers in the mode the request asks for:
//! a `text/event-stream` for `stream: true`, one JSON body otherwise. Every request is
//! recorded (headers and parsed body) so tests can check what reached the provider, and
//! every response has a [`ResponseState`] that says how far the mock got and whether the
//! client went away before the end. `GET /v1/models` lists models. `POST /v1/embeddings`
//! answers a deterministic embedding per input (the same bytes for the same request), so
//! that a gateway's pass-through can be checked byte for byte; it and every unknown path
//! (answered with a 404 in OpenAI's error shape) are recorded apart from the chat
//! requests ([`MockProvider::other_requests`]).
//!
//! ```
//! use refusal_guard::mock::{MockProvider, Script};
//! use refusal_guard::wire::{ChatRequest, Message, ModerationStage};
//! use refusal_guard::Error;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mock = MockProvider::start().await;
//! mock.push(Script::moderation_error(ModerationStage::Input));
//! mock.push(Script::answer("Hello there."));
//!
//! let client = mock.client("qwen");
//! let request = ChatRequest::new("qwen-plus", vec![Message::user("Hi")]);
//!
//! let blocked = client.clone().oneshot(request.clone()).await.unwrap_err();
//! let moderation = blocked.as_provider().and_then(|e| e.moderation.clone()).unwrap();
//! assert_eq!(moderation.stage, ModerationStage::Input);
//!
//! let answer = client.oneshot(request).await.unwrap();
//! assert_eq!(answer.as_complete().unwrap().text(), "Hello there.");
//! assert_eq!(mock.requests().len(), 2);
//! # }
//! ```

mod script;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use script::{moderation_body, moderation_message, split_pieces, Gate, LogprobValues, Script};
use script::{Ids, Sent, Step};

use crate::provider::{OpenAiCompatible, OpenAiCompatibleBuilder};
use crate::wire::ChatRequest;

/// The API key [`MockProvider::client`] sends.
pub const MOCK_API_KEY: &str = "sk-mock-0000000000000000";

/// One request the mock received on `/v1/chat/completions`.
#[derive(Clone)]
pub struct RecordedRequest {
    /// The position of this request (0 for the first), also the index of its [`ResponseState`].
    pub index: usize,
    pub method: Method,
    pub path: String,
    /// The headers as received; `authorization` and any header whose name speaks of a key,
    /// token, secret or cookie are marked sensitive, so `Debug` hides them.
    pub headers: HeaderMap,
    /// The parsed JSON body (`Value::Null` when the body was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// A header's value, when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// The body read as a typed request.
    pub fn chat_request(&self) -> Option<ChatRequest> {
        serde_json::from_value(self.body.clone()).ok()
    }

    /// Whether the request asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("index", &self.index)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

/// How a response ended, as far as the mock can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The response head has not been sent yet (a first-byte delay, a paused non-stream answer).
    Preparing,
    /// The head went out; the body is being sent.
    Sending,
    /// Everything the script asked for was handed to the connection.
    Finished,
    /// The script cut the connection (`drop_after`).
    Dropped,
    /// The client went away (closed the connection) before the response was complete.
    ClientDisconnected,
    /// The mock was shut down in the middle of the response.
    ShutDown,
}

impl Outcome {
    /// Whether the response is over, one way or another.
    pub fn is_over(self) -> bool {
        !matches!(self, Outcome::Preparing | Outcome::Sending)
    }
}

/// How far the response to one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseState {
    /// Body writes handed to the connection (SSE events for a stream).
    pub events_sent: usize,
    /// Content chunks among them (not the role chunk, reasoning, finish, usage or `[DONE]`).
    pub content_chunks_sent: usize,
    pub outcome: Outcome,
}

struct Shared {
    state: Mutex<Store>,
    /// The number of chat requests recorded so far.
    received: watch::Sender<usize>,
    shutdown: watch::Sender<bool>,
}

struct Store {
    queue: VecDeque<Script>,
    default: Script,
    requests: Vec<RecordedRequest>,
    responses: Vec<watch::Sender<ResponseState>>,
    /// Chat requests received, recorded or not.
    received: usize,
    recording: bool,
    /// Answer requests carrying `logprobs` or `top_logprobs` with a 400.
    reject_logprobs: bool,
    api_key: Option<String>,
    models: Vec<String>,
    /// Requests to endpoints other than chat completions.
    others: Vec<RecordedRequest>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// The response record of request `i`, when it was recorded.
    fn response(&self, i: usize) -> Option<&watch::Sender<ResponseState>> {
        let pos = self.requests.binary_search_by_key(&i, |r| r.index).ok()?;
        self.responses.get(pos)
    }
}

/// A running mock provider. Shuts down when dropped (or with [`MockProvider::shutdown`]).
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// Starts a mock on `127.0.0.1` and a free port, on the current tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound (see [`MockProvider::try_start`]).
    pub async fn start() -> Self {
        Self::try_start()
            .await
            .expect("bind a loopback port for the mock provider")
    }

    /// As [`MockProvider::start`], returning the bind error.
    pub async fn try_start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a mock on a given address: a fixed port for a load generator or an SDK test
    /// in another process, or port 0 for a free one.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Store {
                queue: VecDeque::new(),
                default: Script::answer("Hello from the mock provider."),
                requests: Vec::new(),
                responses: Vec::new(),
                received: 0,
                recording: true,
                reject_logprobs: false,
                api_key: None,
                models: vec!["qwen-plus".into(), "qwen-max".into(), "qwen-turbo".into()],
                others: Vec::new(),
            }),
            received: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/v1/embeddings", post(embeddings))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(shared.clone());
        let mut stop = shared.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                tracing::warn!(error = %e, "mock provider stopped");
            }
        });
        Ok(MockProvider {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The socket address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure a client with: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A builder for a client of this mock, with [`MOCK_API_KEY`] (or the key required by
    /// [`MockProvider::require_api_key`]) set.
    pub fn client_builder(&self, name: &str) -> OpenAiCompatibleBuilder {
        let key = self.shared.lock().api_key.clone();
        OpenAiCompatible::builder(name, self.base_url()).api_key(key.as_deref().unwrap_or(MOCK_API_KEY))
    }

    /// A client of this mock named `name`.
    pub fn client(&self, name: &str) -> OpenAiCompatible {
        self.client_builder(name)
            .build()
            .expect("a loopback http URL always builds")
    }

    /// Queues a script for the next request that finds the queue before it empty.
    pub fn push(&self, script: Script) -> &Self {
        self.shared.lock().queue.push_back(script);
        self
    }

    /// Sets the script used when the queue is empty (default: a short answer).
    pub fn set_default(&self, script: Script) -> &Self {
        self.shared.lock().default = script;
        self
    }

    /// How many queued scripts are left.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Requires `Authorization: Bearer <key>`; other requests get a 401 (that consumes no
    /// script) whose message quotes the key they sent, as careless proxies do.
    pub fn require_api_key(&self, key: impl Into<String>) -> &Self {
        self.shared.lock().api_key = Some(key.into());
        self
    }

    /// Answers every request that carries `logprobs` or `top_logprobs` with a 400 naming
    /// the parameter (that consumes no script), as models that do not support them do.
    /// The request is recorded like any other.
    pub fn reject_logprobs(&self, on: bool) -> &Self {
        self.shared.lock().reject_logprobs = on;
        self
    }

    /// Sets the model ids `GET /v1/models` lists.
    pub fn set_models<I, S>(&self, models: I) -> &Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.lock().models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Turns recording of requests and response states on or off (default on). A load
    /// test that sends millions of requests turns it off so the mock's memory stays flat;
    /// [`MockProvider::requests`] and the `wait_for_*` helpers then see only what was
    /// recorded while it was on.
    pub fn set_recording(&self, on: bool) -> &Self {
        self.shared.lock().recording = on;
        self
    }

    /// Every chat request recorded so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every request to an endpoint other than chat completions (embeddings, unknown
    /// paths), in order, whether it was authorised or not.
    pub fn other_requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().others.clone()
    }

    /// The `i`-th chat request (counting from 0), when it was recorded.
    pub fn request(&self, i: usize) -> Option<RecordedRequest> {
        let state = self.shared.lock();
        let pos = state.requests.binary_search_by_key(&i, |r| r.index).ok()?;
        state.requests.get(pos).cloned()
    }

    /// How far each recorded response got, in request order.
    pub fn responses(&self) -> Vec<ResponseState> {
        self.shared.lock().responses.iter().map(|s| *s.borrow()).collect()
    }

    /// How far the response to the `i`-th request got.
    pub fn response(&self, i: usize) -> Option<ResponseState> {
        self.shared.lock().response(i).map(|s| *s.borrow())
    }

    /// Waits until `n` chat requests have arrived; `false` if `timeout` passed first.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.received.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the response to request `i` satisfies `pred`, and returns its state;
    /// `None` if `timeout` passed first (the timeout is hang protection, not a measurement).
    pub async fn wait_for_response(
        &self,
        i: usize,
        timeout: Duration,
        mut pred: impl FnMut(&ResponseState) -> bool,
    ) -> Option<ResponseState> {
        let wait = async {
            if !self.wait_for_requests(i + 1, timeout).await {
                return None;
            }
            let mut rx = self.shared.lock().response(i)?.subscribe();
            rx.wait_for(|s| pred(s)).await.ok().map(|s| *s)
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Waits until the response to request `i` is over and returns how it ended.
    pub async fn wait_for_end(&self, i: usize, timeout: Duration) -> Option<Outcome> {
        self.wait_for_response(i, timeout, |s| s.outcome.is_over())
            .await
            .map(|s| s.outcome)
    }

    /// Waits until the response to request `i` is over; `true` when it ended because the
    /// client went away.
    pub async fn wait_for_disconnect(&self, i: usize, timeout: Duration) -> bool {
        self.wait_for_end(i, timeout).await == Some(Outcome::ClientDisconnected)
    }

    /// Stops the server: open responses end (as [`Outcome::ShutDown`]), and this waits
    /// until the server task is done.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let models = shared.lock().models.clone();
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "mock"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Records a request to an endpoint other than chat completions; the key it sent when
/// a key is required and it is not that one.
fn record_other(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    mut headers: HeaderMap,
    body: &[u8],
) -> Option<String> {
    mark_sensitive(&mut headers);
    let mut state = shared.lock();
    let key_error = state.api_key.as_ref().and_then(|key| {
        let sent = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        (sent != Some(key.as_str())).then(|| sent.unwrap_or("").to_string())
    });
    if state.recording {
        let index = state.others.len();
        state.others.push(RecordedRequest {
            index,
            method,
            path: uri.path().to_string(),
            headers,
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        });
    }
    key_error
}

/// `POST /v1/embeddings`: one vector of eight numbers per input, derived from its text.
async fn embeddings(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(sent) = record_other(&shared, method, &uri, headers, &body) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            format!("Incorrect API key provided: {sent}."),
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("invalid request body: {e}"),
            )
        }
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "\"input\" must be a string or an array".into(),
            )
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            // FNV-1a of the text seeds the vector: the same input always embeds the same.
            let mut h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            let vector: Vec<f64> = (0..8)
                .map(|_| {
                    h = h
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((h >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
                })
                .collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    });
    axum::Json(body).into_response()
}

async fn not_found(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record_other(&shared, method, &uri, headers, &body);
    let body = json!({"error": {"message": format!("no route for {}", uri.path()), "type": "invalid_request_error", "code": "not_found", "param": null}});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    let body =
        json!({"error": {"message": message, "type": "invalid_request_error", "code": code, "param": null}});
    (status, axum::Json(body)).into_response()
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    mark_sensitive(&mut headers);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request: Result<ChatRequest, String> =
        serde_json::from_value(parsed.clone()).map_err(|e| e.to_string());

    let has_logprobs = ["logprobs", "top_logprobs"]
        .iter()
        .any(|k| parsed.get(k).is_some_and(|v| !v.is_null()));
    let (index, script, progress, key_error, logprobs_rejected) = {
        let mut state = shared.lock();
        let index = state.received;
        state.received += 1;
        let key_error = state.api_key.as_ref().and_then(|key| {
            let sent = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            (sent != Some(key.as_str())).then(|| sent.unwrap_or("").to_string())
        });
        let logprobs_rejected = state.reject_logprobs && has_logprobs;
        let script = if key_error.is_some() || request.is_err() || logprobs_rejected {
            None
        } else {
            let script = state.queue.pop_front().unwrap_or_else(|| state.default.clone());
            Some(script.for_request(index))
        };
        let progress = watch::Sender::new(ResponseState {
            events_sent: 0,
            content_chunks_sent: 0,
            outcome: Outcome::Preparing,
        });
        if state.recording {
            state.requests.push(RecordedRequest {
                index,
                method,
                path: uri.path().to_string(),
                headers,
                body: parsed,
            });
            state.responses.push(progress.clone());
        }
        (index, script, progress, key_error, logprobs_rejected)
    };
    shared.received.send_modify(|n| *n = (*n).max(index + 1));
    // From here on, whatever way the response ends is recorded.
    let guard = Guard {
        progress,
        shutdown: shared.shutdown.subscribe(),
    };

    if let Some(sent) = key_error {
        guard.progress.send_modify(|s| s.outcome = Outcome::Finished);
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            format!("Incorrect API key provided: {sent}."),
        );
    }
    if logprobs_rejected {
        guard.progress.send_modify(|s| s.outcome = Outcome::Finished);
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter_error",
            "<400> InternalError.Algo.InvalidParameter: logprobs and top_logprobs are not supported by this model"
                .into(),
        );
    }
    let (request, script) = match (request, script) {
        (Ok(r), Some(s)) => (r, s),
        (Err(e), _) => {
            guard.progress.send_modify(|s| s.outcome = Outcome::Finished);
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("invalid request body: {e}"),
            );
        }
        (Ok(_), None) => unreachable!("a script is taken for every valid, authorised request"),
    };

    let plan = script.plan(&request, &Ids::new(index));
    let mut guard = guard;
    if !guard.pause(script.delay_before_head()).await {
        return guard.abort_response();
    }
    // A non-stream answer paused before its head waits here, still `Preparing`.
    let mut steps = plan.steps.into_iter().peekable();
    if let Some(Step::Wait(_)) = steps.peek() {
        if let Some(Step::Wait(gate)) = steps.next() {
            if !guard.wait(&gate).await {
                return guard.abort_response();
            }
        }
    }
    guard.progress.send_modify(|s| s.outcome = Outcome::Sending);
    let body = Body::from_stream(body_stream(guard, steps.collect()));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(plan.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(plan.content_type),
    );
    if plan.content_type == "text/event-stream" {
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    for (name, value) in plan.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            h.append(n, v);
        }
    }
    response
}

/// Marks whatever may carry a credential sensitive, so that it stays out of `Debug` (test
/// failures print requests).
fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        let n = name.as_str();
        if ["auth", "key", "token", "secret", "cookie"]
            .iter()
            .any(|w| n.contains(w))
        {
            value.set_sensitive(true);
        }
    }
}

/// Records how a response ends, including when hyper drops its body because the client
/// went away: whatever state is not over at drop time becomes `ClientDisconnected`.
struct Guard {
    progress: watch::Sender<ResponseState>,
    shutdown: watch::Receiver<bool>,
}

impl Guard {
    /// Sleeps, unless the mock shuts down first (`false`).
    async fn pause(&mut self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown.wait_for(|s| *s) => false,
        }
    }

    /// Waits for a gate, unless the mock shuts down first (`false`).
    async fn wait(&mut self, gate: &Gate) -> bool {
        tokio::select! {
            _ = gate.wait() => true,
            _ = self.shutdown.wait_for(|s| *s) => false,
        }
    }

    fn end(&self, outcome: Outcome) {
        self.progress.send_modify(|s| s.outcome = outcome);
    }

    fn abort_response(self) -> Response {
        self.end(Outcome::ShutDown);
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.progress.send_if_modified(|s| {
            let open = !s.outcome.is_over();
            if open {
                s.outcome = Outcome::ClientDisconnected;
            }
            open
        });
    }
}

/// Why the mock ended a body early (hyper then closes the connection).
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("scripted connection drop")]
    Scripted,
    #[error("mock provider shutting down")]
    Shutdown,
}

/// The rest of a response body and its guard.
struct Run {
    guard: Guard,
    steps: std::vec::IntoIter<Step>,
    /// The rest of a [`Step::Repeat`]: the bytes, how many more times, and their kind.
    repeat: Option<(Bytes, usize, Sent)>,
    done: bool,
}

impl Run {
    /// Ends the body with an error, which makes hyper close the connection.
    fn cut(mut self, outcome: Outcome, why: Cut) -> Option<(Result<Bytes, Cut>, Run)> {
        self.guard.end(outcome);
        self.done = true;
        Some((Err(why), self))
    }
}

/// The body of a response: the plan's steps, one write per `Send`, with the guard inside
/// so that hyper dropping the body (a client that left) is recorded.
fn body_stream(guard: Guard, steps: Vec<Step>) -> impl futures::Stream<Item = Result<Bytes, Cut>> + Send {
    let run = Run {
        guard,
        steps: steps.into_iter(),
        repeat: None,
        done: false,
    };
    futures::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        loop {
            let step = match run.repeat.take() {
                // One more copy of a repeated write; the rest stays for the next poll, so a
                // huge body is produced as the client reads it, never held whole.
                Some((bytes, left, kind)) => {
                    if left > 1 {
                        run.repeat = Some((bytes.clone(), left - 1, kind));
                    }
                    Step::Send(bytes, kind)
                }
                None => match run.steps.next() {
                    Some(step) => step,
                    None => {
                        run.guard.end(Outcome::Finished);
                        return None;
                    }
                },
            };
            match step {
                Step::Repeat(bytes, times, kind) => {
                    if times > 0 {
                        run.repeat = Some((bytes, times, kind));
                    }
                }
                Step::Send(bytes, kind) => {
                    run.guard.progress.send_modify(|s| {
                        s.events_sent += 1;
                        if kind == Sent::Content {
                            s.content_chunks_sent += 1;
                        }
                    });
                    return Some((Ok(bytes), run));
                }
                Step::Sleep(d) => {
                    if !run.guard.pause(d).await {
                        return run.cut(Outcome::ShutDown, Cut::Shutdown);
                    }
                }
                Step::Wait(gate) => {
                    if !run.guard.wait(&gate).await {
                        return run.cut(Outcome::ShutDown, Cut::Shutdown);
                    }
                }
                Step::Drop => {
                    // hyper drops what it has buffered but not written when a body fails;
                    // returning `Pending` first makes it flush, so the client gets every
                    // byte sent before the cut, as from a real upstream that crashed.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    return run.cut(Outcome::Dropped, Cut::Scripted);
                }
            }
        }
    })
}
