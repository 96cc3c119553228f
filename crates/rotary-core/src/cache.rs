//! The read cache: parsed secrets with their versions' sealed values, so that a hot read
//! (GetSecretValue, DescribeSecret, an authorization check) touches no SQL.
//!
//! # What it holds
//! Ciphertext only, never plaintext: an entry is what the store returned for one secret at
//! one revision ([`rotary_store::SealedRecord`]), with the metadata document parsed once.
//! Values are opened per request, as without the cache.
//!
//! # Bounds
//! Entries are weighed by the heap memory they take, as glibc's malloc allocates it (every
//! string and vector of the parsed secret, the sealed values, the two maps' slots): a
//! typical secret with one version weighs about 2 KiB, and filling a cache with 50,000 of
//! them grows the process by about as much (`bytes_per_entry`). The total stays under the
//! configured budget (`--read-cache-mib`), the least useful entries evicted first
//! (`quick_cache`'s CLOCK-Pro). A budget of zero turns the cache off. The sealed values of
//! an entry are kept in one allocation, and the internal id is shared by both maps.
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

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::secret::{Secret, Version};
use rotary_store::VersionRow;

/// A secret as cached: parsed, with the sealed value of each version that has one.
#[derive(Debug)]
pub struct CachedSecret {
    /// The secret at one revision.
    pub secret: Secret,
    /// The secret's internal id, shared with the cache's two maps.
    uid: Arc<str>,
    /// The sealed values, one after the other in one allocation (shared by the copies that
    /// [`SecretCache::record_access`] makes).
    sealed: Arc<[u8]>,
    /// `(index in secret.versions, end of its value in sealed)`, by index; a value starts
    /// where the previous one ends.
    spans: Box<[(u32, u32)]>,
    /// The index of the version labelled AWSCURRENT, found once: a read of a secret the CPU
    /// has not touched lately then skips a walk through every version's labels.
    current: Option<u32>,
    weight: u64,
}

/// Bytes glibc's malloc takes for a request of `n` bytes (its chunk: 8 bytes of header,
/// 16-byte aligned, 32 at least); 0 for nothing allocated.
fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Heap bytes of a version's metadata row beyond the row itself.
fn row_heap(row: &VersionRow) -> usize {
    chunk(row.version_id.len())
        + chunk(row.stages.len() * size_of::<String>())
        + row.stages.iter().map(|s| chunk(s.len())).sum::<usize>()
        + row.kms_key_id.as_ref().map_or(0, |k| chunk(k.len()))
}

/// Per-entry bookkeeping of the two maps beyond the keys' text: a slot, its share of the
/// index and of the empty capacity (measured, roughly).
const MAP_SLOT_BYTES: usize = 64;

impl CachedSecret {
    /// Builds an entry from what the store read in one snapshot. The document's JSON text
    /// is dropped: the entry keeps it parsed, and a write serializes it anew.
    pub(crate) fn new(mut secret: Secret, values: Vec<(String, Vec<u8>)>) -> Self {
        let doc_len = std::mem::take(&mut secret.row.doc).len();
        let mut bytes = Vec::with_capacity(values.iter().map(|(_, v)| v.len()).sum());
        let mut spans = Vec::with_capacity(values.len());
        for (id, value) in &values {
            let Some(i) = secret.version_index(id) else {
                continue;
            };
            bytes.extend_from_slice(value);
            spans.push((i as u32, bytes.len() as u32));
        }
        let spans: Box<[(u32, u32)]> = spans.into();
        let sealed: Arc<[u8]> = bytes.into();
        let uid: Arc<str> = secret.row.uid.as_str().into();
        let weight = Self::heap_bytes(&secret, doc_len, &uid, &sealed, &spans);
        let current = secret
            .label_holder(crate::labels::AWSCURRENT)
            .map(|i| i as u32);
        Self {
            secret,
            uid,
            sealed,
            spans,
            current,
            weight: weight as u64,
        }
    }

    /// The index in `secret.versions` of the version labelled AWSCURRENT.
    pub fn current(&self) -> Option<usize> {
        self.current.map(|i| i as usize)
    }

