-- The payout ledger on PostgreSQL: the schema of the SQLite ledger at version 4
-- (ledger/migrations/0001-0004), in one step, since no PostgreSQL ledger predates it. See
-- docs/LEDGER.md for what each table, view and trigger is for; the comments here say only where
-- PostgreSQL differs. `ledger/tests/postgres_schema.rs` checks that both stores have the same
-- tables, columns, views and refusals.
--
-- Every integer is BIGINT (the Rust side reads i64 from both stores); flags are BIGINT 0/1 as in
-- SQLite. SQLite's `typeof(x) = 'integer'` checks have no counterpart: the column type refuses
-- anything else. Row ids are identities the database always picks (an explicit id is refused,
-- so nothing can collide with the sequence); unlike SQLite's, a rolled-back or retried insert
-- leaves a gap in them.
--
-- Text compares and sorts byte by byte (COLLATE "C"), as in SQLite, whatever the database's locale:
-- listings come in the same order from both stores.
--
-- SQLite has one writer at a time; PostgreSQL does not. A guard that reads another row (an item's
-- payout) locks it (FOR SHARE), so that the check and a concurrent change of that row cannot both
-- commit at any isolation level. TRUNCATE skips row triggers: it is refused on every table whose
-- rows are history.

CREATE TABLE sessions (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet           TEXT COLLATE "C"    NOT NULL,
    session_id       TEXT COLLATE "C"    NOT NULL,
    source           TEXT COLLATE "C"    NOT NULL,
    status           TEXT COLLATE "C"    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_code      TEXT COLLATE "C",
    reject_message   TEXT COLLATE "C",
    frames           BIGINT  NOT NULL CHECK (frames >= 0),
    clock_confidence DOUBLE PRECISION,
    session_json     TEXT COLLATE "C"    NOT NULL,
    processed_at     TEXT COLLATE "C"    NOT NULL,
    run_id           TEXT COLLATE "C"    NOT NULL,
    times_processed  BIGINT  NOT NULL DEFAULT 1 CHECK (times_processed >= 1),
    UNIQUE (wallet, session_id),
    CHECK (status = 'rejected' OR (reject_code IS NULL AND reject_message IS NULL))
);

CREATE INDEX sessions_by_session_id ON sessions (session_id);

CREATE TABLE segments (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_row   BIGINT  NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    segment       BIGINT  NOT NULL CHECK (segment >= 1),
    first_frame   BIGINT  NOT NULL CHECK (first_frame >= 0),
    last_frame    BIGINT  NOT NULL CHECK (last_frame >= first_frame),
    frames        BIGINT  NOT NULL CHECK (frames >= 0),
    start_pts_ms  DOUBLE PRECISION NOT NULL,
    end_pts_ms    DOUBLE PRECISION NOT NULL,
    passed        BIGINT  NOT NULL CHECK (passed IN (0, 1)),
    failed_checks TEXT COLLATE "C"    NOT NULL,
    UNIQUE (session_row, segment)
);

CREATE TABLE checks (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    segment_row BIGINT  NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    position    BIGINT  NOT NULL CHECK (position >= 0),
    check_name  TEXT COLLATE "C"    NOT NULL,
    metric      TEXT COLLATE "C"    NOT NULL,
    value       DOUBLE PRECISION,
    threshold   DOUBLE PRECISION,
    bound       TEXT COLLATE "C"    NOT NULL CHECK (bound IN ('at_most', 'at_least')),
    passed      BIGINT  NOT NULL CHECK (passed IN (0, 1)),
    reason      TEXT COLLATE "C"    NOT NULL,
    UNIQUE (segment_row, position)
);

