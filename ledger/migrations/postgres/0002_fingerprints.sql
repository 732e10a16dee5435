-- The ledger on PostgreSQL, version 2: SQLite's version 5 (ledger/migrations/0005_fingerprints.sql
-- says what the tables are for).

CREATE TABLE segment_fingerprints (
    segment_row BIGINT PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    content_seq BIGINT NOT NULL CHECK (content_seq > 0),
    frames      BIGINT NOT NULL CHECK (frames >= 0),
    fingerprint BYTEA  NOT NULL
);

CREATE TABLE fingerprint_keys (
    key         BIGINT NOT NULL,
    segment_row BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    session_row BIGINT NOT NULL,
    content_seq BIGINT NOT NULL,
    PRIMARY KEY (key, segment_row)
);

CREATE INDEX fingerprint_keys_by_segment ON fingerprint_keys (segment_row);

CREATE TABLE fingerprint_sequence (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL CHECK (last >= 0)
);
INSERT INTO fingerprint_sequence (id, last) VALUES (1, 0);
