-- The payout ledger, version 3: the server worker's intake. See docs/LEDGER.md ("Worker intake and
-- leases").
--
-- S3 events reach the workers through SQS at least once, in any order, possibly to two workers at
-- the same time. One row per session the workers have seen keeps what must survive a worker's
-- restart: when the session was first seen (the timeout for missing parts counts from it), who is
-- processing it under which lease, what the last completed processing was made from (a fingerprint
-- of the parts' keys and ETags: unchanged parts are not processed twice), and the system errors
-- since the last success (poison sessions, with the reason, for an operator).
--
-- Times are INTEGER epoch milliseconds passed in by the worker (the ledger never reads the clock).

CREATE TABLE intake (
    wallet            TEXT    NOT NULL CHECK (length(wallet) > 0),
    session_id        TEXT    NOT NULL CHECK (length(session_id) > 0),
    -- Set when the row is created, never moved.
    first_seen_ms     INTEGER NOT NULL CHECK (typeof(first_seen_ms) = 'integer'),
    -- waiting: seen, not being processed (parts missing, or given back); processing: leased;
    -- done / rejected: the last processing recorded the session accepted / rejected;
    -- failed: the last attempt hit a system error (retried by redelivery, or in the DLQ).
    state             TEXT    NOT NULL
                              CHECK (state IN ('waiting', 'processing', 'done', 'rejected', 'failed')),
    -- The worker's fingerprint of the parts of the last completed processing (NULL: none yet).
    parts_fingerprint TEXT,
    -- The lease: who holds it and until when. `lease_token` is the fencing token: it goes up by
    -- one on every acquire and is never reset, so a worker whose lease was taken over cannot write.
    lease_holder      TEXT    CHECK (lease_holder IS NULL OR length(lease_holder) > 0),
    lease_token       INTEGER NOT NULL DEFAULT 0
                              CHECK (typeof(lease_token) = 'integer' AND lease_token >= 0),
    lease_expires_ms  INTEGER CHECK (lease_expires_ms IS NULL OR typeof(lease_expires_ms) = 'integer'),
    -- System errors since the last success, and the latest one's text.
    failures          INTEGER NOT NULL DEFAULT 0
                              CHECK (typeof(failures) = 'integer' AND failures >= 0),
    last_error        TEXT,
    updated_ms        INTEGER NOT NULL CHECK (typeof(updated_ms) = 'integer'),
    PRIMARY KEY (wallet, session_id),
    -- Processing means leased, and a lease has both a holder and an expiry.
    CHECK ((state = 'processing') = (lease_holder IS NOT NULL)),
    CHECK ((lease_holder IS NULL) = (lease_expires_ms IS NULL))
) WITHOUT ROWID;

-- `status` counts sessions by state; the worker's sweep looks for sessions waiting since before a
-- cutoff.
CREATE INDEX intake_by_state ON intake (state, first_seen_ms);
