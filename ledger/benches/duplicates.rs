//! The duplicate check's lookup with a million segments in the fingerprint index (issue 18):
//! `cargo bench -p sd-ledger --bench duplicates` (`SD_BENCH_SEGMENTS` to change the count).
//!
//! A SQLite ledger is filled with generated segments: 5 s at 10 fps (real sessions run 5-15 fps),
//! each a walk through hash space that starts near one of 64 "scene" hashes, so that band values
//! repeat across segments as they do in one city. Then, per query segment, the index lookup
//! (`Ledger::earlier_segments`) and the comparison (`find_duplicate`) are timed: copies of stored
//! segments (bits flipped, a time offset, every third frame dropped) must be found, new drives
//! must not. The reference is decoding one 5 s segment of 1280x704 VP8 at 15 fps (what the
//! pipeline does anyway), on the same machine in the same run. Memory: the two tables' and
//! their indexes' pages (SQLite's `dbstat`), and the process's peak RSS.

use std::time::{Duration, Instant};

use sd_core::{
    find_duplicate, probe_video, DuplicateConfig, FingerprintFrame, Limits, SegmentFingerprint,
};
use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_ledger::Ledger;

const SEGMENTS_PER_SESSION: usize = 10;
const FRAMES: usize = 50;
const FRAME_MS: i64 = 100;
const QUERIES: usize = 200;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Segment `n`'s fingerprint (the same for the same `n`).
fn segment(n: u64) -> SegmentFingerprint {
    let mut scene = Rng(n % 64);
    let mut rng = Rng(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xABCD);
    let mut hash = scene.next();
    for _ in 0..10 {
        hash ^= 1 << (rng.next() % 64);
    }
    SegmentFingerprint {
        frames: (0..FRAMES as i64)
            .map(|i| {
                hash ^= 1 << (rng.next() % 64);
                hash ^= 1 << (rng.next() % 64);
                FingerprintFrame {
                    pts_ms: i * FRAME_MS,
                    hash,
                }
            })
            .collect(),
    }
}

/// A copy of `original` as a re-encode makes it: up to 3 bits flipped per frame, another time
/// base, every third frame dropped.
fn copy_of(original: &SegmentFingerprint, rng: &mut Rng) -> SegmentFingerprint {
    SegmentFingerprint {
        frames: original
            .frames
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, f)| {
                let mut hash = f.hash;
                for _ in 0..rng.next() % 4 {
                    hash ^= 1 << (rng.next() % 64);
                }
                FingerprintFrame {
                    pts_ms: f.pts_ms + 37_000,
                    hash,
                }
            })
            .collect(),
    }
}

