//! The PostgreSQL schema (`ledger/migrations/postgres/`) against the SQLite one
//! (`ledger/migrations/`, as `Ledger::open` migrates a file): the same tables, views and columns,
//! and the same refusals from the same statements, on a real PostgreSQL started on 127.0.0.1.
//!
//! The `Ledger` API's own tests run on both stores (`ledger.rs`, `intake.rs`); this one keeps the
//! two schemas from drifting where the API does not look (a table, column or refusal of its own).

use std::collections::BTreeSet;
use std::path::Path;

use sd_tests::postgres::Postgres;

/// The PostgreSQL migrations, in order.
fn postgres_migrations() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("ledger/migrations/postgres")
        .map(|entry| entry.expect("a migration").path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (
                name,
                std::fs::read_to_string(&path).expect("read a migration"),
            )
        })
        .collect()
}

/// A PostgreSQL database with the schema, and a SQLite ledger file beside it.
fn both(test: &str) -> Option<(Postgres, tempfile::TempDir, rusqlite::Connection)> {
    let postgres = Postgres::start(test)?;
    let dir = tempfile::tempdir().expect("temp dir");
    postgres.create_database("ledger");
    for (name, sql) in postgres_migrations() {
        let applied = postgres.psql("ledger", &sql);
        assert!(applied.ok, "{name} on PostgreSQL: {}", applied.stderr);
    }
    let file = dir.path().join("ledger.sqlite");
    drop(sd_ledger::Ledger::open(&file).expect("a SQLite ledger"));
    let sqlite = rusqlite::Connection::open(&file).expect("open the SQLite ledger");
    Some((postgres, dir, sqlite))
}

#[test]
fn both_stores_have_the_same_tables_views_and_columns() {
    let Some((postgres, _dir, sqlite)) = both("both_stores_have_the_same_tables_views_and_columns")
    else {
        return;
    };
    let mut statement = sqlite
        .prepare(
            "SELECT m.name || '.' || p.name FROM sqlite_master AS m \
             JOIN pragma_table_info(m.name) AS p \
             WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'",
        )
        .expect("prepare");
    let in_sqlite: BTreeSet<String> = statement
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("columns");
    let listed = postgres.psql(
        "ledger",
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'public'",
    );
    assert!(listed.ok, "{}", listed.stderr);
    let in_postgres: BTreeSet<String> = listed.stdout.lines().map(str::to_owned).collect();
    assert!(in_sqlite.len() > 50, "{in_sqlite:?}");
    assert_eq!(
        in_sqlite.difference(&in_postgres).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "columns only SQLite has"
    );
    assert_eq!(
        in_postgres.difference(&in_sqlite).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "columns only PostgreSQL has"
    );
}

/// Rows both stores start from: an accepted session with a failed segment a reviewer passed and a
/// passed one, an approved payout (id 1) with its item, a pending one (id 2) whose items net a
/// negative amount, the rate. Plain SQL both dialects read alike; ids are the stores' own.
const SETUP: &[&str] = &[
    "INSERT INTO sessions (wallet, session_id, source, status, frames, session_json, processed_at, run_id) \
     VALUES ('w1', 's1', 'raw', 'accepted', 40, '{}', 't', 'r')",
    "INSERT INTO segments (session_row, segment, first_frame, last_frame, frames, start_pts_ms, end_pts_ms, \
     passed, failed_checks) VALUES (1, 1, 0, 10, 11, 0.0, 366.0, 0, 'blur')",
    "INSERT INTO segments (session_row, segment, first_frame, last_frame, frames, start_pts_ms, end_pts_ms, \
     passed, failed_checks) VALUES (1, 2, 11, 30, 20, 400.0, 1000.0, 1, '')",
    "INSERT INTO payouts (wallet, state, amount_lamports, created_at) VALUES ('w1', 'pending', 0, 't')",
    "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
     VALUES (1, 'w1', 's1', 1, 100, 5, 'earning', 'n')",
    "UPDATE payouts SET state = 'approved', approved_at = 't', approved_by = 'ops', amount_lamports = 5 WHERE id = 1",
    "INSERT INTO payouts (wallet, state, amount_lamports, created_at) VALUES ('w2', 'pending', 0, 't')",
    "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
     VALUES (2, 'w2', 's2', 1, 100, 7, 'earning', 'n')",
    "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
     VALUES (2, 'w2', 's3', 1, 100, -1500000007, 'adjustment', 'taken back')",
    "INSERT INTO overrides (wallet, session_id, segment, first_frame, last_frame, from_verdict, to_verdict, \
     reason, overridden_by, overridden_at) VALUES ('w1', 's1', 1, 0, 10, 'fail', 'pass', 'ok', 'rev', 't')",
    "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (1, 5, 't')",
];