    /// What the entry holds on the heap, with malloc's overhead: the weight that the
    /// budget bounds, so that `--read-cache-mib` is close to the memory the cache takes.
    /// The parsed document is counted as three times its text (`doc_len`: its strings and
    /// their containers); the id map's entry for the name or ARN that found the secret as
    /// one more copy of the ARN.
    fn heap_bytes(
        secret: &Secret,
        doc_len: usize,
        uid: &Arc<str>,
        sealed: &Arc<[u8]>,
        spans: &[(u32, u32)],
    ) -> usize {
        let row = &secret.row;
        let mut n = chunk(size_of::<CachedSecret>() + 16)
            + [&row.uid, &row.namespace, &row.name, &row.arn]
                .iter()
                .map(|s| chunk(s.len()))
                .sum::<usize>()
            + if doc_len > 2 { doc_len * 3 } else { 0 }
            + chunk(uid.len() + 16)
            + chunk(sealed.len() + 16)
            + chunk(std::mem::size_of_val(spans));
        // The version rows (a cached copy keeps no second copy: see `Secret::begin_change`).
        n += chunk(secret.versions.len() * size_of::<Version>());
        n += secret
            .versions
            .iter()
            .map(|v| row_heap(&v.row))
            .sum::<usize>();
        // The two maps: the entry's slot keyed by the shared id, the id map's slot and key.
        n + 2 * MAP_SLOT_BYTES + chunk(row.arn.len())
    }

    /// The sealed value of a version, as read with the metadata.
    pub fn sealed(&self, version_id: &str) -> Option<&[u8]> {
        self.sealed_at(self.secret.version_index(version_id)?)
    }

