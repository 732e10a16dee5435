//! The upload API's nonces (SPEC section 9): a wallet's nonce is accepted once, and kept until a
//! request carrying it would be refused as stale anyway, so that a restart does not reopen
//! replays.

use crate::db::params;
use crate::error::LedgerError;
use crate::store::Ledger;

impl Ledger {
    /// Records `nonce` of `wallet` as used until `keep_until_ms`, in one transaction that also
    /// forgets the nonces whose time is up at `now_ms`. `false` when the pair was used already
    /// (and is still kept): the request is a replay.
    pub fn use_nonce(
        &mut self,
        wallet: &str,
        nonce: &str,
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<bool, LedgerError> {
        if wallet.is_empty() {
            return Err(LedgerError::EmptyText { what: "a wallet" });
        }
        if nonce.is_empty() {
            return Err(LedgerError::EmptyText { what: "a nonce" });
        }
        let inserted = self.write(|tx| {
            tx.execute(
                "DELETE FROM upload_nonces WHERE keep_until_ms <= ?1",
                params![now_ms],
            )?;
            tx.execute(
                "INSERT INTO upload_nonces (wallet, nonce, keep_until_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (wallet, nonce) DO NOTHING",
                params![wallet, nonce, keep_until_ms.max(now_ms.saturating_add(1))],
            )
        })?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";
    const OTHER: &str = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T";
    const NONCE: &str = "a1b2c3d4e5f6g7h8";

    #[test]
    fn a_nonce_is_accepted_once_per_wallet_until_it_is_stale() {
        let mut ledger = Ledger::open_in_memory().expect("ledger");
        assert!(ledger
            .use_nonce(WALLET, NONCE, 1_000, 301_000)
            .expect("first"));
        assert!(!ledger
            .use_nonce(WALLET, NONCE, 2_000, 302_000)
            .expect("replay"));
        // Another wallet's nonce is its own.
        assert!(ledger
            .use_nonce(OTHER, NONCE, 2_000, 302_000)
            .expect("other wallet"));
        // Still kept just before its time; forgotten once a request with it would be stale.
        assert!(!ledger
            .use_nonce(WALLET, NONCE, 300_999, 600_000)
            .expect("kept"));
        assert!(ledger
            .use_nonce(WALLET, NONCE, 301_000, 601_000)
            .expect("forgotten"));
    }

    #[test]
    fn nonces_survive_reopening_the_ledger() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ledger.sqlite");
        {
            let mut ledger = Ledger::open(&path).expect("open");
            assert!(ledger
                .use_nonce(WALLET, NONCE, 1_000, 301_000)
                .expect("first"));
        }
        let mut ledger = Ledger::open(&path).expect("reopen");
        assert!(!ledger
            .use_nonce(WALLET, NONCE, 2_000, 302_000)
            .expect("replay"));
    }

    #[test]
    fn empty_and_malformed_nonces_are_refused() {
        let mut ledger = Ledger::open_in_memory().expect("ledger");
        assert!(matches!(
            ledger.use_nonce(WALLET, "", 1, 2),
            Err(LedgerError::EmptyText { .. })
        ));
        // The table's own check: 16 to 64 characters.
        assert!(ledger.use_nonce(WALLET, "short", 1, 2).is_err());
    }
}
