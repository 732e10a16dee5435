-- The payout ledger, version 2. See docs/LEDGER.md ("The rate", "States").
--
-- 1. The per-segment rate lives in the ledger, not in whatever config a command was given: a
--    refresh prices every pending earning at the ledger's rate, a call that brings another rate is
--    refused, and only `Ledger::set_rate` changes it (re-pricing pending earnings only).
-- 2. One transfer signature records the payment of one payout only.

-- At most one row (id = 1): no row means no rate yet, and the first call that passes one sets it.
CREATE TABLE settings (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    lamports_per_segment INTEGER NOT NULL
                         CHECK (typeof(lamports_per_segment) = 'integer' AND lamports_per_segment > 0),
    -- When the rate was set (first use, set_rate, or this migration).
    rate_set_at          TEXT    NOT NULL CHECK (length(trim(rate_set_at)) > 0)
);

-- Deleting the row would let the next command's config set the rate again: change it, never drop it.
CREATE TRIGGER settings_never_deleted
BEFORE DELETE ON settings
BEGIN
    SELECT RAISE(ABORT, 'the ledger rate is never deleted: change it with set_rate');
END;

-- A ledger of version 1 already prices its pending payouts: every pending earning holds the rate of
-- the last refresh of its wallet. When they all agree, that is the ledger's rate; when there are
-- none, or they disagree (commands ran with different configs), the first call sets it.
INSERT INTO settings (id, lamports_per_segment, rate_set_at)
SELECT 1, rate, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM (
    SELECT min(i.amount_lamports) AS rate, count(DISTINCT i.amount_lamports) AS rates
    FROM payout_items AS i
    JOIN payouts AS p ON p.id = i.payout_id
    WHERE p.state = 'pending' AND i.kind = 'earning'
)
WHERE rates = 1 AND rate > 0;

-- A transaction signature pays one payout. (`Ledger::open` checks a version-1 ledger for a shared
-- signature first and says which payouts carry it, instead of failing here.)
CREATE UNIQUE INDEX payouts_one_per_signature ON payouts (signature) WHERE signature IS NOT NULL;