    /// The sealed value of the version at `index` in `secret.versions`, as read with the
    /// metadata.
    pub fn sealed_at(&self, index: usize) -> Option<&[u8]> {
        let i = u32::try_from(index).ok()?;
        let mut start = 0;
        for &(at, end) in self.spans.iter() {
            if at == i {
                return self.sealed.get(start as usize..end as usize);
            }
            start = end;
        }
        None
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Arc<str>, Arc<CachedSecret>> for ByBytes {
    fn weight(&self, _uid: &Arc<str>, entry: &Arc<CachedSecret>) -> u64 {
        entry.weight
    }
}

/// Ticket of a fill: the invalidation epoch seen before loading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FillTicket(u64);

/// The cache; see the module documentation.
pub(crate) struct SecretCache {
    /// Secret id as a client sent it (name, ARN, partial ARN) → internal id.
    ids: Option<Cache<Box<str>, Arc<str>>>,
    /// Internal id → entry.
    entries: Option<Cache<Arc<str>, Arc<CachedSecret>, ByBytes>>,
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

/// Weight of a typical cached secret (one version, no tags or description: about 1.9 KiB),
/// to size the maps.
const TYPICAL_ENTRY_BYTES: u64 = 1900;

/// Options of both maps. CLOCK-Pro admits a new key into its small cold section, where it
/// is evicted unless read again soon, or straight into the hot section when the key is
/// remembered as recently evicted (a ghost). The ghosts are as many as the entries the map
/// holds (quick_cache's default is half), so that secrets read round and round, as many as
/// the cache can hold, get in after one round even when a scan of other secrets filled the
/// cache before them; with half as many ghosts such a round never got in.
fn options(items: usize, weight: u64) -> quick_cache::Options {
    quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(items)
        .weight_capacity(weight)
        .ghost_allocation(1.0)
        .build()
        .unwrap_or_else(|_| unreachable!("the options are valid"))
}

impl SecretCache {
    /// A cache of at most `budget_bytes` (0: no caching).
    pub(crate) fn new(budget_bytes: u64) -> Self {
        let (ids, entries) = if budget_bytes == 0 {
            (None, None)
        } else {
            // The id map holds about one id per entry (most clients name a secret one way);
            // ids of evicted entries are dead weight, so it is sized to the entries the
            // budget holds, with a quarter more for secrets read by two ids.
            let items = (budget_bytes / TYPICAL_ENTRY_BYTES).max(16) as usize;
            let ids = items + items / 4;
            (
                Some(Cache::with_options(
                    options(ids, ids as u64),
                    Default::default(),
                    Default::default(),
                    Default::default(),
                )),
                Some(Cache::with_options(
                    options(items, budget_bytes),
                    ByBytes,
                    Default::default(),
                    Default::default(),
                )),
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
        self.entries.as_ref()?.get(&*uid)
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
        ids.insert(id.into(), entry.uid.clone());
        entries.insert(entry.uid.clone(), entry);
    }

    /// Replaces a secret's entry with its state as just committed (write-through), so the
    /// next read or write of it needs no SQL. Fills that started before are dropped.
    pub(crate) fn replace(&self, id: &str, entry: Arc<CachedSecret>) {
        let (Some(ids), Some(entries)) = (&self.ids, &self.entries) else {
            return;
        };
        let _guard = self.lock.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        ids.insert(id.into(), entry.uid.clone());
        entries.insert(entry.uid.clone(), entry);
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
            uid: old.uid.clone(),
            sealed: old.sealed.clone(),
            spans: old.spans.clone(),
            current: old.current,
            weight: old.weight,
        };
        entries.insert(old.uid.clone(), Arc::new(entry));
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
                replication_due_ms: None,
                revision,
                doc: "{}".into(),
            },
            versions: vec![rotary_store::VersionRow {
                version_id: "v1".into(),
                seq: 1,
                created_ms: 0,
                last_accessed_ms: None,
                stages: vec!["AWSCURRENT".into()],
                kms_key_id: None,
                has_value: true,
            }],
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

    /// A secret as CreateSecret leaves it: one version, its sealed value.
    fn typical(i: usize) -> Arc<CachedSecret> {
        let uid = format!("2a27e00b-d7a5-48ba-b756-{i:012}");
        let rec = SecretRecord {
            row: SecretRow {
                uid: uid.clone(),
                namespace: "000000000000:us-east-1".into(),
                name: format!("scale-{i:06}"),
                arn: format!(
                    "arn:aws:secretsmanager:us-east-1:000000000000:secret:scale-{i:06}-0HtqH2"
                ),
                created_ms: 0,
                last_changed_ms: 0,
                last_accessed_ms: None,
                deleted_ms: None,
                rotation_due_ms: None,
                replication_due_ms: None,
                revision: 1,
                doc: "{}".into(),
            },
            versions: vec![rotary_store::VersionRow {
                version_id: format!("0ac57938-f502-4630-b8a4-{i:012}"),
                seq: 1,
                created_ms: 0,
                last_accessed_ms: None,
                stages: vec!["AWSCURRENT".into()],
                kms_key_id: Some("alias/aws/secretsmanager".into()),
                has_value: true,
            }],
        };
        let version = rec.versions[0].version_id.clone();
        Arc::new(CachedSecret::new(
            Secret::from_record(rec).expect("valid doc"),
            vec![(version, vec![7; 183])],
        ))
    }

    /// A typical secret with `n` versions.
    fn with_versions(i: usize, n: usize) -> Arc<CachedSecret> {
        let base = typical(i);
        let mut secret = base.secret.clone();
        let mut values = Vec::new();
        let row = secret.versions[0].row.clone();
        secret.versions.clear();
        let mut rows = Vec::new();
        for v in 0..n {
            let mut r = row.clone();
            r.version_id = format!("0ac57938-f502-4630-b8a4-{v:012}");
            r.seq = v as i64;
            values.push((r.version_id.clone(), vec![7; 183]));
            rows.push(r);
        }
        let mut rec_row = secret.row.clone();
        rec_row.doc = "{}".into();
        secret.versions = Secret::from_record(SecretRecord {
            row: rec_row,
            versions: rows,
        })
        .expect("valid doc")
        .versions;
        Arc::new(CachedSecret::new(secret, values))
    }

    #[test]
    fn sealed_values_by_version() {
        let mut rec_versions = Vec::new();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            rec_versions.push(rotary_store::VersionRow {
                version_id: (*id).into(),
                seq: i as i64,
                created_ms: 0,
                last_accessed_ms: None,
                // "c" is current, and not the first version: the index is found, not assumed.
                stages: if *id == "c" {
                    vec!["AWSCURRENT".into()]
                } else {
                    vec![]
                },
                kms_key_id: None,
                has_value: *id != "b",
            });
        }
        let mut e = entry("u1", 1);
        let mut secret = e.secret.clone();
        // A cached copy keeps its document parsed only.
        let mut row = secret.row.clone();
        row.doc = "{}".into();
        secret.versions = Secret::from_record(SecretRecord {
            row,
            versions: rec_versions,
        })
        .expect("valid doc")
        .versions;
        e = Arc::new(CachedSecret::new(
            secret,
            vec![
                ("a".into(), b"first".to_vec()),
                ("c".into(), b"third".to_vec()),
            ],
        ));
        assert_eq!(e.sealed("a"), Some(b"first".as_slice()));
        assert_eq!(e.sealed("b"), None);
        assert_eq!(e.sealed("c"), Some(b"third".as_slice()));
        assert_eq!(e.sealed("d"), None);
        assert_eq!(e.current(), Some(2));
        assert_eq!(e.sealed_at(2), Some(b"third".as_slice()));
        assert_eq!(e.sealed_at(1), None);
        assert_eq!(e.sealed_at(3), None);
        // An access recorded on the entry keeps what it found.
        let c = SecretCache::new(1 << 20);
        c.fill("s", e.clone(), c.ticket());
        c.record_access(&e.uid, "c", 86_400_000);
        assert_eq!(c.get("s").and_then(|e| e.current()), Some(2));
    }

    #[test]
    fn a_typical_entry_weighs_what_the_map_sizing_assumes() {
        let w = typical(1).weight;
        assert!(
            (TYPICAL_ENTRY_BYTES * 3 / 4..TYPICAL_ENTRY_BYTES * 5 / 4).contains(&w),
            "weight {w}"
        );
    }

    /// What a cached entry really takes: the process's resident memory grown by filling a
    /// cache with 50,000 typical secrets, per entry, against the weight the budget counts.
    /// A measurement, not a check: `cargo test -p rotary-core --release -- --ignored
    /// --nocapture bytes_per_entry`.
    #[test]
    #[ignore]
    fn bytes_per_entry() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        }
        let n = 50_000;
        let c = SecretCache::new(1 << 30);
        let before = rss_kib();
        for i in 0..n {
            let e = typical(i);
            c.fill(&e.secret.row.name.clone(), e, c.ticket());
        }
        let after = rss_kib();
        assert_eq!(c.len(), n);
        println!(
            "sizes: entry {} secret {} doc {} version {} row {}",
            size_of::<CachedSecret>(),
            size_of::<Secret>(),
            size_of::<crate::secret::SecretDoc>(),
            size_of::<Version>(),
            size_of::<VersionRow>()
        );
        println!(
            "{} bytes per entry resident, weight {}",
            (after - before) * 1024 / n as u64,
            typical(1).weight
        );
    }

    /// The benchmark's access pattern, at a tenth of its size: a scan reads every secret once
    /// (each read fills, then the day's first read rewrites the entry), then the secrets of
    /// the spread profile once, then a few secrets with many versions, together about twice
    /// the budget; then the spread secrets, as many as the cache holds, are read round and
    /// round. They must be cached after one round: with quick_cache's default ghosts (half
    /// the entries) they never were, and every read went to the store.
    #[test]
    fn secrets_read_round_and_round_get_in_after_a_scan() {
        let c = SecretCache::new(2 << 20);
        let read = |i: usize, versions: usize| -> bool {
            let name = format!("scale-{i:06}");
            if c.get(&name).is_some() {
                return true;
            }
            let e = if versions == 1 {
                typical(i)
            } else {
                with_versions(i, versions)
            };
            c.fill(&name, e.clone(), c.ticket());
            c.record_access(&e.secret.row.uid, "x", 1);
            false
        };
        let spread = 1_000;
        for i in spread..10_000 {
            read(i, 1);
        }
        for i in 0..spread {
            read(i, 1);
        }
        for i in 20_000..20_200 {
            read(i, 15);
        }
        for _ in 0..2 {
            (0..spread).for_each(|i| {
                read(i, 1);
            });
        }
        let hits = (0..spread).filter(|&i| read(i, 1)).count();
        assert!(hits >= spread * 9 / 10, "{hits} hits of {spread}");
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let c = SecretCache::new(0);
        c.fill("a", entry("u1", 1), c.ticket());
        assert!(c.get("a").is_none());
    }
}
