//! Validated identifiers: wallet addresses, session ids, and the file names parts are stored under.
//!
//! Everything here is checked before it is used to build a path, an object key or a query.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

/// Longest wallet string we even try to decode (a 32-byte key is at most 44 base58 characters).
const MAX_WALLET_CHARS: usize = 64;
/// Longest session id accepted (`session_` + 13-digit epoch + `_` + a short random tag, with room).
const MAX_SESSION_ID_CHARS: usize = 96;

/// A Solana public key: base58 text that decodes to exactly 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WalletAddress(String);

impl WalletAddress {
    /// Parses a wallet, saying in words why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty".to_owned());
        }
        if text.len() > MAX_WALLET_CHARS {
            return Err(format!(
                "{} characters, too long for a 32-byte key",
                text.len()
            ));
        }
        let bytes = bs58::decode(text)
            .into_vec()
            .map_err(|err| format!("not base58 ({err})"))?;
        if bytes.len() != 32 {
            return Err(format!("decodes to {} bytes, not 32", bytes.len()));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32-byte public key the address encodes (an ed25519 key for a Solana wallet).
    pub fn key_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        // `parse` checked that the text is base58 of exactly 32 bytes.
        let _ = bs58::decode(&self.0).onto(&mut key);
        key
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session id of the form `session_<digits>_<alphanumerics>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// Parses a session id, saying in words why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SESSION_ID_CHARS {
            return Err(format!(
                "{} characters, longer than {MAX_SESSION_ID_CHARS}",
                text.len()
            ));
        }
        let rest = text
            .strip_prefix("session_")
            .ok_or_else(|| "does not start with `session_`".to_owned())?;
        let (digits, tag) = rest
            .split_once('_')
            .ok_or_else(|| "has no `_<tag>` after the digits".to_owned())?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the part after `session_` is not all digits".to_owned());
        }
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("the tag after the digits is not all letters and digits".to_owned());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The five parts of a session bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    Video,
    Inputs,
    Camera,
    Latency,
    Meta,
}

impl PartKind {
    pub const ALL: [PartKind; 5] = [
        PartKind::Video,
        PartKind::Inputs,
        PartKind::Camera,
        PartKind::Latency,
        PartKind::Meta,
    ];

    /// What follows the session id in the part's file name.
    pub fn suffix(self) -> &'static str {
        match self {
            PartKind::Video => ".webm",
            PartKind::Inputs => "_inputs.json",
            PartKind::Camera => "_camera.json",
            PartKind::Latency => "_latency.json",
            PartKind::Meta => "_meta.json",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PartKind::Video => "video",
            PartKind::Inputs => "inputs",
            PartKind::Camera => "camera",
            PartKind::Latency => "latency",
            PartKind::Meta => "meta",
        }
    }
}

impl fmt::Display for PartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A part's file name (the last segment of its object key), split into its pieces.
///
/// Both key forms are accepted: `{sid}{suffix}` and `{upload_epoch_ms}_{sid}{suffix}`.
/// The session id is kept as raw text here; [`SessionId::parse`] decides whether it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartName {
    pub session_id: String,
    pub kind: PartKind,
    /// `Date.now()` at upload, when the key carries it.
    pub upload_epoch_ms: Option<u64>,
}

impl PartName {
    /// Returns `None` for a name that is not a part of any bundle (wrong suffix, hidden file...).
    pub fn parse(file_name: &str) -> Option<Self> {
        if file_name.starts_with('.') {
            return None;
        }
        // Longest suffix first would matter if one suffix ended another; none does, but the
        // JSON suffixes are checked before `.webm` for clarity.
        let kind = [
            PartKind::Inputs,
            PartKind::Camera,
            PartKind::Latency,
            PartKind::Meta,
            PartKind::Video,
        ]
        .into_iter()
        .find(|kind| file_name.ends_with(kind.suffix()))?;
        let stem = &file_name[..file_name.len() - kind.suffix().len()];
        if stem.is_empty() {
            return None;
        }
        let (upload_epoch_ms, session_id) = match stem.split_once('_') {
            Some((digits, rest))
                if !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && rest.starts_with("session_") =>
            {
                (digits.parse().ok(), rest)
            }
            _ => (None, stem),
        };
        Some(Self {
            session_id: session_id.to_owned(),
            kind,
            upload_epoch_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

    #[test]
    fn wallet_accepts_a_real_key() {
        assert_eq!(WalletAddress::parse(WALLET).unwrap().as_str(), WALLET);
    }

    #[test]
    fn wallet_rejects_bad_text() {
        assert!(WalletAddress::parse("").is_err());
        // `0`, `O`, `I`, `l` are not base58.
        assert!(
            WalletAddress::parse("0zse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR")
                .unwrap_err()
                .contains("base58")
        );
        assert!(WalletAddress::parse("Dzse3tYXLg")
            .unwrap_err()
            .contains("not 32"));
        assert!(WalletAddress::parse("../../etc/passwd").is_err());
        assert!(WalletAddress::parse(&"z".repeat(200))
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn session_id_shape() {
        assert!(SessionId::parse("session_1769936388223_tp5owb").is_ok());
        for bad in [
            "",
            "session_",
            "session_123",
            "session_123_",
            "session_abc_tp5owb",
            "session_123_tp5/owb",
            "session_123_..",
            "sess_123_abc",
            "session_123_abc_def",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn part_names_in_both_key_forms() {
        let plain = PartName::parse("session_1769936388223_tp5owb_camera.json").unwrap();
        assert_eq!(plain.session_id, "session_1769936388223_tp5owb");
        assert_eq!(plain.kind, PartKind::Camera);
        assert_eq!(plain.upload_epoch_ms, None);

        let prefixed = PartName::parse("1769936467514_session_1769936388223_tp5owb.webm").unwrap();
        assert_eq!(prefixed.session_id, "session_1769936388223_tp5owb");
        assert_eq!(prefixed.kind, PartKind::Video);
        assert_eq!(prefixed.upload_epoch_ms, Some(1_769_936_467_514));

        assert_eq!(PartName::parse("notes.txt"), None);
        assert_eq!(PartName::parse(".session_1_a_meta.json"), None);
        assert_eq!(PartName::parse("_meta.json"), None);
        // A name with a part suffix but a bad session id is still a part: validation rejects it.
        assert_eq!(PartName::parse("foo_meta.json").unwrap().session_id, "foo");
    }
}
