-- The payout ledger, version 5: every segment's perceptual fingerprint and the index that finds
-- earlier segments showing the same drive (docs/LEDGER.md, "Duplicate drives").
--
-- `segment_fingerprints` holds a segment's frames (time and 64-bit hash, the format of
-- `sd_core::SegmentFingerprint::to_bytes`) and its `content_seq`: when the drive it shows was
-- first recorded (from `fingerprint_sequence`; a session recorded again keeps it for a segment
-- that still shows the drive its earlier record did, so that a reprocess never comes after its
-- own copies). `fingerprint_keys` holds its anchor frames' 16-bit bands, one row per
-- (key, segment), with the segment's session and sequence: a new segment looks its frames' keys
-- up here, never scanning the fingerprints. Both go with their segment (ON DELETE CASCADE).

CREATE TABLE segment_fingerprints (
    segment_row INTEGER PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    content_seq INTEGER NOT NULL CHECK (typeof(content_seq) = 'integer' AND content_seq > 0),
    frames      INTEGER NOT NULL CHECK (frames >= 0),
    fingerprint BLOB    NOT NULL
);

CREATE TABLE fingerprint_keys (
    key         INTEGER NOT NULL CHECK (typeof(key) = 'integer'),
    segment_row INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    session_row INTEGER NOT NULL,
    content_seq INTEGER NOT NULL,
    PRIMARY KEY (key, segment_row)
) WITHOUT ROWID;

-- For the cascade: a segment's keys found without scanning the index.
CREATE INDEX fingerprint_keys_by_segment ON fingerprint_keys (segment_row);

-- The last content sequence handed out (one row).
CREATE TABLE fingerprint_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL CHECK (typeof(last) = 'integer' AND last >= 0)
);
INSERT INTO fingerprint_sequence (id, last) VALUES (1, 0);
