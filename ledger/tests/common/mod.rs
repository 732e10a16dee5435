//! Builders shared by the ledger's integration tests (`intake.rs`, `ledger.rs`): wallets, session
//! ids, accepted sessions cut into segments of `FRAMES` frames; `stores` runs each test on both
//! stores.

use sd_core::{
    Bound, CheckName, CheckResult, Lamports, SegmentRecord, SessionRecord, SessionStatus,
};

/// The rate the tests pay per valid segment.
pub const RATE: Lamports = Lamports(1_000_000);
/// The frames of every test segment.
pub const FRAMES: usize = 150;

pub fn wallet(n: u8) -> String {
    bs58::encode([n; 32]).into_string()
}

pub fn session_id(n: u32) -> String {
    format!("session_17699363882{n:02}_tag{n}")
}

/// A `check` on a test metric that needs at least 0.5, with the `value` and `reason` given.
pub fn check_result(check: CheckName, passed: bool, value: f64, reason: String) -> CheckResult {
    CheckResult {
        check,
        metric: "test metric (units)".to_owned(),
        value,
        threshold: 0.5,
        bound: Bound::AtLeast,
        passed,
        reason,
        frames: Vec::new(),
        duplicate_of: None,
    }
}

/// Segment `n` starting at `first_frame`, `FRAMES` frames, with the `checks` given.
pub fn segment_at(
    n: usize,
    first_frame: usize,
    passed: bool,
    checks: Vec<CheckResult>,
) -> SegmentRecord {
    SegmentRecord {
        segment: n,
        first_frame,
        last_frame: first_frame + FRAMES - 1,
        frames: FRAMES,
        start_pts_ms: first_frame as f64 * 33.3,
        end_pts_ms: (first_frame + FRAMES) as f64 * 33.3,
        passed,
        checks,
        fingerprint: Default::default(),
    }
}

/// An accepted session read from `source`, whose segment `i + 1` starts at frame `i * FRAMES`,
/// passes CLEAN when `verdicts[i]` and carries `checks(verdicts[i])`.
pub fn accepted_session(
    source: String,
    wallet: &str,
    session_id: &str,
    verdicts: &[bool],
    checks: impl Fn(bool) -> Vec<CheckResult>,
) -> SessionRecord {
    SessionRecord {
        wallet: wallet.to_owned(),
        session_id: session_id.to_owned(),
        source,
        status: SessionStatus::Accepted,
        reject_code: None,
        reject_message: None,
        frames: verdicts.len() * FRAMES,
        clock_confidence: Some(0.9),
        session_json: "{}".to_owned(),
        duplicate_recheck: None,
        segments: verdicts
            .iter()
            .enumerate()
            .map(|(i, &passed)| segment_at(i + 1, i * FRAMES, passed, checks(passed)))
            .collect(),
    }
}
pub mod stores;
