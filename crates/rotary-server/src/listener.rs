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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tower::Service;

use crate::limits::{Limits, H2_CONNECTION_WINDOW, H2_MAX_FRAME, H2_STREAM_WINDOW};
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
            };
            match tls {
                None => conn.run(io).await,
                Some(acceptor) => {
                    match tokio::time::timeout(conn.limits.header_read_timeout, acceptor.accept(io))
                        .await
                    {
                        Ok(Ok(stream)) => conn.run(stream).await,
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
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
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

/// When a connection last moved bytes, and how many of its requests are in flight.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
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
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when it last read or wrote bytes.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
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
            self.activity.touch();
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
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One accepted connection and what it needs to be served.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
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
    async fn run<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = self.activity.clone();
        let app = self.app.clone();
        let info = self.info;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let in_flight = InFlight::new(&activity);
            let mut app = app.clone();
            async move {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(info);
                let response = app.call(req).await;
                drop(in_flight);
                response
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            let deadline = closing.unwrap_or_else(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "Connection ended with an error");
                    }
                    return;
                }
                () = wait_idle(&self.activity, self.limits.idle_timeout, &self.pressure), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + self.limits.body_timeout);
                }
                _ = self.stop.changed(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
                () = tokio::time::sleep_until(deadline), if closing.is_some() => return,
            }
        }
    }
}

/// Completes when the connection has been idle for `idle`, or for [`PRESSURE_MIN_IDLE`]
/// when the accept loop is out of connection slots.
async fn wait_idle(activity: &Activity, idle: Duration, pressure: &Notify) {
    loop {
        let idle_for = activity.idle_for();
        if idle_for >= idle {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(idle - idle_for) => {}
            () = pressure.notified() => {
                if activity.idle_for() >= PRESSURE_MIN_IDLE {
                    return;
                }
            }
        }
    }
}
