-- The payout ledger, version 1. See docs/LEDGER.md.
--
-- Money is INTEGER lamports in every column (CHECK typeof = 'integer'); SOL exists only as text
-- produced by the views with integer arithmetic. Segments are identified across reprocessing by
-- their natural key (wallet, session_id, segment): overrides and payout items use it, never a
-- row id, so replacing a session's rows cannot orphan them.

-- One row per (wallet, session_id): the latest record a pipeline run gave for the session.
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    wallet           TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_code      TEXT,
    reject_message   TEXT,
    frames           INTEGER NOT NULL CHECK (typeof(frames) = 'integer' AND frames >= 0),
    clock_confidence REAL,
    session_json     TEXT    NOT NULL,
    processed_at     TEXT    NOT NULL,
    run_id           TEXT    NOT NULL,
    times_processed  INTEGER NOT NULL DEFAULT 1
                             CHECK (typeof(times_processed) = 'integer' AND times_processed >= 1),
    UNIQUE (wallet, session_id),
    CHECK (status = 'rejected' OR (reject_code IS NULL AND reject_message IS NULL))
);

CREATE INDEX sessions_by_session_id ON sessions (session_id);

-- The current segments of each session, as CLEAN scored them. Replaced whole on reprocessing.
CREATE TABLE segments (
    id            INTEGER PRIMARY KEY,
    session_row   INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    segment       INTEGER NOT NULL CHECK (typeof(segment) = 'integer' AND segment >= 1),
    first_frame   INTEGER NOT NULL CHECK (typeof(first_frame) = 'integer' AND first_frame >= 0),
    last_frame    INTEGER NOT NULL CHECK (typeof(last_frame) = 'integer' AND last_frame >= first_frame),
    frames        INTEGER NOT NULL CHECK (typeof(frames) = 'integer' AND frames >= 0),
    start_pts_ms  REAL    NOT NULL,
    end_pts_ms    REAL    NOT NULL,
    -- CLEAN's verdict, before any reviewer override.
    passed        INTEGER NOT NULL CHECK (passed IN (0, 1)),
    -- The failing checks' snake_case names, comma-separated, in check order ('' when none).
    failed_checks TEXT    NOT NULL,
    UNIQUE (session_row, segment)
);

-- Every check of every segment.
CREATE TABLE checks (
    id          INTEGER PRIMARY KEY,
    segment_row INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (typeof(position) = 'integer' AND position >= 0),
    check_name  TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    value       REAL,   -- NULL when the value was NaN
    threshold   REAL,   -- NULL when NaN
    bound       TEXT    NOT NULL CHECK (bound IN ('at_most', 'at_least')),
    passed      INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reason      TEXT    NOT NULL,
    UNIQUE (segment_row, position)
);

-- Reviewer overrides: append-only history. An override applies to the current segment only when
-- the natural key AND the frame range match; the latest (highest id) applicable one wins.
CREATE TABLE overrides (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet        TEXT    NOT NULL,
    session_id    TEXT    NOT NULL,
    segment       INTEGER NOT NULL CHECK (typeof(segment) = 'integer' AND segment >= 1),
    first_frame   INTEGER NOT NULL CHECK (typeof(first_frame) = 'integer'),
    last_frame    INTEGER NOT NULL CHECK (typeof(last_frame) = 'integer'),
    from_verdict  TEXT    NOT NULL CHECK (from_verdict IN ('pass', 'fail')),
    to_verdict    TEXT    NOT NULL CHECK (to_verdict IN ('pass', 'fail')),
    reason        TEXT    NOT NULL CHECK (length(trim(reason)) > 0),
    overridden_by TEXT    NOT NULL CHECK (length(trim(overridden_by)) > 0),
    overridden_at TEXT    NOT NULL
);

CREATE INDEX overrides_by_cut
    ON overrides (wallet, session_id, segment, first_frame, last_frame, id);

CREATE TRIGGER overrides_never_updated
BEFORE UPDATE ON overrides
BEGIN
    SELECT RAISE(ABORT, 'overrides are append-only history: record a new override instead');
END;

CREATE TRIGGER overrides_never_deleted
BEFORE DELETE ON overrides
BEGIN
    SELECT RAISE(ABORT, 'overrides are append-only history: record a new override instead');
END;

-- Effective verdicts: the current segments of accepted sessions, CLEAN's verdict, the applicable
-- override (if any) and the verdict that counts.
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

-- Payouts: pending (recomputed on every change of the wallet's contribution) -> approved (frozen)
-- -> paid (with the transfer signature).
CREATE TABLE payouts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet          TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'paid')),
    amount_lamports INTEGER NOT NULL CHECK (typeof(amount_lamports) = 'integer'),
    created_at      TEXT    NOT NULL,
    approved_at     TEXT,
    approved_by     TEXT,
    paid_at         TEXT,
    signature       TEXT,
    UNIQUE (id, wallet),
    CHECK ((state = 'pending') = (approved_at IS NULL)),
    CHECK ((state = 'pending') = (approved_by IS NULL)),
    CHECK ((state = 'paid') = (paid_at IS NOT NULL)),
    CHECK ((state = 'paid') = (signature IS NOT NULL)),
    -- Only a positive amount is ever signed off: a payout that nets zero or less stays pending.
    CHECK (state = 'pending' OR amount_lamports > 0)
);

