//! A session the bucket and the queue speak of, and the message that asks the workers to process
//! one again.

use sd_core::{SessionId, WalletAddress};

/// A session with valid ids (a wallet folder and a session id, as the raw bucket names them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionRef {
    pub wallet: WalletAddress,
    pub session: SessionId,
}

impl SessionRef {
    /// Checks both ids; the error says which is bad and why.
    pub fn parse(wallet: &str, session: &str) -> Result<Self, String> {
        Ok(Self {
            wallet: WalletAddress::parse(wallet)?,
            session: SessionId::parse(session)?,
        })
    }
}

impl std::fmt::Display for SessionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.wallet, self.session)
    }
}

/// Our own message, beside S3's: process a session again although its parts did not change
/// (sent after a reviewer's override, so that the clean bucket follows the ledger).
/// `{"Event": "sd:Reprocess", "Wallet": ..., "SessionId": ...}`.
pub const REPROCESS_EVENT: &str = "sd:Reprocess";

/// The message body asking for `session` to be processed again.
pub fn reprocess_message(session: &SessionRef) -> String {
    serde_json::json!({
        "Event": REPROCESS_EVENT,
        "Wallet": session.wallet.as_str(),
        "SessionId": session.session.as_str(),
    })
    .to_string()
}

/// The session a [`reprocess_message`] names, if `event`'s fields are one with valid ids.
pub fn parse_reprocess(wallet: Option<&str>, session: Option<&str>) -> Result<SessionRef, String> {
    SessionRef::parse(wallet.unwrap_or_default(), session.unwrap_or_default())
        .map_err(|why| format!("{REPROCESS_EVENT} with bad ids: {why}"))
}
