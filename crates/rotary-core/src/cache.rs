//! The read cache: parsed secrets with their versions' sealed values, so that a hot read
//! (GetSecretValue, DescribeSecret, an authorization check) touches no SQL.
//!
//! # What it holds
//! Ciphertext only, never plaintext: an entry is what the store returned for one secret at
//! one revision ([`rotary_store::SealedRecord`]), with the metadata document parsed once.
//! Values are opened per request, as without the cache.
//!
//! # Bounds
//! Entries are weighed by their approximate size in bytes; the total stays under the
//! configured budget (`--read-cache-mib`), the least useful entries evicted first
//! (`quick_cache`'s CLOCK-Pro). A budget of zero turns the cache off.
//!
//! # Coherence
//! Every write to a secret goes through [`crate::SecretsService`], which invalidates the
//! secret's entry after the store has committed and before the write is acknowledged. A
//! reader that loaded the secret before that commit must not put its older copy back: fills
//! carry the invalidation epoch read before loading, and a fill whose epoch is no longer
//! current is dropped ([`SecretCache::fill`]). Writers that lose a compare-and-swap drop
//! the entry too, so a copy changed elsewhere (another node over a shared database) is
//! reloaded rather than retried against. Entries are keyed by the secret's internal id and
//! carry its revision, so a change notice from another node (`uid`, `revision`) can drop
//! exactly the entries older than that revision ([`SecretCache::invalidate_below`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::secret::Secret;

/// A secret as cached: parsed, with the sealed value of each version that has one.
#[derive(Debug)]
pub struct CachedSecret {
    /// The secret at one revision.
    pub secret: Secret,
    sealed: HashMap<String, Vec<u8>>,
    weight: u64,
}

impl CachedSecret {
    /// Builds an entry from what the store read in one snapshot.
    pub(crate) fn new(secret: Secret, values: Vec<(String, Vec<u8>)>) -> Self {
        let row = &secret.row;
        let mut weight = 512
            + (row.uid.len() + row.namespace.len() + row.name.len() + row.arn.len())
            + row.doc.len() * 3;
        for v in &secret.versions {
            weight += 192 + v.row.version_id.len() * 2 + v.row.stages.len() * 32;
        }
        let sealed: HashMap<String, Vec<u8>> = values.into_iter().collect();
        weight += sealed
            .iter()
            .map(|(k, v)| 64 + k.len() + v.len())
            .sum::<usize>();
        Self {
            secret,
            sealed,
            weight: weight as u64,
        }
    }

    /// The sealed value of a version, as read with the metadata.
    pub fn sealed(&self, version_id: &str) -> Option<&[u8]> {
        self.sealed.get(version_id).map(Vec::as_slice)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Arc<CachedSecret>> for ByBytes {
    fn weight(&self, _uid: &String, entry: &Arc<CachedSecret>) -> u64 {
        entry.weight
    }
}

/// Ticket of a fill: the invalidation epoch seen before loading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FillTicket(u64);

/// The cache; see the module documentation.
pub(crate) struct SecretCache {
    /// Secret id as a client sent it (name, ARN, partial ARN) → internal id.
    ids: Option<Cache<String, String>>,
    /// Internal id → entry.
    entries: Option<Cache<String, Arc<CachedSecret>, ByBytes>>,
    /// Bumped by every invalidation, under `lock`.
    epoch: AtomicU64,
    /// Makes "epoch still current, then insert" atomic with "bump epoch, then remove".
    lock: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("entries", &self.entries.as_ref().map_or(0, Cache::len))
            .finish()
    }
}

/// Rough size of one cached secret, to size the id map.
const TYPICAL_ENTRY_BYTES: u64 = 1024;

impl SecretCache {
    /// A cache of at most `budget_bytes` (0: no caching).
    pub(crate) fn new(budget_bytes: u64) -> Self {
        let (ids, entries) = if budget_bytes == 0 {
            (None, None)
        } else {
            let items = (budget_bytes / TYPICAL_ENTRY_BYTES).max(16) as usize;
            (
                Some(Cache::new(items * 2)),
                Some(Cache::with_weighter(items, budget_bytes, ByBytes)),
            )
        };
        Self {
            ids,
            entries,
            epoch: AtomicU64::new(0),
            lock: parking_lot::Mutex::new(()),
        }
    }

    /// The entry for a secret id, if cached.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<CachedSecret>> {
        let uid = self.ids.as_ref()?.get(id)?;
        self.entries.as_ref()?.get(&uid)
    }

    /// Call before loading from the store; pass the ticket to [`Self::fill`].
    pub(crate) fn ticket(&self) -> FillTicket {
        FillTicket(self.epoch.load(Ordering::Acquire))
    }

    /// Caches what was loaded for `id`, unless a write invalidated anything since `ticket`
    /// was taken (the loaded copy may predate that write).
    pub(crate) fn fill(&self, id: &str, entry: Arc<CachedSecret>, ticket: FillTicket) {
        let (Some(ids), Some(entries)) = (&self.ids, &self.entries) else {
            return;
        };
        let _guard = self.lock.lock();
        if self.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        let uid = entry.secret.row.uid.clone();
        ids.insert(id.to_owned(), uid.clone());
        entries.insert(uid, entry);
    }

