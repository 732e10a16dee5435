//! Why a bundle cannot be used: one typed reason, worded for the person who reads it.

use schemars::JsonSchema;
use serde::Serialize;

use crate::ids::PartKind;

/// Where a wallet address was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletFoundIn {
    /// The `{wallet}/` folder or key prefix the parts are stored under.
    Key,
    /// `walletAddress` in the meta part.
    Meta,
}

impl std::fmt::Display for WalletFoundIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WalletFoundIn::Key => "storage key",
            WalletFoundIn::Meta => "meta part",
        })
    }
}

/// The reason a bundle is rejected. Rejected bundles are findings, never crashes, and never pay.
///
/// Serialised with a stable snake_case `code` beside the variant's fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum RejectReason {
    /// One or more parts are absent (after the completeness timeout, in the server's case).
    #[error("{}", missing_parts_sentence(parts))]
    MissingPart { parts: Vec<PartKind> },

    #[error("the {part} part `{file}` {why}")]
    UnsafePath {
        part: PartKind,
        file: String,
        why: String,
    },

    #[error("session id {session_id:?} is not of the form session_<digits>_<alnum>: {why}")]
    InvalidSessionId { session_id: String, why: String },

    #[error("wallet {wallet:?} in the {found_in} is not a base58 32-byte Solana key: {why}")]
    InvalidWallet {
        wallet: String,
        found_in: WalletFoundIn,
        why: String,
    },

    #[error("meta names wallet {meta_wallet} but the bundle is stored under wallet {key_wallet}")]
    WalletMismatch {
        key_wallet: String,
        meta_wallet: String,
    },

    #[error("meta names session {meta_session_id:?} but its parts are named {key_session_id}")]
    SessionIdMismatch {
        key_session_id: String,
        meta_session_id: String,
    },

    #[error("the {part} part is {size_bytes} bytes, over the {limit_bytes}-byte limit")]
    PartTooLarge {
        part: PartKind,
        size_bytes: u64,
        limit_bytes: u64,
    },

    #[error("the {part} part nests deeper than {limit} levels")]
    TooDeep { part: PartKind, limit: usize },

    #[error("the {part} part has an array of more than {limit} items")]
    TooManyItems { part: PartKind, limit: usize },

    #[error("the {part} part is not valid JSON at line {line}, column {column} (at `{path}`): {message}")]
    MalformedJson {
        part: PartKind,
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("the {part} part lacks the required field `{path}` (line {line}, column {column})")]
    MissingField {
        part: PartKind,
        path: String,
        line: usize,
        column: usize,
    },

    #[error("the {part} part has a non-finite number (null, NaN or Infinity) at `{path}` (line {line}, column {column})")]
    NonFiniteNumber {
        part: PartKind,
        path: String,
        line: usize,
        column: usize,
    },

    #[error("the {part} part has an absurd value at `{path}`: {value} ({why})")]
    AbsurdNumber {
        part: PartKind,
        path: String,
        value: f64,
        why: String,
    },

    #[error("the video part is empty (0 bytes)")]
    EmptyVideo,

    #[error("the video cannot be decoded: {detail}")]
    UndecodableVideo { detail: String },

    #[error("the video is not what the capture client records (VP8 in WebM, at most 1920x1088): {detail}")]
    UnsupportedVideo { detail: String },

    #[error("the video's frames are {width}x{height}: {why}")]
    UnusableFrameSize {
        width: u32,
        height: u32,
        why: String,
    },

    #[error("the {part} part cannot be read: {detail}")]
    Unreadable { part: PartKind, detail: String },
}

impl RejectReason {
    /// The stable machine-readable code (the same string as the JSON `code`).
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::MissingPart { .. } => "missing_part",
            RejectReason::UnsafePath { .. } => "unsafe_path",
            RejectReason::InvalidSessionId { .. } => "invalid_session_id",
            RejectReason::InvalidWallet { .. } => "invalid_wallet",
            RejectReason::WalletMismatch { .. } => "wallet_mismatch",
            RejectReason::SessionIdMismatch { .. } => "session_id_mismatch",
            RejectReason::PartTooLarge { .. } => "part_too_large",
            RejectReason::TooDeep { .. } => "too_deep",
            RejectReason::TooManyItems { .. } => "too_many_items",
            RejectReason::MalformedJson { .. } => "malformed_json",
            RejectReason::MissingField { .. } => "missing_field",
            RejectReason::NonFiniteNumber { .. } => "non_finite_number",
            RejectReason::AbsurdNumber { .. } => "absurd_number",
            RejectReason::EmptyVideo => "empty_video",
            RejectReason::UndecodableVideo { .. } => "undecodable_video",
            RejectReason::UnsupportedVideo { .. } => "unsupported_video",
            RejectReason::UnusableFrameSize { .. } => "unusable_frame_size",
            RejectReason::Unreadable { .. } => "unreadable",
        }
    }
}

/// "the camera part is missing", "the camera and latency parts are missing"...
fn missing_parts_sentence(parts: &[PartKind]) -> String {
    let names: Vec<&str> = parts.iter().map(|part| part.name()).collect();
    match names.as_slice() {
        [] => "a part is missing".to_owned(),
        [one] => format!("the {one} part is missing"),
        [rest @ .., last] => format!("the {} and {last} parts are missing", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_matches_serialised_code() {
        let reasons = [
            RejectReason::MissingPart {
                parts: vec![PartKind::Meta],
            },
            RejectReason::EmptyVideo,
            RejectReason::AbsurdNumber {
                part: PartKind::Camera,
                path: "[0].speed".into(),
                value: 1e12,
                why: "too fast".into(),
            },
        ];
        assert_eq!(
            RejectReason::MissingPart {
                parts: vec![PartKind::Camera, PartKind::Latency, PartKind::Meta]
            }
            .to_string(),
            "the camera, latency and meta parts are missing"
        );
        for reason in reasons {
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(json["code"], reason.code());
        }
    }
}