fn wallet(n: u64) -> String {
    let mut bytes = [9u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bs58::encode(bytes).into_string()
}

/// Fills the ledger at `path` with `count` segments, straight through SQL (the ledger's
/// `record_session` would refresh payouts for each: hours for a million).
fn fill(path: &std::path::Path, count: u64) -> anyhow::Result<()> {
    drop(Ledger::open(path)?);
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut session = tx.prepare(
            "INSERT INTO sessions (id, wallet, session_id, source, status, frames, \
             session_json, processed_at, run_id) \
             VALUES (?1, ?2, ?3, 'bench', 'accepted', ?4, '{}', '2026-12-03T00:00:00Z', 'bench')",
        )?;
        let mut segment_row = tx.prepare(
            "INSERT INTO segments (id, session_row, segment, first_frame, last_frame, frames, \
             start_pts_ms, end_pts_ms, passed, failed_checks) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, '')",
        )?;
        let mut fingerprint = tx.prepare(
            "INSERT INTO segment_fingerprints (segment_row, content_seq, frames, fingerprint) \
             VALUES (?1, ?1, ?2, ?3)",
        )?;
        let sessions = count.div_ceil(SEGMENTS_PER_SESSION as u64);
        for s in 0..sessions {
            let id = s as i64 + 1;
            session.execute(rusqlite::params![
                id,
                wallet(s % 5000),
                format!("session_{:013}_{:06}", 1_770_000_000_000 + s, s % 1_000_000),
                (SEGMENTS_PER_SESSION * FRAMES) as i64
            ])?;
        }
        for n in 0..count {
            let row = n as i64 + 1;
            let session_row = (n / SEGMENTS_PER_SESSION as u64) as i64 + 1;
            let index = (n % SEGMENTS_PER_SESSION as u64) as i64;
            segment_row.execute(rusqlite::params![
                row,
                session_row,
                index + 1,
                index * FRAMES as i64,
                (index + 1) * FRAMES as i64 - 1,
                FRAMES as i64,
                (index * 5000) as f64,
                ((index + 1) * 5000) as f64
            ])?;
            let print = segment(n);
            fingerprint.execute(rusqlite::params![row, FRAMES as i64, print.to_bytes()])?;
        }
        // The keys in index order, a band at a time (a band's keys are one range of the index).
        let mut key = tx.prepare(
            "INSERT INTO fingerprint_keys (key, segment_row, session_row, content_seq) \
             VALUES (?1, ?2, ?3, ?2) ON CONFLICT (key, segment_row) DO NOTHING",
        )?;
        for band in 0..4 {
            let mut pairs: Vec<(i64, i64)> = Vec::with_capacity(count as usize * 10);
            for n in 0..count {
                let row = n as i64 + 1;
                pairs.extend(
                    segment(n)
                        .index_keys()
                        .into_iter()
                        .filter(|k| k >> 16 == band)
                        .map(|k| (k, row)),
                );
            }
            pairs.sort_unstable();
            for (k, row) in pairs {
                let session_row = (row - 1) / SEGMENTS_PER_SESSION as i64 + 1;
                key.execute(rusqlite::params![k, row, session_row])?;
            }
        }
        tx.execute(
            "UPDATE fingerprint_sequence SET last = ?1 WHERE id = 1",
            rusqlite::params![count as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Pages of the fingerprint tables and their indexes, bytes (`None` without `dbstat`).
fn index_bytes(path: &std::path::Path) -> Option<Vec<(String, u64)>> {
    let conn = rusqlite::Connection::open(path).ok()?;
    let mut statement = conn
        .prepare(
            "SELECT name, sum(pgsize) FROM dbstat WHERE name IN \
             ('fingerprint_keys', 'fingerprint_keys_by_segment', 'segment_fingerprints') \
             GROUP BY name ORDER BY name",
        )
        .ok()?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })
        .ok()?;
    rows.collect::<Result<Vec<_>, _>>().ok()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// The median time to decode one 5 s segment of 1280x704 VP8 at 15 fps (five runs).
fn decode_reference(dir: &std::path::Path) -> anyhow::Result<Duration> {
    let spec = SyntheticSpec::constant_rate(5.0, 15.0).with_size(1280, 704);
    let written = write_bundle(&dir.join("reference"), &spec, Naming::Plain)?;
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let probe = probe_video(&written.video, &Limits::default());
            assert!(probe.is_ok(), "the reference video decodes");
            started.elapsed()
        })
        .collect();
    times.sort();
    Ok(times[times.len() / 2])
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks a harness-less bench to list its tests: there are none.
        return Ok(());
    }
    let count: u64 = std::env::var("SD_BENCH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger.sqlite");
    let started = Instant::now();
    fill(&path, count)?;
    println!(
        "filled a SQLite ledger with {count} segments in {:.0} s ({:.0} MB on disk)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );
    match index_bytes(&path) {
        Some(tables) => {
            for (name, bytes) in &tables {
                println!(
                    "  {name}: {:.0} MB ({:.0} bytes per segment)",
                    *bytes as f64 / 1e6,
                    *bytes as f64 / count as f64
                );
            }
        }
        None => println!("  (this SQLite has no dbstat: table sizes not measured)"),
    }

    let ledger = Ledger::open(&path)?;
    let config = DuplicateConfig::default();
    let mut rng = Rng(42);
    let mut lookups = Vec::new();
    let mut compares = Vec::new();
    let mut candidates = Vec::new();
    let (mut found, mut false_matches) = (0, 0);
    for q in 0..QUERIES {
        let copy = q % 2 == 0;
        let query = if copy {
            copy_of(&segment(rng.next() % count), &mut rng)
        } else {
            segment(count + 1_000_000 + q as u64)
        };
        let session = format!("session_{:013}_query{q}", 1_780_000_000_000_u64 + q as u64);
        let started = Instant::now();
        let earlier = ledger
            .earlier_segments(&wallet(99_999), &session, &query, &config)?
            .segments;
        let looked_up = started.elapsed();
        let finding = find_duplicate(&query, &earlier, &config);
        lookups.push(looked_up);
        compares.push(started.elapsed() - looked_up);
        candidates.push(earlier.len());
        match (copy, finding.duplicate) {
            (true, true) => found += 1,
            (false, true) => false_matches += 1,
            _ => {}
        }
    }
    let total: Vec<Duration> = {
        let mut t: Vec<Duration> = lookups
            .iter()
            .zip(&compares)
            .map(|(a, b)| *a + *b)
            .collect();
        t.sort();
        t
    };
    lookups.sort();
    compares.sort();
    let reference = decode_reference(dir.path())?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "per query segment ({QUERIES}, half copies): index lookup median {:.2} ms, p95 {:.2} ms; \
         compare median {:.2} ms; total median {:.2} ms, p95 {:.2} ms, worst {:.2} ms; \
         candidates per lookup median {}",
        ms(percentile(&lookups, 0.5)),
        ms(percentile(&lookups, 0.95)),
        ms(percentile(&compares, 0.5)),
        ms(percentile(&total, 0.5)),
        ms(percentile(&total, 0.95)),
        ms(percentile(&total, 1.0)),
        {
            candidates.sort();
            candidates[candidates.len() / 2]
        }
    );
    println!(
        "decoding one 5 s 1280x704 segment (reference): {:.1} ms; lookup+compare / decode: \
         median {:.3}, p95 {:.3}",
        ms(reference),
        percentile(&total, 0.5).as_secs_f64() / reference.as_secs_f64(),
        percentile(&total, 0.95).as_secs_f64() / reference.as_secs_f64()
    );
    println!(
        "copies found {found} of {}; new drives matched {false_matches} of {}; peak RSS {:.0} MB",
        QUERIES / 2,
        QUERIES / 2,
        peak_rss_mb()
    );
    Ok(())
}
