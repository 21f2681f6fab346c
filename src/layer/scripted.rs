//! A scripted provider for the layers' unit tests: every call fails with the status set
//! (with the `Retry-After` set), or answers "ok"; calls are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::error::Error;
use crate::provider::ChatResponse;
use crate::wire::{ChatRequest, ProviderError};

/// A provider whose every call ends as `fail` says: calls are counted.
#[derive(Clone)]
pub struct Scripted {
    calls: Arc<AtomicUsize>,
    fail: Arc<Mutex<Option<u16>>>,
    retry_after: Arc<Mutex<Option<String>>>,
}

impl Scripted {
    /// A provider that answers until told to fail.
    pub fn new() -> Self {
        Scripted {
            calls: Arc::new(AtomicUsize::new(0)),
            fail: Arc::new(Mutex::new(None)),
            retry_after: Arc::new(Mutex::new(None)),
        }
    }

    /// Its errors carry this `Retry-After` header.
    pub fn asking(&self, retry_after: Option<&str>) {
        *self.retry_after.lock().unwrap() = retry_after.map(str::to_string);
    }

    /// Every call fails with this status from now on (`None`: answers).
    pub fn failing_with(&self, status: Option<u16>) {
        *self.fail.lock().unwrap() = status;
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<ChatRequest> for Scripted {
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: ChatRequest) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let status = *self.fail.lock().unwrap();
        let retry_after = self.retry_after.lock().unwrap().clone();
        Box::pin(async move {
            match status {
                Some(s) => {
                    let mut e = ProviderError::from_body(
                        "p",
                        s,
                        b"{\"error\":{\"message\":\"down\"}}",
                        crate::wire::ErrorPosition::Response,
                    );
                    e.retry_after = retry_after;
                    Err(e.into())
                }
                None => Ok(ChatResponse::complete(
                    serde_json::from_str(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#)
                        .expect("a completion"),
                )),
            }
        })
    }
}

/// A one-message request.
pub fn request() -> ChatRequest {
    ChatRequest::new("m", vec![crate::wire::Message::user("hello")])
}

/// One request through a clone of `svc`.
pub async fn ask<S>(svc: &S) -> Result<ChatResponse, Error>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone,
{
    svc.clone().oneshot(request()).await
}
