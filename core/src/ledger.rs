//! The payout ledger's model: money, verdicts, payout states and the records a pipeline run hands
//! to the ledger. Pure data and rules; the SQLite store is the `sd-ledger` crate.
//!
//! Money is integer lamports (1 SOL = 10^9 lamports) everywhere; SOL exists only as text for
//! people ([`Lamports::sol`]). No float ever holds an amount.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clean::CheckResult;
use crate::fingerprint::{DuplicateConfig, SegmentFingerprint};

/// Lamports in one SOL.
pub const LAMPORTS_PER_SOL: i64 = 1_000_000_000;

/// An amount of money in lamports. Signed: an adjustment that takes back a payment is negative.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lamports(pub i64);

/// Arithmetic that would overflow an `i64` of lamports (9.2 billion SOL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount overflows i64 lamports")]
pub struct AmountOverflow;

impl Lamports {
    pub const ZERO: Lamports = Lamports(0);

    pub fn checked_add(self, other: Lamports) -> Result<Lamports, AmountOverflow> {
        self.0
            .checked_add(other.0)
            .map(Lamports)
            .ok_or(AmountOverflow)
    }

    pub fn checked_sub(self, other: Lamports) -> Result<Lamports, AmountOverflow> {
        self.0
            .checked_sub(other.0)
            .map(Lamports)
            .ok_or(AmountOverflow)
    }

    /// `self * count`, e.g. a per-segment rate times a number of segments.
    pub fn checked_mul(self, count: i64) -> Result<Lamports, AmountOverflow> {
        self.0
            .checked_mul(count)
            .map(Lamports)
            .ok_or(AmountOverflow)
    }

    /// Sums amounts, failing on overflow instead of wrapping.
    pub fn checked_sum(
        amounts: impl IntoIterator<Item = Lamports>,
    ) -> Result<Lamports, AmountOverflow> {
        amounts
            .into_iter()
            .try_fold(Lamports::ZERO, Lamports::checked_add)
    }

    /// The amount in SOL as exact decimal text (`1.250000000`), for display only.
    pub fn sol(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = LAMPORTS_PER_SOL.unsigned_abs();
        format!("{sign}{}.{:09}", abs / per, abs % per)
    }
}

impl fmt::Display for Lamports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lamports", self.0)
    }
}

/// What the ledger pays (the `[payout]` table of the pipeline config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PayoutConfig {
    /// Lamports paid for one valid segment (5 s of aligned driving).
    pub lamports_per_segment: u64,
}

impl Default for PayoutConfig {
    fn default() -> Self {
        Self {
            // 0.001 SOL a segment: 0.012 SOL for a perfect one-minute session.
            lamports_per_segment: 1_000_000,
        }
    }
}

impl PayoutConfig {
    /// The rate as a signed amount (config values above `i64::MAX` lamports are refused).
    pub fn rate(&self) -> Result<Lamports, AmountOverflow> {
        i64::try_from(self.lamports_per_segment)
            .map(Lamports)
            .map_err(|_| AmountOverflow)
    }
}

