-- The ledger on PostgreSQL, version 2: SQLite's version 5 (ledger/migrations/0005_fingerprints.sql
-- says what the tables are for).

CREATE TABLE segment_fingerprints (
    segment_row BIGINT PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    frames      BIGINT NOT NULL CHECK (frames >= 0),
    fingerprint BYTEA  NOT NULL
);

CREATE TABLE fingerprint_keys (
    key         BIGINT NOT NULL,
    segment_row BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    PRIMARY KEY (key, segment_row)
);

CREATE INDEX fingerprint_keys_by_segment ON fingerprint_keys (segment_row);
