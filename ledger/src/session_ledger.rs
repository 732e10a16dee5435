//! The ledger as the pipeline sees it ([`sd_core::SessionLedger`]): what `process` and the
//! server's worker both call through `sd_core::process_session`.

use sd_core::{
    DuplicateConfig, EarlierLookup, Lamports, OverrideNote, RunInfo, SegmentFingerprint, SessionId,
    SessionLedger, SessionRecord, Verdict, WalletAddress,
};

use crate::{Ledger, LedgerError};

impl SessionLedger for Ledger {
    type Error = LedgerError;

    fn session_overrides(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
    ) -> Result<Vec<OverrideNote>, LedgerError> {
        Ledger::session_overrides(self, wallet.as_str(), session.as_str())
    }

    fn earlier_segments(
        &mut self,
        wallet: &WalletAddress,
        session: &SessionId,
        fingerprint: &SegmentFingerprint,
        rule: &DuplicateConfig,
    ) -> Result<EarlierLookup, LedgerError> {
        Ledger::earlier_segments(self, wallet.as_str(), session.as_str(), fingerprint, rule)
    }

    fn record_session(
        &mut self,
        record: &SessionRecord,
        rate: Lamports,
        run: &RunInfo,
    ) -> Result<Vec<Verdict>, LedgerError> {
        let recorded = Ledger::record_session(self, record, rate, &run.processed_at, &run.run_id)?;
        Ok(recorded.segments.iter().map(|row| row.verdict).collect())
    }
}
