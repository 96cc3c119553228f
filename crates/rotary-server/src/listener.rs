//! The accept loop: HTTP/1.1 and HTTP/2 (h2c, or h2 by ALPN over TLS) with hyper, under the
//! connection, header, idle and HTTP/2 limits of [`Limits`].
//!
//! Connections are counted by a semaphore. When all are taken, every connection that has no
//! request in flight and has been silent for [`PRESSURE_MIN_IDLE`] is closed to make room,
//! so idle connections cannot lock out callers; new connections wait in the kernel's accept
//! queue meanwhile.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::Method;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tower::Service;

use crate::limits::{Limits, H2_CONNECTION_WINDOW, H2_MAX_FRAME, H2_STREAM_WINDOW};
use crate::router::AppState;
use crate::tls::TlsFiles;

/// Under connection pressure, connections silent for this long with no request in flight
/// are closed.
pub(crate) const PRESSURE_MIN_IDLE: Duration = Duration::from_secs(1);
/// How long open connections get to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// for a few seconds. With `tls`, every connection must complete a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, app, None, limits, tls, shutdown).await
}

/// Serves the API's router for `state` as [`serve`] does, except that `POST /` (every API
/// request) goes to the request pipeline directly: axum's routing, which would pick the same
/// handler, costs a few percent of a hot read's CPU.
pub async fn serve_api(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = crate::router::router(state.clone());
    serve_with(listener, app, Some(state), limits, tls, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    app: Router,
    api: Option<AppState>,
    limits: Limits,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let builder = Arc::new(builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let pressure = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    let mut last_full_warning: Option<Instant> = None;

    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = take_slot(&slots, &pressure, &mut last_full_warning, limits.max_connections) => slot,
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            app: app.clone(),
            api: api.clone(),
            limits: limits.clone(),
            pressure: pressure.clone(),
            stop: stop_rx.clone(),
            activity: Arc::new(Activity::new()),
            info: ConnInfo {
                peer,
                tls: tls.is_some(),
            },
        };
        let tls = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let _slot = slot;
            let io = Tracked {
                inner: tcp,
                activity: conn.activity.clone(),
                preface: 0,
            };
            match tls {
                None => conn.run(io).await,
                Some(acceptor) => {
                    match tokio::time::timeout(conn.limits.header_read_timeout, acceptor.accept(io))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                conn.activity.http2.store(true, Ordering::Relaxed);
                            }
                            conn.run(stream).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("Connections still open after the shutdown grace period were dropped");
    }
    Ok(())
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The header timeout is kept by `watch` (see `Activity`), not by hyper's timer, which
    // hyper arms anew for every request (a timer allocation and two wheel updates each).
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // hyper's floor for the read buffer is 8 KiB; a head that does not fit gets 431.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .adaptive_window(false)
        .max_frame_size(H2_MAX_FRAME)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(256 * 1024);
    b
}

/// A connection slot; when none is free, asks idle connections to close and waits.
async fn take_slot(
    slots: &Arc<Semaphore>,
    pressure: &Notify,
    last_warning: &mut Option<Instant>,
    max: usize,
) -> tokio::sync::OwnedSemaphorePermit {
    loop {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return p;
        }
        if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            *last_warning = Some(Instant::now());
            tracing::warn!(
                max_connections = max,
                "The connection limit is reached: closing idle connections, new ones wait"
            );
        }
        pressure.notify_waiters();
        if let Ok(Ok(p)) =
            tokio::time::timeout(Duration::from_millis(100), slots.clone().acquire_owned()).await
        {
            return p;
        }
    }
}

/// When a connection last moved bytes, how many of its requests are in flight, and since
/// when it has been waiting for the next request head.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// 1 + the millisecond (since `started`) from which the connection has waited for a
    /// request head: its start, or the end of its last request or the last byte written
    /// after it, whichever came later. 0 while a request is in flight.
    head_wait_from: AtomicU64,
    /// An HTTP/2 connection: its streams are not bound by the header timeout.
    http2: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_wait_from: AtomicU64::new(1),
            http2: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes were written: an answer still going out to a slow reader does not count
    /// against the wait for the next head, which begins once it is written.
    fn wrote(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.head_wait_from.load(Ordering::Relaxed) != 0 {
            self.head_wait_from.store(now + 1, Ordering::Relaxed);
        }
    }

    /// How long an HTTP/1 connection with no request in flight has waited for the next
    /// request head (`Some(ZERO)` while one is in flight: the wait has not begun); `None`
    /// on HTTP/2.
    fn head_wait(&self) -> Option<Duration> {
        if self.http2.load(Ordering::Relaxed) {
            return None;
        }
        match self.head_wait_from.load(Ordering::Relaxed) {
            0 => Some(Duration::ZERO),
            from => Some(Duration::from_millis(
                self.now_ms().saturating_sub(from - 1),
            )),
        }
    }

    /// How long the connection has been idle: zero while a request is in flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        last.elapsed()
    }
}

/// Counts one request in flight while alive.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_wait_from.store(0, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.last_ms.store(now, Ordering::Relaxed);
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The next head is waited for from now (hyper reads it once this answer is
            // written, so the wait includes the writing).
            self.0.head_wait_from.store(now + 1, Ordering::Relaxed);
        }
    }
}

/// A socket that records when it last read or wrote bytes, and whether it opened with the
/// HTTP/2 connection preface (h2c).
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    /// How many bytes of [`H2_PREFACE`] the connection opened with so far; past its length
    /// once the connection is known not to be h2c.
    preface: usize,
}

