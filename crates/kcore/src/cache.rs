//! The decision cache: bounded, least-recently-used eviction (lookups count as use), per-entry
//! expiry, keyed by everything that can change a decision.
//!
//! Key = (session token, operation, case-folded path, case-folded value name or rename/link
//! target). Names are folded with `agentsh-winstr`, the rule the policy matcher uses. The map
//! holds a keyed 64-bit hash; every hit is confirmed by comparing the full stored key, so a hash
//! collision can only cost a miss, never return another key's decision.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash, Hasher};

use agentsh_wire::response::CacheTtl;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::Millis;

/// Longest folded key (path + name) the cache stores; longer operations are never cached.
/// Every whole wire request fits: a file path and its target (the longer of the two kinds).
const MAX_KEY_UNITS: usize = agentsh_wire::file::PATH_MAX * 2 + 1;

const NIL: u32 = u32::MAX;

/// What identifies a cached decision.
#[derive(Debug, Clone, Copy)]
pub struct CacheKey<'a> {
    pub token: u64,
    /// The operation: registry codes as on the wire, file codes offset by [`FILE_KIND_BASE`].
    pub kind: u16,
    pub path: &'a [u16],
    /// Value name, or rename / hard-link target; empty when the operation has none.
    pub name: &'a [u16],
}

/// File operation codes are stored as `FILE_KIND_BASE + code` so they never meet registry codes.
pub const FILE_KIND_BASE: u16 = 0x100;

/// A cached decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub allow: bool,
    /// The response flags (notify, log) to honour on every hit.
    pub flags: u32,
}

#[derive(Debug)]
struct Slot {
    token: u64,
    kind: u16,
    hash: u64,
    path_len: u32,
    folded: Vec<u16>,
    value: Cached,
    expires: Millis,
    prev: u32,
    next: u32,
}

/// The kernel's decision cache.
#[derive(Debug)]
pub struct DecisionCache {
    capacity: usize,
    map: HashMap<u64, u32, FixedState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    hasher: FixedState,
    evictions: u64,
}

/// Outcome of [`DecisionCache::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Stored,
    /// TTL 0, or the key is too long to store whole.
    NotCached,
}

impl DecisionCache {
    /// An empty cache of at most `capacity` entries. `seed` keys the hash (the driver draws it
    /// at load), so sandboxed code cannot aim collisions at a known function.
    pub fn new(capacity: usize, seed: u64) -> Self {
        DecisionCache {
            capacity: capacity.max(1),
            map: HashMap::with_hasher(FixedState::with_seed(seed)),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            hasher: FixedState::with_seed(seed ^ 0x9E37_79B9_7F4A_7C15),
            evictions: 0,
        }
    }

