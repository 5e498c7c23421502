//! Micro benchmarks of the building blocks of a snapshot and a restore, on real
//! database pages: page chunking + BLAKE3 ids, FastCDC on a JSON export, zstd on
//! 1 MiB frames, BLAKE3 throughput, and the JSON export itself.
//!
//! ```text
//! cargo bench --bench blocks                 # all
//! cargo bench --bench blocks -- zstd         # a filter, as usual with criterion
//! ```
//!
//! Input: the first 64 MiB of `LUMINA_BENCH_DB` (default
//! `/tmp/lumina-bench/s0-500000.db`, the state built by
//! `../shared/bench/baseline.sh`); the JSON export is taken from
//! `LUMINA_BENCH_SMALL_DB` (default `/tmp/lumina-bench/s0-50000.db`). When a file is
//! missing, a sample Lumina database is generated in a temporary folder instead.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

use lumina_backup::__internals::{compress, decompress, write_json, ByteChunker, PageChunker};
use lumina_backup::{ByteParams, PageParams, Table};

const MIB: usize = 1 << 20;
const IMAGE_BYTES: usize = 64 * MIB;
const FRAME: usize = MIB;
const PAGE: usize = 4096;

fn db_path(var: &str, default: &str, items: u64) -> (PathBuf, Option<tempfile::TempDir>) {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if p.exists() {
        return (p, None);
    }
    eprintln!(
        "{} missing: generating a sample database of {items} items",
        p.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.db");
    lumina_backup::create_lumina_db(&path, items, 1).unwrap();
    (path, Some(dir))
}

/// The first `n` bytes of a file (fewer if it is shorter), rounded down to pages.
fn read_prefix(path: &Path, n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)
        .unwrap()
        .take(n as u64)
        .read_to_end(&mut buf)
        .unwrap();
    buf.truncate(buf.len() / PAGE * PAGE);
    buf
}

fn json_export(path: &Path, table: Table) -> Vec<u8> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut out = Vec::new();
    write_json(&conn, table, "2026-11-24T00:00:00Z", &mut out).unwrap();
    out
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn blocks(c: &mut Criterion) {
    let (big, _keep_big) = db_path("LUMINA_BENCH_DB", "/tmp/lumina-bench/s0-500000.db", 20_000);
    let image = read_prefix(&big, IMAGE_BYTES);
    let len = image.len() as u64;

    // --- page chunking + BLAKE3 chunk ids (what the capture thread + store do per page)
    let mut g = c.benchmark_group("page_chunk_blake3");
    g.throughput(Throughput::Bytes(len));
    g.bench_function("chunk_only_1_page", |b| {
        b.iter(|| {
            let mut ch = PageChunker::new(PageParams::default());
            let mut n = 0usize;
            for p in image.chunks(PAGE) {
                if let Some(c) = ch.push(p) {
                    n += c.len();
                }
            }
            n
        })
    });
    g.bench_function("chunk+blake3_1_thread", |b| {
        b.iter(|| {
            let mut ch = PageChunker::new(PageParams::default());
            let mut x = 0u8;
            for p in image.chunks(PAGE) {
                if let Some(c) = ch.push(p) {
                    x ^= blake3::hash(&c).as_bytes()[0];
                }
            }
            x
        })
    });
    g.bench_function("chunk+blake3_rayon_4MiB_batches", |b| {
        b.iter(|| {
            let mut ch = PageChunker::new(PageParams::default());
            let mut x = 0u8;
            for batch in image.chunks(4 * MIB) {
                let chunks: Vec<Vec<u8>> = batch.chunks(PAGE).filter_map(|p| ch.push(p)).collect();
                x ^= chunks
                    .par_iter()
                    .map(|c| blake3::hash(c).as_bytes()[0])
                    .reduce(|| 0, |a, b| a ^ b);
            }
            x
        })
    });
    g.bench_function("chunk_cdc_avg8_pages", |b| {
        b.iter(|| {
            let mut ch = PageChunker::new(PageParams {
                avg_pages: 8,
                max_pages: 64,
            });
            image.chunks(PAGE).filter_map(|p| ch.push(p)).count()
        })
    });
    g.finish();

    // --- BLAKE3 throughput
    let mut g = c.benchmark_group("blake3");
    g.throughput(Throughput::Bytes(len));
    g.bench_function("whole_1_thread", |b| {
        b.iter(|| *blake3::hash(&image).as_bytes())
    });
    g.bench_function("whole_rayon", |b| {
        b.iter(|| {
            let mut h = blake3::Hasher::new();
            h.update_rayon(&image);
            *h.finalize().as_bytes()
        })
    });
    g.bench_function("per_4KiB_page_1_thread", |b| {
        b.iter(|| {
            image
                .chunks(PAGE)
                .fold(0u8, |x, p| x ^ blake3::hash(p).as_bytes()[0])
        })
    });
    g.finish();

    // --- zstd on 1 MiB frames of db pages (lumina's compress(): bulk API, kept raw if no gain)
    let mut g = c.benchmark_group("zstd_1MiB_frames");
    g.throughput(Throughput::Bytes(len));
    for level in [1, 3] {
        let packed: usize = image
            .chunks(FRAME)
            .map(|f| compress(f.to_vec(), level).1.len())
            .sum();
        eprintln!(
            "zstd-{level} on 1 MiB frames of the first {} MiB: ratio {:.3}",
            len >> 20,
            len as f64 / packed as f64
        );
        g.bench_with_input(
            BenchmarkId::new("compress_1_thread", level),
            &level,
            |b, &lv| {
                b.iter(|| {
                    image
                        .chunks(FRAME)
                        .map(|f| compress(f.to_vec(), lv).1.len())
                        .sum::<usize>()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("compress_rayon", level),
            &level,
            |b, &lv| {
                b.iter(|| {
                    image
                        .par_chunks(FRAME)
                        .map(|f| compress(f.to_vec(), lv).1.len())
                        .sum::<usize>()
                })
            },
        );
        let frames: Vec<_> = image
            .chunks(FRAME)
            .map(|f| (compress(f.to_vec(), level), f.len()))
            .collect();
        g.bench_with_input(
            BenchmarkId::new("decompress_1_thread", level),
            &level,
            |b, _| {
                b.iter(|| {
                    frames
                        .iter()
                        .map(|((k, d), n)| decompress(*k, d, *n).unwrap().len())
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();

    // --- JSON export of Lumina's tables, and FastCDC over it
    let (small, _keep_small) = db_path(
        "LUMINA_BENCH_SMALL_DB",
        "/tmp/lumina-bench/s0-50000.db",
        20_000,
    );
    let json = json_export(&small, Table::Metadata);
    let mut g = c.benchmark_group("json_export");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("metadata.json_write_json", |b| {
        b.iter(|| json_export(&small, Table::Metadata).len())
    });
    g.finish();

    let mut g = c.benchmark_group("fastcdc");
    let sample = &json[..json.len().min(32 * MIB)];
    g.throughput(Throughput::Bytes(sample.len() as u64));
    g.bench_function("ByteChunker_default_4KiB_on_metadata.json", |b| {
        b.iter(|| {
            let mut ch = ByteChunker::new(ByteParams::default());
            let mut n = 0usize;
            for piece in sample.chunks(MIB) {
                ch.push(piece, &mut |c| n += c.len());
            }
            ch.finish(&mut |c| n += c.len());
            n
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = blocks
}
criterion_main!(benches);