/// Pass or fail, as the pipeline or a reviewer says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn from_passed(passed: bool) -> Self {
        if passed {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn passed(self) -> bool {
        self == Verdict::Pass
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a payout is: it only moves forward, `pending -> approved -> paid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// Recomputed whenever the wallet's contribution changes; nobody has signed it off.
    Pending,
    /// Signed off by a person: frozen, never changed again except to `paid`.
    Approved,
    /// Transferred; carries the transfer signature. Final.
    Paid,
}

impl PayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Pending => "pending",
            PayoutState::Approved => "approved",
            PayoutState::Paid => "paid",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(PayoutState::Pending),
            "approved" => Some(PayoutState::Approved),
            "paid" => Some(PayoutState::Paid),
            _ => None,
        }
    }

    /// Whether `self -> next` is a move the ledger allows.
    pub fn can_become(self, next: PayoutState) -> bool {
        matches!(
            (self, next),
            (PayoutState::Pending, PayoutState::Approved)
                | (PayoutState::Approved, PayoutState::Paid)
        )
    }
}

impl fmt::Display for PayoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of one session of one wallet: `{wallet}/{session_id}/segment_NNN`, the same path
/// it has in the output layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentKey {
    pub wallet: String,
    pub session_id: String,
    /// 1-based.
    pub segment: usize,
}

impl SegmentKey {
    /// The folder name of the segment (`segment_003`).
    pub fn folder_name(segment: usize) -> String {
        format!("segment_{segment:03}")
    }

    /// The segment number of a folder named by [`SegmentKey::folder_name`].
    pub fn parse_folder_name(name: &str) -> Option<usize> {
        let digits = name.strip_prefix("segment_")?;
        if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|&n| n > 0)
    }
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.wallet,
            self.session_id,
            Self::folder_name(self.segment)
        )
    }
}

/// A reference to a segment as a person types it: `[{wallet}/]{session_id}/segment_NNN`
/// (a trailing `/` and a leading path to the output root, before the wallet, are tolerated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub wallet: Option<String>,
    pub session_id: String,
    pub segment: usize,
}

impl SegmentRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text
            .trim_end_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (segment, session, wallet) = match parts.as_slice() {
            [session, segment] => (*segment, *session, None),
            [.., wallet, session, segment] => (*segment, *session, Some(*wallet)),
            _ => {
                return Err(format!(
                    "{text:?} is not [WALLET/]SESSION_ID/segment_NNN (e.g. session_1769936388223_tp5owb/segment_001)"
                ))
            }
        };
        let index = segment
            .strip_prefix("segment_")
            .and_then(|digits| digits.parse::<usize>().ok())
            .filter(|index| *index > 0)
            .ok_or_else(|| format!("{segment:?} is not segment_NNN (1-based)"))?;
        crate::ids::SessionId::parse(session)
            .map_err(|why| format!("{session:?} is not a session id: {why}"))?;
        // What stands before the session must be its wallet: a mistyped wallet must not silently
        // select the session under whichever wallet owns it.
        let wallet = match wallet {
            Some(wallet) => Some(
                crate::ids::WalletAddress::parse(wallet)
                    .map_err(|why| {
                        format!("{wallet:?} (before the session id) is not a wallet: {why}")
                    })?
                    .to_string(),
            ),
            None => None,
        };
        Ok(Self {
            wallet,
            session_id: session.to_owned(),
            segment: index,
        })
    }
}

/// Whether a processed bundle could be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Accepted,
    Rejected,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Accepted => "accepted",
            SessionStatus::Rejected => "rejected",
        }
    }
}

/// What one pipeline run found for one session: everything the ledger stores about it.
/// Recording it again replaces the earlier record whole.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The wallet the bundle is stored under (or meta's, for a plain folder). Raw text when the
    /// bundle was rejected for an invalid wallet: stored only as a bound query parameter.
    pub wallet: String,
    /// The session id from the part names; raw text when rejected for an invalid one.
    pub session_id: String,
    /// Where the bundle was read from.
    pub source: String,
    pub status: SessionStatus,
    /// The reject reason's stable code and its one-line message.
    pub reject_code: Option<String>,
    pub reject_message: Option<String>,
    /// Decoded frames (0 when the video was never decoded).
    pub frames: usize,
    /// Lowest clock confidence over the session's runs, when aligned.
    pub clock_confidence: Option<f64>,
    /// `session.json`, as written (or as it would be written, for ids unfit for a path).
    pub session_json: String,
    pub segments: Vec<SegmentRecord>,
    /// How the segments' `duplicate` checks were made: the ledger makes each again inside the
    /// recording transaction against what was recorded since (a copy processed on another host
    /// at the same moment). `None`: not checked (rejected sessions).
    pub duplicate_recheck: Option<DuplicateRecheck>,
}

/// What the pipeline's `duplicate` checks rested on.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateRecheck {
    pub rule: DuplicateConfig,
    /// The ledger's content sequence when the checks looked (`EarlierLookup::checked_through`):
    /// whatever was recorded after it was not seen.
    pub checked_through: i64,
}

/// One segment as CLEAN scored it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    /// 1-based (`segment_NNN`).
    pub segment: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    pub frames: usize,
    pub start_pts_ms: f64,
    pub end_pts_ms: f64,
    /// CLEAN's verdict (before any reviewer override).
    pub passed: bool,
    /// Every check: value, threshold, pass/fail and reason.
    pub checks: Vec<CheckResult>,
    /// Its frames' perceptual hashes, for finding the same drive again.
    pub fingerprint: SegmentFingerprint,
}

/// A reviewer's override of one segment's verdict, as the ledger keeps it (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OverrideNote {
    pub id: i64,
    pub segment: usize,
    /// The frames the segment covered when the reviewer looked at it: the override applies only
    /// while the segment still covers exactly these.
    pub first_frame: usize,
    pub last_frame: usize,
    pub from: Verdict,
    pub to: Verdict,
    pub reason: String,
    pub by: String,
    /// RFC 3339.
    pub at: String,
}

/// The verdict that counts for a segment: the latest override that still applies to exactly
/// these frames, else CLEAN's.
pub fn effective_verdict(
    segment: usize,
    first_frame: usize,
    last_frame: usize,
    clean_passed: bool,
    overrides: &[OverrideNote],
) -> (Verdict, Option<&OverrideNote>) {
    let applicable = overrides
        .iter()
        .filter(|o| {
            o.segment == segment && o.first_frame == first_frame && o.last_frame == last_frame
        })
        .max_by_key(|o| o.id);
    match applicable {
        Some(note) => (note.to, Some(note)),
        None => (Verdict::from_passed(clean_passed), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_override_for_the_same_frames_wins() {
        let note = |id, first_frame, to| OverrideNote {
            id,
            segment: 2,
            first_frame,
            last_frame: 40,
            from: Verdict::Fail,
            to,
            reason: "looked fine".into(),
            by: "ana".into(),
            at: "2026-12-01T00:00:00Z".into(),
        };
        let notes = [
            note(1, 20, Verdict::Pass),
            note(2, 20, Verdict::Fail),
            note(3, 21, Verdict::Pass),
        ];
        let (verdict, by) = effective_verdict(2, 20, 40, true, &notes);
        assert_eq!((verdict, by.map(|n| n.id)), (Verdict::Fail, Some(2)));
        // Another cut of the same segment number: no override applies.
        assert_eq!(
            effective_verdict(2, 19, 40, false, &notes),
            (Verdict::Fail, None)
        );
        assert_eq!(effective_verdict(3, 20, 40, true, &notes).0, Verdict::Pass);
    }

    #[test]
    fn sol_text_is_exact() {
        assert_eq!(Lamports(0).sol(), "0.000000000");
        assert_eq!(Lamports(1).sol(), "0.000000001");
        assert_eq!(Lamports(1_250_000_000).sol(), "1.250000000");
        assert_eq!(Lamports(-3_000_000).sol(), "-0.003000000");
        assert_eq!(Lamports(i64::MIN).sol(), "-9223372036.854775808");
    }

    #[test]
    fn arithmetic_refuses_overflow() {
        assert_eq!(
            Lamports(i64::MAX).checked_add(Lamports(1)),
            Err(AmountOverflow)
        );
        assert_eq!(Lamports(2).checked_mul(3), Ok(Lamports(6)));
        assert_eq!(
            Lamports(i64::MAX / 2 + 1).checked_mul(2),
            Err(AmountOverflow)
        );
        assert_eq!(
            Lamports::checked_sum([Lamports(1), Lamports(2), Lamports(-4)]),
            Ok(Lamports(-1))
        );
        let rate = PayoutConfig {
            lamports_per_segment: u64::MAX,
        };
        assert_eq!(rate.rate(), Err(AmountOverflow));
    }

    #[test]
    fn payout_states_only_move_forward() {
        use PayoutState::*;
        assert!(Pending.can_become(Approved));
        assert!(Approved.can_become(Paid));
        for (from, to) in [
            (Pending, Paid),
            (Approved, Pending),
            (Paid, Approved),
            (Paid, Paid),
        ] {
            assert!(!from.can_become(to), "{from} -> {to}");
        }
    }

    #[test]
    fn segment_refs_parse_in_every_form() {
        let wallet = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
        let short = SegmentRef::parse("session_1769936388223_tp5owb/segment_003").unwrap();
        assert_eq!((short.wallet, short.segment), (None, 3));
        let full = SegmentRef::parse(&format!(
            "out/clean/{wallet}/session_1769936388223_tp5owb/segment_010/"
        ))
        .unwrap();
        assert_eq!(full.wallet.as_deref(), Some(wallet));
        assert_eq!(full.segment, 10);
        for bad in [
            "segment_001",
            "x/segment_001",
            "session_1_a/segment_000",
            "session_1_a/seg",
            // A mistyped wallet is an error, not "any wallet".
            "out/TYPOWALLET/session_1769936388223_tp5owb/segment_001",
        ] {
            assert!(SegmentRef::parse(bad).is_err(), "{bad}");
        }
    }
}
