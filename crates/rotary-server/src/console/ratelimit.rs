//! Sign-in rate limiting: after [`MAX_FAILURES`] failed sign-ins within [`WINDOW`] from one
//! client address, or for one access key id, further sign-ins from that address or with
//! that key id are refused for [`LOCKOUT`], without checking the secret.
//!
//! Both keys count: the address limit stops one client guessing across keys, the key-id
//! limit stops many addresses guessing one key's secret. A locked key id refuses console
//! sign-in with that key from every address for the lockout (the API, signed with SigV4, is
//! not affected); other keys and other addresses sign in as usual. A successful sign-in
//! clears the key id's failures. State is per node, in memory, and bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed sign-ins that lock an address or a key id…
pub(super) const MAX_FAILURES: usize = 5;
/// …when they happen within this long.
pub(super) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a locked address or key id is refused.
pub(super) const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Most addresses and key ids tracked; past it, entries without a lock are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    KeyId(String),
}

#[derive(Debug, Default)]
struct Entry {
    /// Times of the recent failures (at most MAX_FAILURES kept).
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

impl Entry {
    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|u| *u > now)
            .map(|u| u.duration_since(now))
    }

    fn stale(&self, now: Instant) -> bool {
        self.locked(now).is_none()
            && self
                .failures
                .last()
                .is_none_or(|t| now.duration_since(*t) > WINDOW)
    }
}

/// Failed sign-ins of this node.
#[derive(Default)]
pub(super) struct SignInLimits {
    map: Mutex<HashMap<Key, Entry>>,
}

fn keys(addr: Option<IpAddr>, key_id: &str) -> Vec<Key> {
    let mut out = Vec::with_capacity(2);
    if let Some(a) = addr {
        out.push(Key::Addr(a));
    }
    if !key_id.is_empty() {
        out.push(Key::KeyId(key_id.to_owned()));
    }
    out
}

impl SignInLimits {
    /// One sign-in attempt: `Err(wait)` when the address or the key id is locked (`check`
    /// is not run); otherwise runs `check` (the credential comparison) and counts its
    /// failure (`None`) or clears the key id's count on success. The table stays locked
    /// while `check` runs, so concurrent attempts cannot all pass before a lock is set.
    pub(super) fn attempt<P>(
        &self,
        addr: Option<IpAddr>,
        key_id: &str,
        now: Instant,
        check: impl FnOnce() -> Option<P>,
    ) -> Result<Option<P>, Duration> {
        let mut map = self.map.lock();
        if let Some(wait) = keys(addr, key_id)
            .iter()
            .filter_map(|k| map.get(k).and_then(|e| e.locked(now)))
            .max()
        {
            return Err(wait);
        }
        let out = check();
        match out {
            Some(_) => {
                map.remove(&Key::KeyId(key_id.to_owned()));
            }
            None => failed(&mut map, addr, key_id, now),
        }
        Ok(out)
    }

    #[cfg(test)]
    fn locked(&self, addr: Option<IpAddr>, key_id: &str, now: Instant) -> Option<Duration> {
        let map = self.map.lock();
        keys(addr, key_id)
            .iter()
            .filter_map(|k| map.get(k).and_then(|e| e.locked(now)))
            .max()
    }

    #[cfg(test)]
    fn failed(&self, addr: Option<IpAddr>, key_id: &str, now: Instant) {
        failed(&mut self.map.lock(), addr, key_id, now);
    }

    #[cfg(test)]
    fn succeeded(&self, key_id: &str) {
        self.map.lock().remove(&Key::KeyId(key_id.to_owned()));
    }
}

/// Counts a failed sign-in against the address and the key id; locks whichever reached
/// MAX_FAILURES within WINDOW. (A successful sign-in clears only the key id's count: a
/// client with one valid key must not reset its count of guesses at other keys.)
fn failed(map: &mut HashMap<Key, Entry>, addr: Option<IpAddr>, key_id: &str, now: Instant) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| !e.stale(now));
    }
    if map.len() >= MAX_ENTRIES {
        return; // Under a flood of distinct keys, keep the locks already held.
    }
    for k in keys(addr, key_id) {
        let e = map.entry(k).or_default();
        e.failures.retain(|t| now.duration_since(*t) <= WINDOW);
        e.failures.push(now);
        if e.failures.len() >= MAX_FAILURES {
            e.locked_until = Some(now + LOCKOUT);
            e.failures.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn five_failures_lock_the_address_and_the_key_id() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        for i in 0..4 {
            l.failed(ip("10.0.0.1"), "AKIAONE", t0 + Duration::from_secs(i));
            assert!(l.locked(ip("10.0.0.1"), "AKIAONE", t0).is_none());
        }
        l.failed(ip("10.0.0.1"), "AKIAONE", t0 + Duration::from_secs(5));
        let now = t0 + Duration::from_secs(6);
        // The address is locked for any key; the key id from any address.
        assert!(l.locked(ip("10.0.0.1"), "AKIAOTHER", now).is_some());
        assert!(l.locked(ip("10.0.0.2"), "AKIAONE", now).is_some());
        // Another client with another key is not.
        assert!(l.locked(ip("10.0.0.2"), "AKIAOTHER", now).is_none());
        // The lock ends.
        assert!(l.locked(ip("10.0.0.1"), "AKIAONE", now + LOCKOUT).is_none());
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        for i in 0..10 {
            l.failed(ip("10.0.0.1"), "AKIAONE", t0 + Duration::from_secs(i * 80));
        }
        assert!(l
            .locked(ip("10.0.0.1"), "AKIAONE", t0 + Duration::from_secs(800))
            .is_none());
    }

    #[test]
    fn attempt_refuses_without_checking_once_locked() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                l.attempt(ip("10.0.0.1"), "AKIAONE", t0, || None::<()>),
                Ok(None)
            );
        }
        let mut checked = false;
        let r = l.attempt(ip("10.0.0.1"), "AKIAONE", t0, || {
            checked = true;
            Some(())
        });
        assert_eq!(r, Err(LOCKOUT));
        assert!(!checked);
        assert_eq!(
            l.attempt(ip("10.0.0.2"), "AKIATWO", t0, || Some(1)),
            Ok(Some(1))
        );
    }

    #[test]
    fn success_clears_the_key_ids_failures() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            l.failed(None, "AKIAONE", t0);
        }
        l.succeeded("AKIAONE");
        l.failed(None, "AKIAONE", t0);
        assert!(l.locked(None, "AKIAONE", t0).is_none());
    }
}
