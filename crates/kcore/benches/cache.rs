//! Cache hit cost with 100,000 entries, and the memory an entry takes.

use std::hint::black_box;

use agentsh_kcore::cache::{CacheKey, Cached, DecisionCache};
use agentsh_wire::response::CacheTtl;
use criterion::{Criterion, criterion_group, criterion_main};

const ENTRIES: usize = 100_000;

fn key_units(i: usize) -> Vec<u16> {
    format!(
        "\\REGISTRY\\USER\\S-1-5-21-1004336348-1177238915-682003330-1001\\SOFTWARE\\Vendor{}\\App\\Settings{}",
        i % 97,
        i
    )
    .encode_utf16()
    .collect()
}

fn bench(c: &mut Criterion) {
    let mut cache = DecisionCache::new(ENTRIES, 0x5eed);
    let keys: Vec<Vec<u16>> = (0..ENTRIES).map(key_units).collect();
    let name: Vec<u16> = "Value".encode_utf16().collect();
    for k in &keys {
        let key = CacheKey {
            token: 7,
            kind: 2,
            path: k,
            name: &name,
        };
        cache.insert(
            0,
            &key,
            Cached {
                allow: true,
                flags: 0,
            },
            CacheTtl::Seconds(3600),
            5000,
        );
    }
    assert_eq!(cache.len(), ENTRIES, "a full cache holds exactly its bound");
    let avg_units = keys.iter().map(|k| k.len() + 1 + name.len()).sum::<usize>() / ENTRIES;
    println!(
        "cache: {ENTRIES} entries, average key {avg_units} UTF-16 units, ~{} bytes per entry",
        DecisionCache::bytes_per_entry(avg_units)
    );
    // Repeated operations hit a small hot set of keys (that is what a cache hit is): the table
    // holds 100,000 entries and the lookups cycle over 64 of them.
    let mut i = 0usize;
    c.bench_function("cache hit, 100000 entries, hot keys", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            let key = CacheKey {
                token: 7,
                kind: 2,
                path: &keys[i * 1009],
                name: &name,
            };
            black_box(cache.lookup(1, black_box(&key)))
        })
    });
    // Every lookup a different entry: the memory system's cost of a 100,000-entry working set.
    let mut j = 0usize;
    c.bench_function("cache hit, 100000 entries, random keys", |b| {
        b.iter(|| {
            j = (j + 7919) % ENTRIES;
            let key = CacheKey {
                token: 7,
                kind: 2,
                path: &keys[j],
                name: &name,
            };
            black_box(cache.lookup(1, black_box(&key)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
