//! The serve loop: HTTP/1.1 connections under a cap, each with a header-read and an idle
//! timeout, and graceful shutdown with a deadline, after which the background tasks stop.
//!
//! hyper serves each connection with axum's `Router` as its service (the client's address
//! goes on every request as `ConnectInfo<SocketAddr>`, as `axum::serve` did).
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::metrics::Metrics;

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest a client may take to send a request's headers (and, on a kept-alive connection,
    /// to start its next request: hyper starts this timer when it waits for one).
    pub header_read: Duration,
    /// A connection with no bytes either way for this long is closed (after the answer in
    /// progress, if any).
    pub idle: Duration,
    /// Connections served at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
    /// Longest graceful shutdown waits for connections, then for the background tasks.
    pub shutdown: Duration,
}

/// A task that runs beside the server (the webhook writer, the recording archive's workers):
/// told to stop once no request is left, then awaited within the shutdown deadline.
pub struct Background {
    name: &'static str,
    stop: Box<dyn FnOnce() + Send>,
    done: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Background {
    /// `stop` asks the task to finish; `done` resolves once it has.
    pub fn new(
        name: &'static str,
        stop: impl FnOnce() + Send + 'static,
        done: impl Future<Output = ()> + Send + 'static,
    ) -> Background {
        Background {
            name,
            stop: Box::new(stop),
            done: Box::pin(done),
        }
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("name", &self.name)
            .finish()
    }
}

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shutdown {
    /// Connections still open at the deadline, closed then.
    pub connections_cut: usize,
    /// Background tasks not done by the deadline.
    pub tasks_unfinished: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets every
/// connection finish the request in progress (kept-alive ones close at once), stops the
/// `background` tasks, all within `limits.shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Option<Metrics>,
    background: Vec<Background>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<Shutdown> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (router, closed, metrics) = (router.clone(), closed.clone(), metrics.clone());
        connections.spawn(async move {
            if let Some(m) = &metrics {
                m.connection(1);
            }
            connection(stream, peer, router, limits, closed).await;
            if let Some(m) = &metrics {
                m.connection(-1);
            }
            drop(slot);
        });
    }
    drop(listener);
    let deadline = Instant::now() + limits.shutdown;
    let _ = closing.send(true);
    let open = connections.len();
    tracing::info!(
        open,
        "shutting down: no new connections; finishing requests in progress"
    );
    let finished = tokio::time::timeout_at(deadline.into(), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let mut report = Shutdown::default();
    if finished.is_err() {
        report.connections_cut = connections.len();
        tracing::warn!(
            connections = report.connections_cut,
            "shutdown deadline reached: closing the connections still open"
        );
        connections.shutdown().await;
    }
    // Every request is answered or cut: nothing holds the router's handles any more.
    drop(router);
    for task in background {
        (task.stop)();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let remaining = remaining.max(Duration::from_secs(1));
        if tokio::time::timeout(remaining, task.done).await.is_err() {
            report.tasks_unfinished += 1;
            tracing::warn!(
                task = task.name,
                "a background task did not stop by the deadline"
            );
        } else {
            tracing::info!(task = task.name, "stopped");
        }
    }
    Ok(report)
}

/// One connection: HTTP/1.1 with the header-read timeout, closed when idle past
/// `limits.idle`, and asked to close (after its request in progress) when `closed` turns.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut closed: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let last_active = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        started,
        last_active: last_active.clone(),
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut tick = tokio::time::interval(
        (limits.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
    );
    let mut closing = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closed.changed(), if !closing => {
                if changed.is_err() || *closed.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tick.tick(), if !closing => {
                let active = Duration::from_millis(last_active.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(active) >= limits.idle {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection's stream that notes when bytes last went either way.
struct Tracked {
    inner: TcpStream,
    started: Instant,
    /// Milliseconds after `started`.
    last_active: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Bounds the wait for each piece of a request body: a client that stops sending mid-body
/// gets its request answered (400, `MALFORMED_BODY`) instead of holding it open.
pub async fn body_read_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
) -> axum::extract::Request {
    request.map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(limit, body)))
}