    /// Replaces a secret's entry with its state as just committed (write-through), so the
    /// next read or write of it needs no SQL. Fills that started before are dropped.
    pub(crate) fn replace(&self, id: &str, entry: Arc<CachedSecret>) {
        let (Some(ids), Some(entries)) = (&self.ids, &self.entries) else {
            return;
        };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let uid = entry.secret.row.uid.clone();
        ids.insert(id.to_owned(), uid.clone());
        entries.insert(uid, entry);
    }

    /// Sets the day of the last read on a cached secret and one of its versions, as the
    /// store has just recorded it. Fills that started before are dropped.
    pub(crate) fn record_access(&self, uid: &str, version_id: &str, day_ms: i64) {
        let Some(entries) = &self.entries else { return };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let Some(old) = entries.get(uid) else { return };
        let mut secret = old.secret.clone();
        secret.row.last_accessed_ms = Some(day_ms);
        if let Some(i) = secret.version_index(version_id) {
            secret.versions[i].row.last_accessed_ms = Some(day_ms);
        }
        let entry = CachedSecret {
            secret,
            sealed: old.sealed.clone(),
            weight: old.weight,
        };
        entries.insert(uid.to_owned(), Arc::new(entry));
    }

    /// Drops a secret's entry (after a write to it committed, or a lost compare-and-swap).
    pub(crate) fn invalidate(&self, uid: &str) {
        let Some(entries) = &self.entries else { return };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(uid);
    }

    /// Drops a secret's entry if it is older than `revision`: how a change made by another
    /// node is applied. Returns whether an entry was dropped.
    pub(crate) fn invalidate_below(&self, uid: &str, revision: i64) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries
            .remove_if(uid, |e| e.secret.row.revision < revision)
            .is_some()
    }

    /// Drops everything (change notices from other nodes may have been lost).
    pub(crate) fn clear(&self) {
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(ids) = &self.ids {
            ids.clear();
        }
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Forgets which secret the ids `names` resolve to (a new secret may now own them).
    pub(crate) fn forget_ids(&self, names: &[&str]) {
        let Some(ids) = &self.ids else { return };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for n in names {
            ids.remove(*n);
        }
    }

    /// Number of cached secrets (for metrics and tests).
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotary_store::{SecretRecord, SecretRow};

    fn entry(uid: &str, revision: i64) -> Arc<CachedSecret> {
        let rec = SecretRecord {
            row: SecretRow {
                uid: uid.into(),
                namespace: "ns".into(),
                name: format!("name-{uid}"),
                arn: format!("arn-{uid}"),
                created_ms: 0,
                last_changed_ms: 0,
                last_accessed_ms: None,
                deleted_ms: None,
                rotation_due_ms: None,
                revision,
                doc: "{}".into(),
            },
            versions: vec![],
        };
        Arc::new(CachedSecret::new(
            Secret::from_record(rec).expect("valid doc"),
            vec![("v1".into(), b"sealed".to_vec())],
        ))
    }

    #[test]
    fn fill_then_get_by_the_id_used() {
        let c = SecretCache::new(1 << 20);
        let t = c.ticket();
        c.fill("prod/db", entry("u1", 1), t);
        let got = c.get("prod/db").expect("cached");
        assert_eq!(got.secret.row.uid, "u1");
        assert_eq!(got.sealed("v1"), Some(b"sealed".as_slice()));
        assert!(c.get("other").is_none());
    }

    #[test]
    fn a_fill_that_raced_a_write_is_dropped() {
        let c = SecretCache::new(1 << 20);
        let before_write = c.ticket();
        // A writer commits and invalidates while the reader is loading the old copy.
        c.invalidate("u1");
        c.fill("prod/db", entry("u1", 1), before_write);
        assert!(
            c.get("prod/db").is_none(),
            "the stale copy must not be cached"
        );
        let t = c.ticket();
        c.fill("prod/db", entry("u1", 2), t);
        assert_eq!(c.get("prod/db").expect("cached").secret.row.revision, 2);
    }

    #[test]
    fn invalidate_drops_the_entry() {
        let c = SecretCache::new(1 << 20);
        c.fill("a", entry("u1", 1), c.ticket());
        c.invalidate("u1");
        assert!(c.get("a").is_none());
    }

    #[test]
    fn remote_change_drops_only_older_revisions() {
        let c = SecretCache::new(1 << 20);
        c.fill("a", entry("u1", 5), c.ticket());
        assert!(!c.invalidate_below("u1", 5), "same revision: still current");
        assert!(c.get("a").is_some());
        assert!(c.invalidate_below("u1", 6));
        assert!(c.get("a").is_none());
    }

    #[test]
    fn forgotten_ids_resolve_again() {
        let c = SecretCache::new(1 << 20);
        c.fill("a", entry("u1", 1), c.ticket());
        c.forget_ids(&["a"]);
        assert!(c.get("a").is_none());
    }

    #[test]
    fn budget_bounds_the_entries() {
        let c = SecretCache::new(64 * 1024);
        for i in 0..10_000 {
            let uid = format!("u{i}");
            c.fill(&uid, entry(&uid, 1), c.ticket());
        }
        let held = c.len();
        assert!(held > 0 && held < 200, "held {held} entries within 64 KiB");
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let c = SecretCache::new(0);
        c.fill("a", entry("u1", 1), c.ticket());
        assert!(c.get("a").is_none());
    }
}
