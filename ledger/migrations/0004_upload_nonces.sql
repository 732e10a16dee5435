-- The payout ledger, version 4: the upload API's nonces (SPEC section 9). See docs/LEDGER.md
-- ("Upload nonces").
--
-- Every upload request carries a nonce signed with the wallet's key; a (wallet, nonce) pair is
-- accepted once. A pair is kept until a request carrying it would be refused as stale anyway
-- (its `issuedAt` plus the allowed clock skew), then forgotten: a restarted API refuses a replay
-- as the running one does, and the table stays as small as the last few minutes' requests.
--
-- Times are INTEGER epoch milliseconds passed in by the API (the ledger never reads the clock).

CREATE TABLE upload_nonces (
    wallet        TEXT    NOT NULL CHECK (length(wallet) > 0),
    nonce         TEXT    NOT NULL CHECK (length(nonce) BETWEEN 16 AND 64),
    keep_until_ms INTEGER NOT NULL CHECK (typeof(keep_until_ms) = 'integer'),
    PRIMARY KEY (wallet, nonce)
) WITHOUT ROWID;

CREATE INDEX upload_nonces_by_expiry ON upload_nonces (keep_until_ms);
