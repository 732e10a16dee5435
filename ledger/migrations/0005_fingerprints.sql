-- The payout ledger, version 5: every segment's perceptual fingerprint and the index that finds
-- earlier segments showing the same drive (docs/LEDGER.md, "Duplicate drives").
--
-- `segment_fingerprints` holds a segment's frames (time and 64-bit hash, the format of
-- `sd_core::SegmentFingerprint::to_bytes`); `fingerprint_keys` its anchor frames' 16-bit bands,
-- one row per (key, segment): a new segment looks its frames' keys up here, never scanning the
-- fingerprints. Both go with their segment (ON DELETE CASCADE): a session recorded again replaces
-- them with its segments.

CREATE TABLE segment_fingerprints (
    segment_row INTEGER PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    frames      INTEGER NOT NULL CHECK (frames >= 0),
    fingerprint BLOB    NOT NULL
);

CREATE TABLE fingerprint_keys (
    key         INTEGER NOT NULL CHECK (typeof(key) = 'integer'),
    segment_row INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    PRIMARY KEY (key, segment_row)
) WITHOUT ROWID;

-- For the cascade: a segment's keys found without scanning the index.
CREATE INDEX fingerprint_keys_by_segment ON fingerprint_keys (segment_row);
