//! A client for any OpenAI-compatible `/chat/completions` endpoint, as a tower service.
//!
//! ```no_run
//! use refusal_guard::provider::OpenAiCompatible;
//! use refusal_guard::wire::{ChatRequest, Message};
//! use tower::ServiceExt;
//!
//! # async fn run() -> Result<(), refusal_guard::Error> {
//! let qwen = OpenAiCompatible::dashscope_intl()
//!     .api_key_from_env("DASHSCOPE_API_KEY")?
//!     .build()?;
//! let request = ChatRequest::new("qwen-plus", vec![Message::user("Hello")]);
//! let response = qwen.oneshot(request).await?;
//! # Ok(()) }
//! ```
//!
//! Streams yield chunks as they arrive and pull from the socket only when polled, so a
//! slow caller slows the upstream instead of filling memory. Dropping the stream (or the
//! future) drops the connection: the provider stops generating for a client that left.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{mode, read_response, BodyLimits, ChatResponse, ModelMap, ResponseBody, UpstreamTiming};
use crate::error::Error;
use crate::wire::sse::{error_chain, DEFAULT_STREAM_BYTE_LIMIT};
use crate::wire::ChatRequest;

/// DashScope's international OpenAI-compatible base URL.
pub const DASHSCOPE_INTL: &str = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
/// DashScope's mainland-China OpenAI-compatible base URL.
pub const DASHSCOPE_CN: &str = "https://dashscope.aliyuncs.com/compatible-mode/v1";

/// The default limit on a complete (non-streamed) response body (16 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;

/// An API key. Its `Debug` and `Display` never show the key.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(Arc::from(key.into()))
    }

    /// The key itself, for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Configures an [`OpenAiCompatible`] client.
#[derive(Debug)]
pub struct OpenAiCompatibleBuilder {
    name: String,
    base_url: String,
    api_key: Option<ApiKey>,
    headers: HeaderMap,
    models: ModelMap,
    connect_timeout: Duration,
    body_limit: usize,
    stream_limit: usize,
    client: Option<reqwest::Client>,
}

impl OpenAiCompatibleBuilder {
    /// Sets the API key, sent as `Authorization: Bearer …`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// Reads the API key from an environment variable; a clear error names the variable
    /// (never its value) when it is unset or empty.
    pub fn api_key_from_env(mut self, var: &str) -> Result<Self, Error> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                self.api_key = Some(ApiKey::new(v.trim()));
                Ok(self)
            }
            _ => Err(Error::invalid(
                "configuration",
                format!(
                    "provider {}: environment variable {var} holds no API key",
                    self.name
                ),
            )),
        }
    }

    /// Adds a header sent with every request (`X-DashScope-WorkSpace`, `HTTP-Referer`, …).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let n = HeaderName::try_from(name).map_err(|e| Error::invalid("header", format!("{name:?}: {e}")))?;
        let mut v = HeaderValue::try_from(value)
            .map_err(|e| Error::invalid("header", format!("value of {name}: {e}")))?;
        v.set_sensitive(true);
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Maps the caller's model names to this provider's.
    pub fn models(mut self, models: ModelMap) -> Self {
        self.models = models;
        self
    }

    /// How long to wait for a TCP (and TLS) connection. Default 10 s. Request deadlines
    /// are tower's job: wrap the client in `tower::timeout` or the re-route layer's budgets.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest complete response body accepted. Default 16 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The most bytes one stream may carry. Default 64 MiB.
    pub fn stream_limit(mut self, bytes: usize) -> Self {
        self.stream_limit = bytes;
        self
    }

    /// Shares an existing `reqwest` client (its connection pool) instead of building one.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<OpenAiCompatible, Error> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::invalid(
                "configuration",
                format!("provider {}: base URL {base:?} is not http(s)", self.name),
            ));
        }
        let http = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .build()
                .map_err(|e| Error::invalid("configuration", format!("HTTP client: {e}")))?,
        };
        let mut headers = self.headers;
        if let Some(key) = &self.api_key {
            let mut v = HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
                Error::invalid(
                    "configuration",
                    format!(
                        "provider {}: API key has characters not allowed in a header",
                        self.name
                    ),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, v);
        }
        // Parsed once here, not on every request (reqwest parses a string URL each time).
        let url = reqwest::Url::parse(&format!("{base}/chat/completions")).map_err(|e| {
            Error::invalid(
                "configuration",
                format!(
                    "provider {}: base URL {base:?} is not a valid URL: {e}",
                    self.name
                ),
            )
        })?;
        Ok(OpenAiCompatible {
            inner: Arc::new(Inner {
                name: Arc::from(self.name),
                url,
                headers,
                models: self.models,
                api_key: self.api_key,
                body_limit: self.body_limit,
                stream_limit: self.stream_limit,
                http,
            }),
        })
    }
}

