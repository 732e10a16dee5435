//! Wall-clock values the commands stamp on what they write.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as RFC 3339 UTC with milliseconds (`2026-12-01T18:17:47.123Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A run id that sorts by start time and differs between concurrent processes.
pub fn run_id() -> String {
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("run-{epoch_ms}-{}", std::process::id())
}
