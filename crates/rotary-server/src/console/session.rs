//! Console sessions: random ids from the OS CSPRNG, held in this process's memory (so a
//! session is valid only on the node that created it), each with its own CSRF token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::OsRng;
use rand::RngCore;
use rotary_auth::Principal;
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub(super) const SESSION_COOKIE: &str = "rotary_console";
/// Name of the cookie that carries the sign-in form's CSRF token (double submit).
pub(super) const SIGNIN_COOKIE: &str = "rotary_console_signin";
/// A session ends this long after sign-in, however active.
pub(super) const MAX_AGE: Duration = Duration::from_secs(8 * 3600);
/// A session ends after this long without a request.
pub(super) const IDLE: Duration = Duration::from_secs(30 * 60);
/// Most sessions held at once; past it the oldest is dropped.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub(super) struct Session {
    /// Who the console acts as.
    pub principal: Principal,
    /// The token every POST form of this session must carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) > MAX_AGE || now.duration_since(self.last_seen) > IDLE
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub(super) fn csrf_ok(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| same(t, &self.csrf))
    }
}

/// Constant-time string comparison.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// 32 random bytes from the OS CSPRNG, hex.
pub(super) fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The sessions of this node.
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `principal`; returns its id.
    pub(super) fn create(&self, principal: Principal) -> String {
        let now = Instant::now();
        let id = random_token();
        let s = Session {
            principal,
            csrf: random_token(),
            created: now,
            last_seen: now,
        };
        let mut map = self.map.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !s.expired(now));
        }
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), s);
        id
    }

    /// The live session with this id (its idle timer restarts), or `None`.
    pub(super) fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let s = map.get_mut(id)?;
        if s.expired(now) {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub(super) fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(super) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value scoped to the console: HttpOnly, SameSite=Strict, Secure under TLS.
pub(super) fn set_cookie(name: &str, value: &str, max_age: Duration, tls: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if tls { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotary_auth::PrincipalKind;

    fn root() -> Principal {
        Principal {
            account_id: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:root".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            kind: PrincipalKind::Root,
        }
    }

    #[test]
    fn session_create_get_remove() {
        let s = Sessions::default();
        let id = s.create(root());
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert!(got.csrf_ok(Some(&got.csrf.clone())));
        assert!(!got.csrf_ok(Some("nope")));
        assert!(!got.csrf_ok(None));
        s.remove(&id);
        assert!(s.get(&id).is_none());
        assert!(s.get("unknown").is_none());
    }

    #[test]
    fn cookie_parses_among_others() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; rotary_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn set_cookie_flags() {
        let c = set_cookie(SESSION_COOKIE, "x", MAX_AGE, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "x", MAX_AGE, false).contains("Secure"));
    }
}