CREATE UNIQUE INDEX payouts_one_pending_per_wallet ON payouts (wallet) WHERE state = 'pending';

-- AUTOINCREMENT: an id, once shown to a person, never names another row.
CREATE TABLE payout_items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payout_id       INTEGER NOT NULL,
    wallet          TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    segment         INTEGER NOT NULL CHECK (typeof(segment) = 'integer' AND segment >= 1),
    frames          INTEGER NOT NULL CHECK (typeof(frames) = 'integer' AND frames >= 0),
    amount_lamports INTEGER NOT NULL
                            CHECK (typeof(amount_lamports) = 'integer' AND amount_lamports <> 0),
    kind            TEXT    NOT NULL CHECK (kind IN ('earning', 'adjustment')),
    note            TEXT    NOT NULL,
    -- The item's wallet is its payout's wallet.
    FOREIGN KEY (payout_id, wallet) REFERENCES payouts (id, wallet) ON DELETE CASCADE,
    UNIQUE (payout_id, session_id, segment)
);

CREATE INDEX payout_items_by_key ON payout_items (wallet, session_id, segment);

CREATE TRIGGER payouts_start_pending
BEFORE INSERT ON payouts
WHEN NEW.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'a payout starts pending');
END;

CREATE TRIGGER payouts_pending_only_becomes_approved
BEFORE UPDATE ON payouts
WHEN OLD.state = 'pending'
 AND (NEW.state NOT IN ('pending', 'approved') OR NEW.id IS NOT OLD.id OR NEW.wallet IS NOT OLD.wallet)
BEGIN
    SELECT RAISE(ABORT, 'a pending payout can only become approved, keeping its id and wallet');
END;

CREATE TRIGGER payouts_approved_amount_is_items_sum
BEFORE UPDATE ON payouts
WHEN OLD.state = 'pending' AND NEW.state = 'approved'
 AND NEW.amount_lamports IS NOT (
     SELECT coalesce(sum(i.amount_lamports), 0) FROM payout_items AS i WHERE i.payout_id = OLD.id
 )
BEGIN
    SELECT RAISE(ABORT, 'a payout is approved only when amount_lamports is the sum of its items');
END;

CREATE TRIGGER payouts_frozen_once_approved
BEFORE UPDATE ON payouts
WHEN OLD.state IN ('approved', 'paid')
 AND NOT (
         OLD.state = 'approved' AND NEW.state = 'paid'
     AND NEW.id IS OLD.id
     AND NEW.wallet IS OLD.wallet
     AND NEW.amount_lamports IS OLD.amount_lamports
     AND NEW.created_at IS OLD.created_at
     AND NEW.approved_at IS OLD.approved_at
     AND NEW.approved_by IS OLD.approved_by
     AND NEW.paid_at IS NOT NULL
     AND NEW.signature IS NOT NULL
 )
BEGIN
    SELECT RAISE(ABORT, 'an approved or paid payout never changes, except approved -> paid with paid_at and signature');
END;

CREATE TRIGGER payouts_approved_never_deleted
BEFORE DELETE ON payouts
WHEN OLD.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'an approved or paid payout is never deleted');
END;

CREATE TRIGGER payout_items_insert_only_into_pending
BEFORE INSERT ON payout_items
WHEN (SELECT p.state FROM payouts AS p WHERE p.id = NEW.payout_id) IS NOT 'pending'
BEGIN
    SELECT RAISE(ABORT, 'items are added only to a pending payout');
END;

CREATE TRIGGER payout_items_update_only_in_pending
BEFORE UPDATE ON payout_items
WHEN (SELECT p.state FROM payouts AS p WHERE p.id = OLD.payout_id) IS NOT 'pending'
  OR (SELECT p.state FROM payouts AS p WHERE p.id = NEW.payout_id) IS NOT 'pending'
BEGIN
    SELECT RAISE(ABORT, 'items of an approved or paid payout never change');
END;

CREATE TRIGGER payout_items_delete_only_from_pending
BEFORE DELETE ON payout_items
WHEN (SELECT p.state FROM payouts AS p WHERE p.id = OLD.payout_id) IN ('approved', 'paid')
BEGIN
    SELECT RAISE(ABORT, 'items of an approved or paid payout are never deleted');
END;

-- The SPEC's per-wallet view, derived, never stored: every wallet with an accepted session or a
-- payout. payout_lamports is the net earned (items of every state); payout_sol is its exact text.
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
    SELECT
        w.wallet                            AS wallet_address,
        coalesce(v.valid_segments, 0)       AS valid_segments,
        coalesce(v.total_frames, 0)         AS total_frames,
        coalesce(m.payout_lamports, 0)      AS payout_lamports,
        coalesce(m.pending_lamports, 0)     AS pending_lamports,
        coalesce(m.approved_lamports, 0)    AS approved_lamports,
        coalesce(m.paid_lamports, 0)        AS paid_lamports
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
    -- Exact SOL text: integer division and remainder truncate toward zero, so the sign is taken
    -- apart and both parts are printed as magnitudes (abs never sees i64::MIN).
    printf('%s%d.%09d',
           CASE WHEN payout_lamports < 0 THEN '-' ELSE '' END,
           abs(payout_lamports / 1000000000),
           abs(payout_lamports % 1000000000)) AS payout_sol
FROM totals;
