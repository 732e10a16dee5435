//! A reviewer's override, recorded and carried out: the one implementation behind
//! `scale-diffusion review override` and the desktop app's Pass / Fail. The segment's files are
//! checked first (nothing is recorded for a segment whose files are not where `process` put
//! them), then the ledger records the decision, then the layout moves the segment.

use sd_core::{Lamports, Location, OutputLayout, Placement, PublishError, SegmentKey, Verdict};

use crate::error::LedgerError;
use crate::store::Ledger;
use crate::verdicts::OverrideOutcome;

/// Why an override was not carried out, and how far it got.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Refused before anything was recorded: the segment's files are not usable.
    #[error("{key} is in the ledger, but its files are not usable ({source}): are these the folders `process` wrote to?")]
    Files {
        key: SegmentKey,
        #[source]
        source: PublishError,
    },
    /// The ledger refused or failed: nothing was recorded.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Recorded in the ledger, but moving the files failed; the next `process` run puts the
    /// segment where the ledger says.
    #[error("the override is recorded (#{recorded}), but carrying it out on disk failed ({source}); the next `process` run puts {key} where the ledger says")]
    Apply {
        key: SegmentKey,
        recorded: i64,
        #[source]
        source: PublishError,
    },
}

/// What one override did.
#[derive(Debug, Clone)]
pub struct AppliedOverride {
    pub outcome: OverrideOutcome,
    /// Where the segment is now.
    pub location: Location,
}

impl Ledger {
    /// Records `by`'s verdict `to` on segment `key` with `reason` at `now`, then moves the
    /// segment in `layout` (promoted to the clean layout, or taken out of it).
    #[allow(clippy::too_many_arguments)]
    pub fn review_segment(
        &mut self,
        layout: &OutputLayout,
        key: &SegmentKey,
        to: Verdict,
        reason: &str,
        by: &str,
        now: &str,
        rate: Lamports,
    ) -> Result<AppliedOverride, ReviewError> {
        layout
            .published_quality(key)
            .map_err(|source| ReviewError::Files {
                key: key.clone(),
                source,
            })?;
        let outcome = self.override_segment(key, to, reason, by, now, rate)?;
        let location = Location::of(outcome.segment.verdict);
        let placement = Placement {
            segment: key.segment,
            clean_passed: outcome.segment.clean_passed,
            verdict: outcome.segment.verdict,
            override_note: Some(outcome.recorded.clone()),
            location,
        };
        layout
            .apply_placement(key, &placement)
            .map_err(|source| ReviewError::Apply {
                key: key.clone(),
                recorded: outcome.recorded.id,
                source,
            })?;
        Ok(AppliedOverride { outcome, location })
    }
}