/// The bytes an HTTP/2 client opens a connection with (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const NOT_H2C: usize = usize::MAX;

impl<T> Tracked<T> {
    /// Follows the connection's first bytes against the HTTP/2 preface.
    fn check_preface(&mut self, read: &[u8]) {
        let want = &H2_PREFACE[self.preface..];
        let n = read.len().min(want.len());
        if read[..n] != want[..n] {
            self.preface = NOT_H2C;
            return;
        }
        self.preface += n;
        if self.preface == H2_PREFACE.len() {
            self.activity.http2.store(true, Ordering::Relaxed);
            self.preface = NOT_H2C;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
            if self.preface != NOT_H2C {
                let read = &buf.filled()[before..];
                self.check_preface(read);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
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
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Where a request goes: straight to the API pipeline, or through the router.
enum To {
    Api(AppState),
    Router(Router),
}

/// One accepted connection and what it needs to be served.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    /// The API's state when `POST /` bypasses the router (see [`serve_api`]).
    api: Option<AppState>,
    limits: Arc<Limits>,
    pressure: Arc<Notify>,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    info: ConnInfo,
}

/// The connection a request came on, attached to every request as an extension: the peer
/// for `aws:SourceIp` and audit records, TLS for `aws:SecureTransport`.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl Conn {
    async fn run<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = self.activity.clone();
        let app = self.app.clone();
        let api = self.api.clone();
        let info = self.info;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let in_flight = InFlight::new(&activity);
            if req.version() == hyper::Version::HTTP_2 {
                activity.http2.store(true, Ordering::Relaxed);
            }
            let to = match &api {
                Some(st) if req.method() == Method::POST && req.uri().path() == "/" => {
                    To::Api(st.clone())
                }
                _ => To::Router(app.clone()),
            };
            async move {
                let mut req = req.map(axum::body::Body::new);
                let response = match to {
                    To::Api(st) => crate::router::run_on(&st, req, info).await,
                    To::Router(mut app) => {
                        req.extensions_mut().insert(info);
                        match app.call(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    }
                };
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // The timeouts, the pressure of a full server and its shutdown are watched by a task
        // of their own, which sends one word when the connection should go: polled here
        // beside the connection, their futures would be polled again on every wake-up of it
        // (every request), and the `Notify`s behind them are shared by all connections, each
        // poll taking their lock.
        let (tell, mut told) = oneshot::channel();
        let watchdog = tokio::spawn(watchdog(
            self.activity.clone(),
            self.limits.clone(),
            self.pressure.clone(),
            self.stop.clone(),
            tell,
        ));
        let _watchdog = AbortOnDrop(watchdog);
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            let deadline = closing.unwrap_or_else(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "Connection ended with an error");
                    }
                    return;
                }
                stall = &mut told, if closing.is_none() => {
                    let grace = match stall {
                        Ok(Stall::Idle) => self.limits.body_timeout,
                        Ok(Stall::SlowHead) => {
                            tracing::debug!("A request head did not arrive within the header timeout; closing the connection");
                            return;
                        }
                        // The server is stopping (or the watchdog is gone, and with it the
                        // connection's timeouts: it goes as at shutdown).
                        Ok(Stall::Shutdown) | Err(_) => SHUTDOWN_GRACE,
                    };
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + grace);
                }
                () = tokio::time::sleep_until(deadline), if closing.is_some() => return,
            }
        }
    }
}

/// Aborts a task when dropped: the watchdog ends with its connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches one connection (see [`watch`]) and the server's shutdown; tells the connection
/// once, when it should go.
async fn watchdog(
    activity: Arc<Activity>,
    limits: Arc<Limits>,
    pressure: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    mut tell: oneshot::Sender<Stall>,
) {
    let stall = tokio::select! {
        stall = watch(&activity, &limits, &pressure) => stall,
        _ = stop.changed() => Stall::Shutdown,
        () = tell.closed() => return,
    };
    let _ = tell.send(stall);
}

/// Why a connection should go: what [`watch`] finds, or the server's shutdown, which the
/// [`watchdog`] tells the connection.
enum Stall {
    /// Idle for the idle timeout, or for [`PRESSURE_MIN_IDLE`] when the accept loop is out
    /// of connection slots: closed gracefully.
    Idle,
    /// An HTTP/1 connection waited longer than the header timeout for a request head (a
    /// slow head, or no next request on a kept-alive connection): closed at once.
    SlowHead,
    /// The server is stopping: closed gracefully within [`SHUTDOWN_GRACE`].
    Shutdown,
}

/// Completes when the connection should be closed. Its timer is set anew only when it
/// fires, at most a header timeout apart, not for every request.
async fn watch(activity: &Activity, limits: &Limits, pressure: &Notify) -> Stall {
    loop {
        let idle_for = activity.idle_for();
        if idle_for >= limits.idle_timeout {
            return Stall::Idle;
        }
        let mut wait = limits.idle_timeout - idle_for;
        if let Some(waited) = activity.head_wait() {
            if waited >= limits.header_read_timeout {
                return Stall::SlowHead;
            }
            // With a request in flight (`waited` is zero) this checks again a header
            // timeout later, by when the next head's wait has begun.
            wait = wait.min(limits.header_read_timeout - waited);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = pressure.notified() => {
                if activity.idle_for() >= PRESSURE_MIN_IDLE {
                    return Stall::Idle;
                }
            }
        }
    }
}