/// A chat-completions client over real HTTP (rustls for TLS).
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    url: reqwest::Url,
    headers: HeaderMap,
    models: ModelMap,
    /// Kept to scrub it from error bodies that quote it.
    api_key: Option<ApiKey>,
    body_limit: usize,
    stream_limit: usize,
    http: reqwest::Client,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers are left out on purpose: they hold the API key.
        f.debug_struct("OpenAiCompatible")
            .field("name", &self.inner.name)
            .field("url", &self.inner.url.as_str())
            .field("models", &self.inner.models)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// A builder for a provider called `name` at `base_url` (the part before `/chat/completions`).
    pub fn builder(name: impl Into<String>, base_url: impl Into<String>) -> OpenAiCompatibleBuilder {
        OpenAiCompatibleBuilder {
            name: name.into(),
            base_url: base_url.into(),
            api_key: None,
            headers: HeaderMap::new(),
            models: ModelMap::new(),
            connect_timeout: Duration::from_secs(10),
            body_limit: DEFAULT_BODY_LIMIT,
            stream_limit: DEFAULT_STREAM_BYTE_LIMIT,
            client: None,
        }
    }

    /// Alibaba DashScope, international endpoint (provider name `dashscope-intl`).
    pub fn dashscope_intl() -> OpenAiCompatibleBuilder {
        Self::builder("dashscope-intl", DASHSCOPE_INTL)
    }

    /// Alibaba DashScope, mainland-China endpoint (provider name `dashscope-cn`).
    pub fn dashscope_cn() -> OpenAiCompatibleBuilder {
        Self::builder("dashscope-cn", DASHSCOPE_CN)
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The model-name map.
    pub fn models(&self) -> &ModelMap {
        &self.inner.models
    }

    /// A request to another endpoint of this provider (`path` and query relative to the
    /// base URL, e.g. `/embeddings`) with `headers`, over which the provider's key and
    /// headers win, on the client's connection pool: the gateway's pass-through.
    pub fn request(
        &self,
        method: http::Method,
        path: &str,
        mut headers: HeaderMap,
    ) -> reqwest::RequestBuilder {
        for (name, value) in &self.inner.headers {
            headers.insert(name, value.clone());
        }
        let url = self.inner.url.as_str();
        let base = url.strip_suffix("/chat/completions").unwrap_or(url);
        self.inner
            .http
            .request(method, format!("{base}{path}"))
            .headers(headers)
    }

    /// `body` with this provider's API key replaced by `<redacted>`, for error bodies that
    /// quote a rejected key back; `None` when the key does not occur.
    pub fn redact_key(&self, body: &[u8]) -> Option<Vec<u8>> {
        let key = self.inner.api_key.as_ref()?.expose();
        let text = std::str::from_utf8(body).ok()?;
        text.contains(key)
            .then(|| text.replace(key, "<redacted>").into_bytes())
    }
}

impl tower::Service<ChatRequest> for OpenAiCompatible {
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: ChatRequest) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mapped = inner.models.map(&request.model);
            if mapped != request.model {
                request.model = mapped.to_string();
            }
            inner.send(request).await
        })
    }
}

impl Inner {
    /// A provider error with the API key scrubbed from it, and the header request id
    /// filled in when the body has none.
    fn transport(&self, e: reqwest::Error, mid_response: bool) -> Error {
        Error::Transport {
            provider: self.name.to_string(),
            message: error_chain(&e.without_url()),
            mid_response,
        }
    }

    async fn send(&self, request: ChatRequest) -> Result<ChatResponse, Error> {
        let stream = request.is_stream();
        let body = serde_json::to_vec(&request).map_err(|e| Error::invalid("request", e.to_string()))?;
        let started = Instant::now();
        let response = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                if request.is_stream() {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(e, false))?;
        let limits = BodyLimits {
            complete: self.body_limit,
            stream: self.stream_limit,
        };
        let out = read_response(&self.name, http::Response::from(response), limits)
            .await
            .map_err(|e| self.scrub(e))?;
        let mut out = mode::in_mode(out, stream).await.map_err(|e| self.scrub(e))?;
        out.extensions.insert(UpstreamTiming(started.elapsed()));
        if let (Some(key), ResponseBody::Stream(_)) = (self.api_key.clone(), &out.body) {
            let ResponseBody::Stream(stream) = std::mem::replace(
                &mut out.body,
                ResponseBody::Stream(Box::pin(futures::stream::empty())),
            ) else {
                unreachable!("matched above")
            };
            out.body = ResponseBody::Stream(Box::pin(
                stream.map(move |item| item.map_err(|e| scrub_key(e, &key))),
            ));
        }
        Ok(out)
    }

    /// Removes the API key from a provider error: some providers quote a rejected key back.
    fn scrub(&self, e: Error) -> Error {
        match &self.api_key {
            Some(key) => scrub_key(e, key),
            None => e,
        }
    }
}

fn scrub_key(e: Error, key: &ApiKey) -> Error {
    match e {
        Error::Provider(mut p) => {
            p.redact(key.expose());
            Error::Provider(p)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_that_does_not_parse_is_a_configuration_error_naming_the_provider() {
        let err = OpenAiCompatible::builder("qwen", "http://dash scope.example/v1")
            .build()
            .expect_err("a space in the host is not a URL");
        let message = err.to_string();
        assert!(message.contains("provider qwen"), "{message}");
        assert!(message.contains("not a valid URL"), "{message}");
    }

    #[test]
    fn the_chat_completions_url_is_built_once_from_the_base() {
        let p = OpenAiCompatible::builder("qwen", "http://127.0.0.1:9/compatible-mode/v1/")
            .build()
            .expect("a valid base URL");
        assert_eq!(
            p.inner.url.as_str(),
            "http://127.0.0.1:9/compatible-mode/v1/chat/completions"
        );
    }
}
