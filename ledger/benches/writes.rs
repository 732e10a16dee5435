//! Ledger writes per second, on SQLite and on PostgreSQL, with 1 and 4 concurrent writers
//! (issue 17): `cargo bench -p sd-ledger --bench writes`.
//!
//! A write is what a worker does per processed session: `record_session` of a session of two
//! segments (the session row, its segments and checks, the wallet's pending payout refreshed),
//! one transaction. Each writer has its own connection, as a worker process does; sessions go to
//! 50 wallets, so concurrent writers sometimes refresh the same wallet's pending payout (SQLite
//! runs them one at a time; PostgreSQL runs them at once and retries the conflicting ones).
//! Both stores are durable: SQLite with `synchronous=FULL`, PostgreSQL with `fsync` on (a local
//! cluster on 127.0.0.1, as `scripts/postgres.sh` starts it). Ratios are against SQLite with one
//! writer, measured in the same run on the same machine.

use std::time::{Duration, Instant};

use sd_core::{
    Bound, CheckName, CheckResult, Lamports, SegmentRecord, SessionRecord, SessionStatus,
};
use sd_ledger::{Ledger, LedgerLocation};
use sd_tests::postgres::Postgres;

const RATE: Lamports = Lamports(1_000_000);
/// Writes per writer, each run.
const WRITES: usize = 300;
const WALLETS: usize = 50;

fn wallet(n: usize) -> String {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
    bs58::encode(bytes).into_string()
}

fn session(writer: usize, n: usize) -> SessionRecord {
    let wallet = wallet((writer * 7919 + n) % WALLETS);
    let session_id = format!("session_17699363{writer:02}{n:03}_w{writer}n{n}");
    let segments = (0..2)
        .map(|i| {
            let passed = !(n + i).is_multiple_of(3);
            SegmentRecord {
                segment: i + 1,
                first_frame: i * 150,
                last_frame: i * 150 + 149,
                frames: 150,
                start_pts_ms: i as f64 * 5000.0,
                end_pts_ms: (i + 1) as f64 * 5000.0,
                passed,
                checks: vec![CheckResult {
                    check: CheckName::Blur,
                    metric: "sharpness".to_owned(),
                    value: if passed { 0.9 } else { 0.1 },
                    threshold: 0.5,
                    bound: Bound::AtLeast,
                    passed,
                    reason: "bench".to_owned(),
                    frames: Vec::new(),
                    duplicate_of: None,
                }],
                fingerprint: Default::default(),
            }
        })
        .collect();
    SessionRecord {
        wallet,
        session_id,
        source: "bench".to_owned(),
        status: SessionStatus::Accepted,
        reject_code: None,
        reject_message: None,
        frames: 300,
        clock_confidence: Some(0.9),
        session_json: "{}".to_owned(),
        duplicate_recheck: None,
        segments,
    }
}

/// One run: `writers` threads, each on its own connection, `WRITES` records each.
struct Run {
    writes: usize,
    elapsed: Duration,
    /// Per-write latencies, sorted.
    latencies: Vec<Duration>,
    /// Transactions run again after a serialization failure, all writers.
    conflicts: u64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

fn run(location: &LedgerLocation, writers: usize) -> anyhow::Result<Run> {
    // Migrated once before the clock starts.
    drop(Ledger::open_at(location)?);
    let started = Instant::now();
    let (latencies, conflicts) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                std::thread::Builder::new()
                    .name(format!("writer-{writer}"))
                    .spawn_scoped(scope, move || -> anyhow::Result<(Vec<Duration>, u64)> {
                        let mut ledger = Ledger::open_at(location)?;
                        let mut latencies = Vec::with_capacity(WRITES);
                        for n in 0..WRITES {
                            let record = session(writer, n);
                            let start = Instant::now();
                            ledger.record_session(
                                &record,
                                RATE,
                                "2026-12-03T12:00:00Z",
                                "bench",
                            )?;
                            latencies.push(start.elapsed());
                        }
                        Ok((latencies, ledger.conflicts_retried()))
                    })
            })
            .collect::<Result<_, _>>()?;
        let (mut all, mut conflicts) = (Vec::new(), 0);
        for handle in handles {
            let (latencies, retried) = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
            all.extend(latencies);
            conflicts += retried;
        }
        Ok::<_, anyhow::Error>((all, conflicts))
    })?;
    let elapsed = started.elapsed();
    let mut latencies = latencies;
    latencies.sort_unstable();
    // Every write landed once: the sessions and the totals say so.
    let ledger = Ledger::open_at(location)?;
    let sessions = ledger.sessions()?.len();
    anyhow::ensure!(
        sessions == writers * WRITES,
        "{sessions} sessions recorded, not {}",
        writers * WRITES
    );
    Ok(Run {
        writes: writers * WRITES,
        elapsed,
        latencies,
        conflicts,
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let folder = tempfile::tempdir()?;
    let postgres = Postgres::start_with("the ledger writes benchmark on PostgreSQL", true);
    let mut stores = vec![("sqlite", None::<String>)];
    if let Some(postgres) = &postgres {
        let fsync = postgres.psql("postgres", "SHOW fsync");
        anyhow::ensure!(
            fsync.stdout.trim() == "on",
            "PostgreSQL runs with fsync {:?}",
            fsync.stdout.trim()
        );
        stores.push(("postgres", Some(String::new())));
    }
    println!(
        "ledger writes (record_session of a 2-segment session, one transaction; {WRITES} per writer, {WALLETS} wallets; durable commits)"
    );
    println!(
        "{:<9} {:>7} {:>7} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "store", "writers", "writes", "seconds", "writes/s", "ratio", "p50 ms", "p95 ms", "retried"
    );
    let mut reference: Option<f64> = None;
    for (name, _) in &stores {
        for writers in [1, 4] {
            let location = match *name {
                "sqlite" => {
                    LedgerLocation::Sqlite(folder.path().join(format!("ledger-{writers}.sqlite")))
                }
                _ => {
                    let postgres = postgres
                        .as_ref()
                        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL"))?;
                    let database = format!("bench_{writers}");
                    postgres.create_database(&database);
                    LedgerLocation::Postgres(postgres.url(&database))
                }
            };
            let run = run(&location, writers)?;
            let rate = run.per_second();
            let reference = *reference.get_or_insert(rate);
            println!(
                "{:<9} {:>7} {:>7} {:>8.2} {:>9.0} {:>7.2} {:>9.2} {:>9.2} {:>9}",
                name,
                writers,
                run.writes,
                run.elapsed.as_secs_f64(),
                rate,
                rate / reference,
                run.percentile(0.5).as_secs_f64() * 1e3,
                run.percentile(0.95).as_secs_f64() * 1e3,
                run.conflicts,
            );
        }
    }
    if postgres.is_none() {
        println!("(PostgreSQL is not installed: its rows are missing; scripts/install-deps.sh installs it)");
    }
    Ok(())
}
