//! The server's edge: accepting connections, and cutting off the ones that only hold a
//! socket.
//!
//! Three limits keep slow or idle clients from exhausting the process's file
//! descriptors (the concurrency limit of the chat route counts requests, not sockets):
//! - **header read timeout**: from the first byte of a request to the end of its headers.
//!   A client that sends a request line and then a header every few seconds is cut off
//!   when it passes, however steadily it drips;
//! - **idle timeout**: a connection with no request in flight and no byte of a new one
//!   (a fresh connection that says nothing, a keep-alive connection between requests)
//!   is closed when it passes;
//! - **connection cap**: at most this many client connections are open; at the cap the
//!   gateway stops accepting, so new connections wait in the kernel's backlog (costing
//!   the process nothing) until one closes.
//!
//! A request in flight (its response body included, so long streams count) is never cut
//! by these; its own limits are the route's deadlines and the body size limit.
//! hyper's own header timeout is not used: it starts when hyper begins waiting for a
//! request, so it cannot tell an idle keep-alive connection from a slow one.
//!
//! Shutdown stops accepting, asks every connection to close after its current response,
//! waits up to the grace period for open streams, then cuts what is left.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The edge's limits (`[server]` in `gateway.toml`).
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// From a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight and no byte of a new one.
    pub idle_timeout: Duration,
    /// Open client connections at most; at the cap, accepting pauses.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains for `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: the
                    // listener itself is fine, so wait a moment rather than spin or stop.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, router.clone(), limits, stop_rx.clone(), slot));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period passed; cutting open streams");
        connections.abort_all();
    }
    Ok(())
}

/// One client connection, until it ends, a limit cuts it, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: EdgeLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        state: state.clone(),
    });
    let service = hyper::service::service_fn({
        let state = state.clone();
        move |request: http::Request<Incoming>| {
            // Counted from the moment the head is in until the response body is dropped.
            let busy = Busy::begin(state.clone());
            let router = router.clone();
            async move {
                let response = match router.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|inner| Body::new(BusyBody { inner, busy })))
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None::<Duration>);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        if !stopping && *stop.borrow() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                return;
            }
            reason = state.expired(&limits) => {
                tracing::debug!(reason, "closing a client connection");
                return;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() {
                    // The server is gone without a word: close after the current response.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What the watchdog of one connection knows: requests in flight, and since when it has
/// been idle or reading a request head (milliseconds since `origin`).
struct ConnState {
    origin: Instant,
    active: AtomicUsize,
    idle_since: AtomicU64,
    head_since: AtomicU64,
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new() -> Self {
        ConnState {
            origin: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Bytes came in: on an idle connection, they start a request head.
    fn bytes_read(&self) {
        if self.active.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(NONE, self.now(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// Resolves when a limit has passed, with the limit's name.
    async fn expired(&self, limits: &EdgeLimits) -> &'static str {
        loop {
            let deadline = if self.active.load(Ordering::Acquire) > 0 {
                None
            } else {
                match self.head_since.load(Ordering::Acquire) {
                    NONE => Some((
                        self.idle_since.load(Ordering::Acquire),
                        limits.idle_timeout,
                        "idle_timeout",
                    )),
                    since => Some((since, limits.header_read_timeout, "header_read_timeout")),
                }
            };
            match deadline {
                None => self.changed.notified().await,
                Some((since, limit, reason)) => {
                    let at = self.origin + Duration::from_millis(since) + limit;
                    if Instant::now() >= at {
                        return reason;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection; its end makes the connection idle again.
struct Busy(Arc<ConnState>);

impl Busy {
    fn begin(state: Arc<ConnState>) -> Self {
        state.active.fetch_add(1, Ordering::AcqRel);
        state.head_since.store(NONE, Ordering::Release);
        Busy(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Release);
            self.0.head_since.store(NONE, Ordering::Release);
            self.0.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is dropped.
    struct BusyBody {
        #[pin]
        inner: Body,
        busy: Busy,
    }
}

impl http_body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket, telling the watchdog when bytes arrive.
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