CREATE TABLE overrides (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet        TEXT COLLATE "C"    NOT NULL,
    session_id    TEXT COLLATE "C"    NOT NULL,
    segment       BIGINT  NOT NULL CHECK (segment >= 1),
    first_frame   BIGINT  NOT NULL,
    last_frame    BIGINT  NOT NULL,
    from_verdict  TEXT COLLATE "C"    NOT NULL CHECK (from_verdict IN ('pass', 'fail')),
    to_verdict    TEXT COLLATE "C"    NOT NULL CHECK (to_verdict IN ('pass', 'fail')),
    reason        TEXT COLLATE "C"    NOT NULL CHECK (length(trim(reason)) > 0),
    overridden_by TEXT COLLATE "C"    NOT NULL CHECK (length(trim(overridden_by)) > 0),
    overridden_at TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX overrides_by_cut
    ON overrides (wallet, session_id, segment, first_frame, last_frame, id);

-- A trigger raises through a function in PostgreSQL; each refusal keeps SQLite's message.
CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER overrides_never_updated
BEFORE UPDATE ON overrides
FOR EACH ROW EXECUTE FUNCTION
    ledger_refuse('overrides are append-only history: record a new override instead');

CREATE TRIGGER overrides_never_deleted
BEFORE DELETE ON overrides
FOR EACH ROW EXECUTE FUNCTION
    ledger_refuse('overrides are append-only history: record a new override instead');

CREATE VIEW segment_verdicts AS
SELECT
    s.wallet,
    s.session_id,
    g.segment,
    g.first_frame,
    g.last_frame,
    g.frames,
    g.start_pts_ms,
    g.end_pts_ms,
    g.passed        AS clean_passed,
    g.failed_checks,
    o.id            AS override_id,
    o.from_verdict  AS override_from,
    o.to_verdict    AS override_to,
    o.reason        AS override_reason,
    o.overridden_by AS override_by,
    o.overridden_at AS override_at,
    coalesce(o.to_verdict, CASE WHEN g.passed = 1 THEN 'pass' ELSE 'fail' END) AS verdict
FROM segments AS g
JOIN sessions AS s ON s.id = g.session_row
LEFT JOIN overrides AS o ON o.id = (
    SELECT max(x.id)
    FROM overrides AS x
    WHERE x.wallet = s.wallet
      AND x.session_id = s.session_id
      AND x.segment = g.segment
      AND x.first_frame = g.first_frame
      AND x.last_frame = g.last_frame
)
WHERE s.status = 'accepted';

CREATE TABLE payouts (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet          TEXT COLLATE "C"    NOT NULL,
    state           TEXT COLLATE "C"    NOT NULL CHECK (state IN ('pending', 'approved', 'paid')),
    amount_lamports BIGINT  NOT NULL,
    created_at      TEXT COLLATE "C"    NOT NULL,
    approved_at     TEXT COLLATE "C",
    approved_by     TEXT COLLATE "C",
    paid_at         TEXT COLLATE "C",
    signature       TEXT COLLATE "C",
    UNIQUE (id, wallet),
    CHECK ((state = 'pending') = (approved_at IS NULL)),
    CHECK ((state = 'pending') = (approved_by IS NULL)),
    CHECK ((state = 'paid') = (paid_at IS NOT NULL)),
    CHECK ((state = 'paid') = (signature IS NOT NULL)),
    CHECK (state = 'pending' OR amount_lamports > 0)
);

CREATE UNIQUE INDEX payouts_one_pending_per_wallet ON payouts (wallet) WHERE state = 'pending';
CREATE UNIQUE INDEX payouts_one_per_signature ON payouts (signature) WHERE signature IS NOT NULL;
-- A wallet's payouts, as the refresh of its pending one reads them: an index scan locks only what it
-- reads, where a sequential scan would make every concurrent write look like a conflict to
-- SERIALIZABLE (SQLite has one writer at a time and no need of it).
CREATE INDEX payouts_by_wallet ON payouts (wallet, state);

CREATE TABLE payout_items (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payout_id       BIGINT  NOT NULL,
    wallet          TEXT COLLATE "C"    NOT NULL,
    session_id      TEXT COLLATE "C"    NOT NULL,
    segment         BIGINT  NOT NULL CHECK (segment >= 1),
    frames          BIGINT  NOT NULL CHECK (frames >= 0),
    amount_lamports BIGINT  NOT NULL CHECK (amount_lamports <> 0),
    kind            TEXT COLLATE "C"    NOT NULL CHECK (kind IN ('earning', 'adjustment')),
    note            TEXT COLLATE "C"    NOT NULL,
    FOREIGN KEY (payout_id, wallet) REFERENCES payouts (id, wallet) ON DELETE CASCADE,
    UNIQUE (payout_id, session_id, segment)
);

CREATE INDEX payout_items_by_key ON payout_items (wallet, session_id, segment);

-- SQLite's payout triggers, one function each (a WHEN clause cannot hold a subquery here).
CREATE FUNCTION payouts_guard_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'pending' THEN
        RAISE EXCEPTION 'a payout starts pending' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER payouts_start_pending
BEFORE INSERT ON payouts
FOR EACH ROW EXECUTE FUNCTION payouts_guard_insert();

CREATE FUNCTION payouts_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'pending' THEN
        IF NEW.state NOT IN ('pending', 'approved')
           OR NEW.id IS DISTINCT FROM OLD.id
           OR NEW.wallet IS DISTINCT FROM OLD.wallet THEN
            RAISE EXCEPTION 'a pending payout can only become approved, keeping its id and wallet'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF NEW.state = 'approved' AND NEW.amount_lamports IS DISTINCT FROM (
               SELECT coalesce(sum(i.amount_lamports), 0)
               FROM payout_items AS i WHERE i.payout_id = OLD.id) THEN
            RAISE EXCEPTION 'a payout is approved only when amount_lamports is the sum of its items'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSIF NOT (
            OLD.state = 'approved' AND NEW.state = 'paid'
        AND NEW.id IS NOT DISTINCT FROM OLD.id
        AND NEW.wallet IS NOT DISTINCT FROM OLD.wallet
        AND NEW.amount_lamports IS NOT DISTINCT FROM OLD.amount_lamports
        AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at
        AND NEW.approved_at IS NOT DISTINCT FROM OLD.approved_at
        AND NEW.approved_by IS NOT DISTINCT FROM OLD.approved_by
        AND NEW.paid_at IS NOT NULL
        AND NEW.signature IS NOT NULL) THEN
        RAISE EXCEPTION 'an approved or paid payout never changes, except approved -> paid with paid_at and signature'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER payouts_guard_update
BEFORE UPDATE ON payouts
FOR EACH ROW EXECUTE FUNCTION payouts_guard_update();

CREATE FUNCTION payouts_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'an approved or paid payout is never deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER payouts_approved_never_deleted
BEFORE DELETE ON payouts
FOR EACH ROW EXECUTE FUNCTION payouts_guard_delete();

CREATE FUNCTION payout_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF (SELECT p.state FROM payouts AS p WHERE p.id = NEW.payout_id FOR SHARE) IS DISTINCT FROM 'pending' THEN
            RAISE EXCEPTION 'items are added only to a pending payout'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF (SELECT p.state FROM payouts AS p WHERE p.id = OLD.payout_id FOR SHARE) IS DISTINCT FROM 'pending'
           OR (SELECT p.state FROM payouts AS p WHERE p.id = NEW.payout_id FOR SHARE) IS DISTINCT FROM 'pending' THEN
            RAISE EXCEPTION 'items of an approved or paid payout never change'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    ELSE
        IF (SELECT p.state FROM payouts AS p WHERE p.id = OLD.payout_id FOR SHARE) IN ('approved', 'paid') THEN
            RAISE EXCEPTION 'items of an approved or paid payout are never deleted'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
END;
$$;

CREATE TRIGGER payout_items_guard
BEFORE INSERT OR UPDATE OR DELETE ON payout_items
FOR EACH ROW EXECUTE FUNCTION payout_items_guard();

CREATE VIEW wallet_totals AS
WITH
wallets AS (
    SELECT wallet FROM sessions WHERE status = 'accepted'
    UNION
    SELECT wallet FROM payouts
),
valid AS (
    SELECT wallet, count(*) AS valid_segments, sum(frames) AS total_frames
    FROM segment_verdicts
    WHERE verdict = 'pass'
    GROUP BY wallet
),
money AS (
    SELECT
        p.wallet,
        sum(i.amount_lamports) AS payout_lamports,
        sum(CASE WHEN p.state = 'pending' THEN i.amount_lamports ELSE 0 END) AS pending_lamports,
        sum(CASE WHEN p.state = 'approved' THEN i.amount_lamports ELSE 0 END) AS approved_lamports,
        sum(CASE WHEN p.state = 'paid' THEN i.amount_lamports ELSE 0 END) AS paid_lamports
    FROM payout_items AS i
    JOIN payouts AS p ON p.id = i.payout_id
    GROUP BY p.wallet
),
totals AS (
    -- sum() of BIGINT is NUMERIC in PostgreSQL: cast back, as SQLite's integers are.
    SELECT
        w.wallet                                    AS wallet_address,
        coalesce(v.valid_segments, 0)::BIGINT       AS valid_segments,
        coalesce(v.total_frames, 0)::BIGINT         AS total_frames,
        coalesce(m.payout_lamports, 0)::BIGINT      AS payout_lamports,
        coalesce(m.pending_lamports, 0)::BIGINT     AS pending_lamports,
        coalesce(m.approved_lamports, 0)::BIGINT    AS approved_lamports,
        coalesce(m.paid_lamports, 0)::BIGINT        AS paid_lamports
    FROM wallets AS w
    LEFT JOIN valid AS v ON v.wallet = w.wallet
    LEFT JOIN money AS m ON m.wallet = w.wallet
)
SELECT
    wallet_address,
    valid_segments,
    total_frames,
    payout_lamports,
    pending_lamports,
    approved_lamports,
    paid_lamports,
    -- Exact SOL text, as SQLite's printf('%s%d.%09d', ...).
    (CASE WHEN payout_lamports < 0 THEN '-' ELSE '' END)
        || abs(payout_lamports / 1000000000)::TEXT
        || '.'
        || lpad(abs(payout_lamports % 1000000000)::TEXT, 9, '0') AS payout_sol
FROM totals;

CREATE TABLE settings (
    id                   BIGINT  PRIMARY KEY CHECK (id = 1),
    lamports_per_segment BIGINT  NOT NULL CHECK (lamports_per_segment > 0),
    rate_set_at          TEXT COLLATE "C"    NOT NULL CHECK (length(trim(rate_set_at)) > 0)
);

CREATE TRIGGER settings_never_deleted
BEFORE DELETE ON settings
FOR EACH ROW EXECUTE FUNCTION
    ledger_refuse('the ledger rate is never deleted: change it with set_rate');

CREATE TABLE intake (
    wallet            TEXT COLLATE "C"    NOT NULL CHECK (length(wallet) > 0),
    session_id        TEXT COLLATE "C"    NOT NULL CHECK (length(session_id) > 0),
    first_seen_ms     BIGINT  NOT NULL,
    state             TEXT COLLATE "C"    NOT NULL
                              CHECK (state IN ('waiting', 'processing', 'done', 'rejected', 'failed')),
    parts_fingerprint TEXT COLLATE "C",
    lease_holder      TEXT COLLATE "C"    CHECK (lease_holder IS NULL OR length(lease_holder) > 0),
    lease_token       BIGINT  NOT NULL DEFAULT 0 CHECK (lease_token >= 0),
    lease_expires_ms  BIGINT,
    failures          BIGINT  NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error        TEXT COLLATE "C",
    updated_ms        BIGINT  NOT NULL,
    PRIMARY KEY (wallet, session_id),
    CHECK ((state = 'processing') = (lease_holder IS NOT NULL)),
    CHECK ((lease_holder IS NULL) = (lease_expires_ms IS NULL))
);

CREATE INDEX intake_by_state ON intake (state, first_seen_ms);

CREATE TABLE upload_nonces (
    wallet        TEXT COLLATE "C"    NOT NULL CHECK (length(wallet) > 0),
    nonce         TEXT COLLATE "C"    NOT NULL CHECK (length(nonce) BETWEEN 16 AND 64),
    keep_until_ms BIGINT  NOT NULL,
    PRIMARY KEY (wallet, nonce)
);

CREATE INDEX upload_nonces_by_expiry ON upload_nonces (keep_until_ms);

CREATE FUNCTION ledger_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is history: it is never truncated', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER overrides_never_truncated BEFORE TRUNCATE ON overrides
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER payouts_never_truncated BEFORE TRUNCATE ON payouts
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER payout_items_never_truncated BEFORE TRUNCATE ON payout_items
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER settings_never_truncated BEFORE TRUNCATE ON settings
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
