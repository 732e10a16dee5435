//! The review queue: wallets -> sessions -> segments, as the ledger has them, with the filters a
//! reviewer narrows it by. Built from ledger rows only (pure: no files, no UI).

use sd_core::{SegmentKey, SessionStatus};
use sd_ledger::{Ledger, LedgerError, SegmentVerdictRow, SessionRow};

/// One segment in the queue: the ledger's row, as `Ledger::segment_verdicts` reads it.
pub type SegmentEntry = SegmentVerdictRow;

/// What the queue says of a segment.
pub trait ReviewState {
    /// Passed, failed, or overridden either way.
    fn status(&self) -> &'static str;
    /// Nobody has looked at it yet: CLEAN failed it and no reviewer has decided.
    fn awaits_review(&self) -> bool;
}

impl ReviewState for SegmentVerdictRow {
    fn status(&self) -> &'static str {
        match (self.applied_override.is_some(), self.verdict.passed()) {
            (true, true) => "overridden: pass",
            (true, false) => "overridden: fail",
            (false, true) => "passed",
            (false, false) => "failed",
        }
    }

    fn awaits_review(&self) -> bool {
        !self.clean_passed && self.applied_override.is_none()
    }
}

/// One session in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEntry {
    pub wallet: String,
    pub session_id: String,
    pub status: SessionStatus,
    pub frames: usize,
    /// Why a rejected session was rejected: code and sentence.
    pub reject: Option<(String, String)>,
    pub segments: Vec<SegmentEntry>,
}

/// Every wallet's sessions, wallets and sessions in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub sessions: Vec<SessionEntry>,
}

/// What the reviewer narrows the queue to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub failed_only: bool,
    pub awaiting_review_only: bool,
    /// Only segments failing this check.
    pub check: Option<String>,
    pub wallet: Option<String>,
}

impl Filter {
    pub fn keeps(&self, session: &SessionEntry, segment: &SegmentEntry) -> bool {
        (!self.failed_only || !segment.verdict.passed())
            && (!self.awaiting_review_only || segment.awaits_review())
            && self
                .check
                .as_ref()
                .is_none_or(|check| segment.failed_checks.contains(check))
            && self.wallet.as_ref().is_none_or(|w| *w == session.wallet)
    }

    /// Rejected sessions have no segments: they show unless a segment filter is on.
    pub fn keeps_rejected(&self, session: &SessionEntry) -> bool {
        !self.failed_only
            && !self.awaiting_review_only
            && self.check.is_none()
            && self.wallet.as_ref().is_none_or(|w| *w == session.wallet)
    }
}

/// Counts over the whole queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sessions: usize,
    pub rejected: usize,
    pub segments: usize,
    pub passed: usize,
    pub failed: usize,
    pub overridden: usize,
    pub awaiting_review: usize,
}