/// Statements both stores must refuse, with the words of the refusal: the trigger's own message,
/// or the constraint's name as each store words it (`[SQLite, PostgreSQL]`).
const REFUSED: &[(&str, [&str; 2])] = &[
    (
        "INSERT INTO payouts (wallet, state, amount_lamports, created_at, approved_at, approved_by) \
         VALUES ('w3', 'approved', 5, 't', 't', 'ops')",
        ["a payout starts pending", "a payout starts pending"],
    ),
    (
        "UPDATE payouts SET amount_lamports = 6 WHERE id = 1",
        ["an approved or paid payout never changes", "an approved or paid payout never changes"],
    ),
    (
        "DELETE FROM payouts WHERE id = 1",
        ["an approved or paid payout is never deleted", "an approved or paid payout is never deleted"],
    ),
    (
        "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
         VALUES (1, 'w1', 's9', 1, 10, 5, 'earning', 'n')",
        ["items are added only to a pending payout", "items are added only to a pending payout"],
    ),
    (
        "UPDATE payout_items SET note = 'x' WHERE payout_id = 1",
        ["items of an approved or paid payout never change", "items of an approved or paid payout never change"],
    ),
    (
        "DELETE FROM payout_items WHERE payout_id = 1",
        ["items of an approved or paid payout are never deleted", "items of an approved or paid payout are never deleted"],
    ),
    (
        "UPDATE payouts SET state = 'approved', approved_at = 't', approved_by = 'ops', amount_lamports = 8 WHERE id = 2",
        ["a payout is approved only when amount_lamports is the sum of its items", "a payout is approved only when amount_lamports is the sum of its items"],
    ),
    (
        "UPDATE payouts SET state = 'paid', paid_at = 't', signature = 'S' WHERE id = 2",
        ["a pending payout can only become approved", "a pending payout can only become approved"],
    ),
    (
        "UPDATE overrides SET reason = 'x'",
        ["overrides are append-only history", "overrides are append-only history"],
    ),
    (
        "DELETE FROM overrides",
        ["overrides are append-only history", "overrides are append-only history"],
    ),
    (
        "DELETE FROM settings",
        ["the ledger rate is never deleted", "the ledger rate is never deleted"],
    ),
    (
        "INSERT INTO payouts (wallet, state, amount_lamports, created_at) VALUES ('w2', 'pending', 0, 't')",
        [
            "UNIQUE constraint failed: payouts.wallet",
            "payouts_one_pending_per_wallet",
        ],
    ),
    (
        "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
         VALUES (2, 'w2', 's2', 2, 100, 0, 'earning', 'n')",
        [
            "CHECK constraint failed",
            "payout_items_amount_lamports_check",
        ],
    ),
    (
        "INSERT INTO settings (id, lamports_per_segment, rate_set_at) VALUES (2, 5, 't')",
        ["CHECK constraint failed: id = 1", "settings_id_check"],
    ),
];

/// Statements both stores must take after the refusals: the legal moves. (w3's payout is named
/// by its wallet: the refused inserts used up ids of PostgreSQL's sequence, not SQLite's.)
const ACCEPTED: &[&str] = &[
    "INSERT INTO payouts (wallet, state, amount_lamports, created_at) VALUES ('w3', 'pending', 0, 't')",
    "INSERT INTO payout_items (payout_id, wallet, session_id, segment, frames, amount_lamports, kind, note) \
     SELECT id, 'w3', 's4', 1, 100, 9, 'earning', 'n' FROM payouts WHERE wallet = 'w3'",
    "UPDATE payouts SET state = 'approved', approved_at = 't', approved_by = 'ops', amount_lamports = 9 WHERE wallet = 'w3'",
    "UPDATE payouts SET state = 'paid', paid_at = 't', signature = 'S' WHERE id = 1",
];

