//! Limits on what one caller can make the server hold: time, header bytes, body bytes,
//! connections, HTTP/2 streams, and the memory of all request bodies together (issue #9).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Every limit of the HTTP server. [`Limits::default`] holds the documented defaults.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client has to send a request's headers (HTTP/1.1; it also bounds the wait for
    /// the next request on a kept-alive connection) and to finish a TLS handshake.
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body, once its headers are in.
    pub body_timeout: Duration,
    /// A connection with no request in flight and no bytes either way for this long is
    /// closed (HTTP/2 gets a GOAWAY).
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers; HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Connections served at once. Past it, connections idle for a second or more are
    /// closed to make room; new ones wait in the kernel's accept queue until then.
    pub max_connections: usize,
    /// HTTP/2 streams open at once on one connection.
    pub h2_max_streams: u32,
    /// Bytes of request bodies the server holds at once, over all requests.
    pub body_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            max_connections: 4096,
            h2_max_streams: 100,
            body_memory_bytes: 64 << 20,
        }
    }
}

/// HTTP/2 flow-control windows. Small windows bound what a peer may send before the server
/// reads it: at most [`H2_CONNECTION_WINDOW`] bytes buffered per connection however many
/// streams it opens.
pub(crate) const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// See [`H2_STREAM_WINDOW`].
pub(crate) const H2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// HTTP/2 frame size: the protocol's default and minimum.
pub(crate) const H2_MAX_FRAME: u32 = 16 * 1024;
/// How long a request waits for body memory when all of it is taken, before it is refused
/// with a `ThrottlingException` (which SDKs retry).
pub(crate) const BODY_MEMORY_WAIT: Duration = Duration::from_secs(2);
/// Bodies up to this size are "small": almost every API call. The last quarter of the body
/// budget is kept for them, so large bodies held by slow senders cannot take it all.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// The body limits the request handler applies: size, time, and the shared memory budget.
#[derive(Debug)]
pub struct BodyLimits {
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
    /// Every body byte held.
    budget: Arc<Semaphore>,
    /// Body bytes past [`SMALL_BODY`] of each request; three quarters of the budget.
    large: Arc<Semaphore>,
    budget_bytes: usize,
}

impl BodyLimits {
    /// Limits from `limits`, with a fresh memory budget.
    pub fn new(limits: &Limits) -> Self {
        let budget_bytes = limits
            .body_memory_bytes
            .max(limits.max_body_bytes)
            .min(Semaphore::MAX_PERMITS);
        Self {
            max_bytes: limits.max_body_bytes,
            timeout: limits.body_timeout,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            // At least enough for one body of the maximum size.
            large: Arc::new(Semaphore::new(
                (budget_bytes / 4 * 3)
                    .max(limits.max_body_bytes.saturating_sub(SMALL_BODY))
                    .min(budget_bytes),
            )),
            budget_bytes,
        }
    }

    /// Reserves `bytes` of the budget, waiting at most [`BODY_MEMORY_WAIT`]; `None` when the
    /// budget stays exhausted.
    pub(crate) async fn reserve(&self, bytes: usize) -> Option<BodyPermit> {
        let mut permit = BodyPermit {
            total: None,
            large: None,
        };
        if bytes > 0 {
            permit.grow(self, bytes).await.then_some(())?;
        }
        Some(permit)
    }

    /// Bytes of the budget free now (for tests and metrics).
    pub fn available(&self) -> usize {
        self.budget.available_permits()
    }

    /// The whole budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }
}

/// `n` permits of `sem`, waiting at most [`BODY_MEMORY_WAIT`].
async fn take(sem: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n).ok()?;
    if let Ok(p) = sem.clone().try_acquire_many_owned(n) {
        return Some(p);
    }
    match tokio::time::timeout(BODY_MEMORY_WAIT, sem.clone().acquire_many_owned(n)).await {
        Ok(Ok(p)) => Some(p),
        _ => None,
    }
}

fn add(held: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
    match held {
        Some(p) => p.merge(more),
        None => *held = Some(more),
    }
}

/// Body memory held by one request; returned to the budget when dropped.
#[derive(Debug)]
pub(crate) struct BodyPermit {
    total: Option<OwnedSemaphorePermit>,
    large: Option<OwnedSemaphorePermit>,
}

impl BodyPermit {
    /// Takes `bytes` more of the budget, waiting at most [`BODY_MEMORY_WAIT`].
    pub(crate) async fn grow(&mut self, limits: &BodyLimits, bytes: usize) -> bool {
        let held = self.bytes();
        let new_total = held.saturating_add(bytes);
        let large_part = new_total.saturating_sub(held.max(SMALL_BODY));
        if large_part > 0 {
            let Some(p) = take(&limits.large, large_part).await else {
                return false;
            };
            add(&mut self.large, p);
        }
        let Some(p) = take(&limits.budget, bytes).await else {
            return false;
        };
        add(&mut self.total, p);
        true
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.total
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// File descriptors kept for everything but client connections: the store, rotation
/// functions, outgoing connections, the metrics listener.
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
        return Ok(hard);
    }
    Ok(soft)
}

/// The connection limit that fits `fd_limit` open files, keeping [`RESERVED_FDS`] for the
/// rest of the server.
pub fn connections_for_fds(wanted: usize, fd_limit: u64) -> usize {
    let fit = fd_limit.saturating_sub(RESERVED_FDS).max(16);
    wanted.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_is_shared_and_returned() {
        let limits = BodyLimits::new(&Limits {
            max_body_bytes: 10,
            body_memory_bytes: 25,
            ..Limits::default()
        });
        let a = limits.reserve(10).await.unwrap();
        let mut b = limits.reserve(10).await.unwrap();
        assert_eq!(limits.available(), 5);
        assert!(b.grow(&limits, 5).await);
        assert_eq!(b.bytes(), 15);
        // Exhausted: refused after the bounded wait.
        assert!(limits.reserve(1).await.is_none());
        drop(a);
        drop(b);
        assert_eq!(limits.available(), 25);
    }

    #[tokio::test]
    async fn large_bodies_leave_a_quarter_for_small_ones() {
        let limits = BodyLimits::new(&Limits {
            max_body_bytes: 1 << 20,
            body_memory_bytes: 4 << 20,
            ..Limits::default()
        });
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limits.reserve(1 << 20).await.unwrap());
        }
        // A fourth large body does not fit in the large share...
        assert!(limits.reserve(1 << 20).await.is_none());
        // ...but small ones still do.
        for _ in 0..10 {
            held.push(limits.reserve(SMALL_BODY).await.unwrap());
        }
        drop(held);
        assert_eq!(limits.available(), 4 << 20);
    }

    #[tokio::test]
    async fn a_maximum_body_fits_a_budget_of_one_body() {
        let limits = BodyLimits::new(&Limits {
            max_body_bytes: 1 << 20,
            body_memory_bytes: 1 << 20,
            ..Limits::default()
        });
        let p = limits.reserve(1 << 20).await.unwrap();
        assert_eq!(p.bytes(), 1 << 20);
    }

    #[test]
    fn connections_stay_below_the_fd_limit() {
        assert_eq!(connections_for_fds(4096, 1024), 768);
        assert_eq!(connections_for_fds(4096, 1 << 20), 4096);
        assert_eq!(connections_for_fds(4096, 10), 16);
    }
}