impl Catalog {
    pub fn load(ledger: &Ledger) -> Result<Self, LedgerError> {
        let mut rows: Vec<SessionRow> = ledger.sessions()?;
        rows.sort_by(|a, b| (&a.wallet, &a.session_id).cmp(&(&b.wallet, &b.session_id)));
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let segments = ledger.segment_verdicts(&row.wallet, &row.session_id)?;
            sessions.push(SessionEntry {
                reject: row
                    .reject_code
                    .map(|code| (code, row.reject_message.unwrap_or_default())),
                wallet: row.wallet,
                session_id: row.session_id,
                status: row.status,
                frames: row.frames,
                segments,
            });
        }
        Ok(Self { sessions })
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            sessions: self.sessions.len(),
            ..Counts::default()
        };
        for session in &self.sessions {
            if session.status == SessionStatus::Rejected {
                counts.rejected += 1;
            }
            for segment in &session.segments {
                counts.segments += 1;
                if segment.verdict.passed() {
                    counts.passed += 1;
                } else {
                    counts.failed += 1;
                }
                counts.overridden += usize::from(segment.applied_override.is_some());
                counts.awaiting_review += usize::from(segment.awaits_review());
            }
        }
        counts
    }

    /// The segments of `wallet` that failed CLEAN and no reviewer has looked at yet.
    pub fn awaiting_review_of(&self, wallet: &str) -> usize {
        self.sessions
            .iter()
            .filter(|session| session.wallet == wallet)
            .flat_map(|session| &session.segments)
            .filter(|segment| segment.awaits_review())
            .count()
    }

    /// Every failing check named in the queue, sorted (the check filter's choices).
    pub fn failing_checks(&self) -> Vec<String> {
        let mut checks: Vec<String> = self
            .sessions
            .iter()
            .flat_map(|s| s.segments.iter())
            .flat_map(|segment| segment.failed_checks.iter().cloned())
            .collect();
        checks.sort();
        checks.dedup();
        checks
    }

    pub fn wallets(&self) -> Vec<String> {
        let mut wallets: Vec<String> = self.sessions.iter().map(|s| s.wallet.clone()).collect();
        wallets.dedup();
        wallets
    }

    /// The segments the filter keeps, in queue order.
    pub fn visible(&self, filter: &Filter) -> Vec<&SegmentEntry> {
        self.sessions
            .iter()
            .flat_map(|session| {
                session
                    .segments
                    .iter()
                    .filter(move |segment| filter.keeps(session, segment))
            })
            .collect()
    }

    pub fn segment(&self, key: &SegmentKey) -> Option<&SegmentEntry> {
        self.sessions
            .iter()
            .filter(|s| s.wallet == key.wallet && s.session_id == key.session_id)
            .flat_map(|s| s.segments.iter())
            .find(|segment| segment.key.segment == key.segment)
    }

    /// The segment after `key` in the filtered queue (the first when `key` is `None` or gone).
    pub fn next_after(&self, key: Option<&SegmentKey>, filter: &Filter) -> Option<SegmentKey> {
        let visible = self.visible(filter);
        let position = key.and_then(|key| visible.iter().position(|s| s.key == *key));
        match position {
            Some(i) => visible.get(i + 1).map(|s| s.key.clone()),
            None => visible.first().map(|s| s.key.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use sd_core::Verdict;

    use super::*;

    fn segment(session: &str, n: usize, clean_passed: bool, checks: &[&str]) -> SegmentEntry {
        SegmentEntry {
            key: SegmentKey {
                wallet: "w".to_owned(),
                session_id: session.to_owned(),
                segment: n,
            },
            first_frame: 0,
            last_frame: 49,
            frames: 50,
            start_pts_ms: 0.0,
            end_pts_ms: 5000.0,
            clean_passed,
            failed_checks: checks.iter().map(|c| (*c).to_owned()).collect(),
            verdict: if clean_passed {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            applied_override: None,
        }
    }

    fn catalog() -> Catalog {
        let mut reviewed = segment("s1", 2, false, &["frame_gap"]);
        reviewed.verdict = Verdict::Pass;
        reviewed.applied_override = Some(sd_core::OverrideNote {
            id: 1,
            segment: 2,
            first_frame: 0,
            last_frame: 49,
            from: Verdict::Fail,
            to: Verdict::Pass,
            reason: "checked".to_owned(),
            by: "qa".to_owned(),
            at: "2026-12-02T00:00:00Z".to_owned(),
        });
        Catalog {
            sessions: vec![
                SessionEntry {
                    wallet: "w".to_owned(),
                    session_id: "s1".to_owned(),
                    status: SessionStatus::Accepted,
                    frames: 100,
                    reject: None,
                    segments: vec![
                        segment("s1", 1, true, &[]),
                        reviewed,
                        segment("s1", 3, false, &["sharpness", "frame_gap"]),
                    ],
                },
                SessionEntry {
                    wallet: "w".to_owned(),
                    session_id: "s2".to_owned(),
                    status: SessionStatus::Rejected,
                    frames: 0,
                    reject: Some(("empty_video".to_owned(), "empty".to_owned())),
                    segments: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn counts_and_filters_follow_verdicts_and_reviews() {
        let catalog = catalog();
        let counts = catalog.counts();
        assert_eq!(
            (counts.sessions, counts.rejected, counts.segments),
            (2, 1, 3)
        );
        assert_eq!((counts.passed, counts.failed), (2, 1));
        assert_eq!((counts.overridden, counts.awaiting_review), (1, 1));
        let numbers = |filter: &Filter| -> Vec<usize> {
            catalog
                .visible(filter)
                .iter()
                .map(|s| s.key.segment)
                .collect()
        };
        assert_eq!(numbers(&Filter::default()), [1, 2, 3]);
        let failed = Filter {
            failed_only: true,
            ..Filter::default()
        };
        assert_eq!(numbers(&failed), [3]);
        let gap = Filter {
            check: Some("frame_gap".to_owned()),
            ..Filter::default()
        };
        assert_eq!(numbers(&gap), [2, 3]);
        let awaiting = Filter {
            awaiting_review_only: true,
            ..Filter::default()
        };
        assert_eq!(numbers(&awaiting), [3]);
        assert!(!gap.keeps_rejected(&catalog.sessions[1]));
        assert!(Filter::default().keeps_rejected(&catalog.sessions[1]));
        assert_eq!(catalog.failing_checks(), ["frame_gap", "sharpness"]);
    }

    #[test]
    fn next_walks_the_filtered_queue_and_starts_over_when_the_segment_is_gone() {
        let catalog = catalog();
        let all = Filter::default();
        let first = catalog.next_after(None, &all).expect("a first");
        assert_eq!(first.segment, 1);
        let second = catalog.next_after(Some(&first), &all).expect("a second");
        assert_eq!(second.segment, 2);
        let failed = Filter {
            failed_only: true,
            ..Filter::default()
        };
        // Segment 1 is not in the failed queue: start at its first.
        assert_eq!(
            catalog.next_after(Some(&first), &failed).map(|k| k.segment),
            Some(3)
        );
        let third = catalog.next_after(Some(&second), &all).expect("a third");
        assert_eq!(catalog.next_after(Some(&third), &all), None);
    }
}