#[test]
fn both_stores_refuse_the_same_statements() {
    let Some((postgres, _dir, sqlite)) = both("both_stores_refuse_the_same_statements") else {
        return;
    };
    for sql in SETUP {
        sqlite
            .execute(sql, [])
            .unwrap_or_else(|err| panic!("SQLite refused the setup {sql}: {err}"));
        let done = postgres.psql("ledger", sql);
        assert!(
            done.ok,
            "PostgreSQL refused the setup {sql}: {}",
            done.stderr
        );
    }
    for (sql, [sqlite_words, postgres_words]) in REFUSED {
        let in_sqlite = sqlite.execute(sql, []);
        let Err(err) = in_sqlite else {
            panic!("SQLite took {sql}");
        };
        assert!(
            err.to_string().contains(sqlite_words),
            "SQLite on {sql}: {err}"
        );
        let in_postgres = postgres.psql("ledger", sql);
        assert!(!in_postgres.ok, "PostgreSQL took {sql}");
        assert!(
            in_postgres.stderr.contains(postgres_words),
            "PostgreSQL on {sql}: {}",
            in_postgres.stderr
        );
    }
    for sql in ACCEPTED {
        sqlite
            .execute(sql, [])
            .unwrap_or_else(|err| panic!("SQLite refused {sql}: {err}"));
        let done = postgres.psql("ledger", sql);
        assert!(done.ok, "PostgreSQL refused {sql}: {}", done.stderr);
    }
    // A transfer signature pays one payout.
    let reused =
        "UPDATE payouts SET state = 'paid', paid_at = 't', signature = 'S' WHERE wallet = 'w3'";
    let in_sqlite = sqlite.execute(reused, []);
    assert!(
        in_sqlite.as_ref().is_err_and(|err| err
            .to_string()
            .contains("UNIQUE constraint failed: payouts.signature")),
        "SQLite on {reused}: {in_sqlite:?}"
    );
    let in_postgres = postgres.psql("ledger", reused);
    assert!(
        !in_postgres.ok && in_postgres.stderr.contains("payouts_one_per_signature"),
        "PostgreSQL on {reused}: {}",
        in_postgres.stderr
    );
    // History is never truncated (PostgreSQL only: SQLite has no TRUNCATE, and its DELETE is
    // refused above).
    for table in ["overrides", "payouts", "payout_items", "settings"] {
        let truncated = postgres.psql("ledger", &format!("TRUNCATE {table} CASCADE"));
        assert!(
            !truncated.ok && truncated.stderr.contains("is never truncated"),
            "TRUNCATE {table}: {}",
            truncated.stderr
        );
    }
    // Ids are the store's own: an explicit one is refused (it would collide with the sequence).
    let explicit = postgres.psql(
        "ledger",
        "INSERT INTO payouts (id, wallet, state, amount_lamports, created_at) VALUES (9, 'w9', 'pending', 0, 't')",
    );
    assert!(!explicit.ok, "PostgreSQL took an explicit payout id");

    // The derived totals agree, to the exact SOL text.
    let query = "SELECT wallet_address, valid_segments, total_frames, payout_lamports, pending_lamports, \
                 approved_lamports, paid_lamports, payout_sol FROM wallet_totals ORDER BY wallet_address";
    let mut statement = sqlite.prepare(query).expect("prepare");
    let from_sqlite: Vec<String> = statement
        .query_map([], |row| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{}|{}|{}",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, String>(7)?
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let from_postgres = postgres.psql("ledger", query);
    assert!(from_postgres.ok, "{}", from_postgres.stderr);
    let from_postgres: Vec<String> = from_postgres.stdout.lines().map(str::to_owned).collect();
    // w1: two valid segments (one passed by a reviewer), 31 frames, paid 5; w2: -1.5 SOL pending;
    // w3: 9 approved.
    assert_eq!(
        from_sqlite,
        [
            "w1|2|31|5|0|0|5|0.000000005",
            "w2|0|0|-1500000000|-1500000000|0|0|-1.500000000",
            "w3|0|0|9|0|9|0|0.000000009",
        ],
    );
    assert_eq!(from_sqlite, from_postgres);
}