    /// Number of live entries (expired ones count until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The configured bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Changes the bound, evicting least recently used entries to fit.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.map.len() > self.capacity {
            self.evict_tail();
        }
    }

    /// Looks `key` up at time `now`. A hit counts as use; an expired entry is removed.
    pub fn lookup(&mut self, now: Millis, key: &CacheKey<'_>) -> Option<Cached> {
        if !fits(key) {
            return None;
        }
        let mut inline = [0u16; INLINE];
        let folded = fold_inline(key, &mut inline);
        let hash = match folded {
            Some(f) => self.hash_folded(key, f),
            None => self.hash_chunked(key),
        };
        let idx = *self.map.get(&hash)?;
        let slot = &self.slots[idx as usize];
        let same = slot.token == key.token
            && slot.kind == key.kind
            && slot.path_len as usize == key.path.len()
            && match folded {
                Some(f) => slot.folded == f,
                None => slot.matches(key),
            };
        if !same {
            return None;
        }
        if now >= slot.expires {
            self.remove(idx);
            return None;
        }
        let value = slot.value;
        self.touch(idx);
        Some(value)
    }

    /// Stores a decision for `ttl` (`default_ttl_ms` for [`CacheTtl::DriverDefault`]).
    pub fn insert(
        &mut self,
        now: Millis,
        key: &CacheKey<'_>,
        value: Cached,
        ttl: CacheTtl,
        default_ttl_ms: u32,
    ) -> Insert {
        let ttl_ms = match ttl {
            CacheTtl::None => return Insert::NotCached,
            CacheTtl::DriverDefault => u64::from(default_ttl_ms),
            CacheTtl::Seconds(s) => u64::from(s) * 1000,
        };
        if !fits(key) {
            return Insert::NotCached;
        }
        // Fallible growth: without memory the decision is simply not cached.
        let Some(folded) = folded_vec(key) else {
            return Insert::NotCached;
        };
        // A new slot also reserves its place in the free list, so `remove` never allocates.
        if self.map.try_reserve(1).is_err()
            || (self.free.is_empty()
                && (self.slots.try_reserve(1).is_err()
                    || self.free.try_reserve(self.slots.len() + 1).is_err()))
        {
            return Insert::NotCached;
        }
        let hash = self.hash(key);
        if let Some(&old) = self.map.get(&hash) {
            self.remove(old);
        }
        while self.map.len() >= self.capacity {
            self.evict_tail();
        }
        let slot = Slot {
            token: key.token,
            kind: key.kind,
            hash,
            path_len: key.path.len() as u32,
            folded,
            value,
            expires: now.saturating_add(ttl_ms),
            prev: NIL,
            next: NIL,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(hash, idx);
        self.link_front(idx);
        Insert::Stored
    }

    /// Drops every entry (service reconnect, policy reload).
    pub fn flush_all(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// Drops the entries of one session (unregister, token rotation).
    pub fn flush_session(&mut self, token: u64) {
        let mut idx = self.head;
        while idx != NIL {
            let next = self.slots[idx as usize].next;
            if self.slots[idx as usize].token == token {
                self.remove(idx);
            }
            idx = next;
        }
    }

    /// Approximate bytes held per entry for an average folded key of `key_units` units: the
    /// slot, the key's heap copy and the map's share (hash, index, control byte, load factor).
    pub fn bytes_per_entry(key_units: usize) -> usize {
        let map_share = (8 + 4 + 1) * 8 / 7;
        core::mem::size_of::<Slot>() + key_units * 2 + map_share
    }

    /// The key's hash. Keys of up to [`INLINE`] units are folded once into a stack buffer and
    /// hashed in one pass; longer ones are folded and hashed in chunks. The choice depends only
    /// on the key's length, so insert and lookup always agree.
    fn hash(&self, key: &CacheKey<'_>) -> u64 {
        let mut inline = [0u16; INLINE];
        match fold_inline(key, &mut inline) {
            Some(f) => self.hash_folded(key, f),
            None => self.hash_chunked(key),
        }
    }

    fn hash_folded(&self, key: &CacheKey<'_>, folded: &[u16]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u64(key.token);
        h.write_u16(key.kind);
        h.write_usize(key.path.len());
        u16::hash_slice(folded, &mut h);
        h.finish()
    }

    fn hash_chunked(&self, key: &CacheKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u64(key.token);
        h.write_u16(key.kind);
        h.write_usize(key.path.len());
        let mut folded = [0u16; CHUNK];
        for part in [key.path, key.name] {
            for chunk in part.chunks(CHUNK) {
                agentsh_winstr::upcase_into(chunk, &mut folded);
                u16::hash_slice(&folded[..chunk.len()], &mut h);
            }
        }
        h.finish()
    }

    fn touch(&mut self, idx: u32) {
        if self.head != idx {
            self.unlink(idx);
            self.link_front(idx);
        }
    }

    fn link_front(&mut self, idx: u32) {
        self.slots[idx as usize].prev = NIL;
        self.slots[idx as usize].next = self.head;
        if self.head != NIL {
            self.slots[self.head as usize].prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = (self.slots[idx as usize].prev, self.slots[idx as usize].next);
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn remove(&mut self, idx: u32) {
        self.unlink(idx);
        let slot = &mut self.slots[idx as usize];
        self.map.remove(&slot.hash);
        slot.folded = Vec::new();
        self.free.push(idx);
    }

    fn evict_tail(&mut self) {
        if self.tail != NIL {
            self.remove(self.tail);
            self.evictions += 1;
        }
    }
}

const CHUNK: usize = 64;

/// Keys up to this many units (path + name) are folded once on the stack for a lookup.
const INLINE: usize = 256;

/// Folds path and name contiguously into `buf`; `None` if the key is longer than [`INLINE`].
fn fold_inline<'b>(key: &CacheKey<'_>, buf: &'b mut [u16; INLINE]) -> Option<&'b [u16]> {
    let n = key.path.len() + key.name.len();
    if n > INLINE {
        return None;
    }
    let (path, rest) = buf.split_at_mut(key.path.len());
    agentsh_winstr::upcase_into(key.path, path);
    agentsh_winstr::upcase_into(key.name, rest);
    Some(&buf[..n])
}

fn folded_vec(key: &CacheKey<'_>) -> Option<Vec<u16>> {
    let n = key.path.len() + key.name.len();
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    let (path, name) = v.split_at_mut(key.path.len());
    agentsh_winstr::upcase_into(key.path, path);
    agentsh_winstr::upcase_into(key.name, name);
    Some(v)
}

/// Whether `stored` equals `query` folded, chunk by chunk.
fn eq_folded(stored: &[u16], query: &[u16]) -> bool {
    if stored.len() != query.len() {
        return false;
    }
    let mut folded = [0u16; CHUNK];
    stored.chunks(CHUNK).zip(query.chunks(CHUNK)).all(|(s, q)| {
        agentsh_winstr::upcase_into(q, &mut folded);
        s == &folded[..q.len()]
    })
}

fn fits(key: &CacheKey<'_>) -> bool {
    key.path.len() + key.name.len() <= MAX_KEY_UNITS
}

impl Slot {
    /// Full comparison of the stored folded key with a query, folding the query on the fly.
    fn matches(&self, key: &CacheKey<'_>) -> bool {
        let path_len = self.path_len as usize;
        path_len == key.path.len()
            && self.folded.len() == path_len + key.name.len()
            && eq_folded(&self.folded[..path_len], key.path)
            && eq_folded(&self.folded[path_len..], key.name)
    }
}
