//! S3 event notifications as SQS delivers them, read as hostile input: the body is parsed
//! loosely, every key is URL-decoded and then validated (wallet, part name, session id) before
//! anything is built from it. Pure: text in, typed sessions out.

use std::collections::BTreeSet;

use sd_bucket::{parse_reprocess, SessionRef, REPROCESS_EVENT};
use sd_core::{PartName, SessionId, WalletAddress};
use serde::Deserialize;

/// What one SQS message said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// Sessions with a new object, each once.
    pub sessions: BTreeSet<SessionRef>,
    /// What was passed over and why (logged, then dropped).
    pub dropped: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(rename = "Records")]
    records: Option<Vec<serde_json::Value>>,
    #[serde(rename = "Event")]
    event: Option<String>,
    /// With [`REPROCESS_EVENT`] (sent after a reviewer's override): the session to process again.
    #[serde(rename = "Wallet")]
    wallet: Option<String>,
    #[serde(rename = "SessionId")]
    session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Debug, Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Debug, Deserialize)]
struct ObjectEntity {
    key: String,
}

/// Reads one message body: every `ObjectCreated:*` record of `raw_bucket` whose key is a part of
/// a session; everything else (test events, other events, other buckets, keys that are not
/// parts) is dropped with a reason.
pub fn parse_notification(body: &str, raw_bucket: &str) -> Notification {
    let mut out = Notification::default();
    let parsed: Body = match serde_json::from_str(body) {
        Ok(parsed) => parsed,
        Err(err) => {
            out.dropped
                .push(format!("not an S3 event notification: {err}"));
            return out;
        }
    };
    if let Some(event) = parsed.event {
        if event == REPROCESS_EVENT {
            match parse_reprocess(parsed.wallet.as_deref(), parsed.session_id.as_deref()) {
                Ok(session) => {
                    out.sessions.insert(session);
                }
                Err(why) => out.dropped.push(why),
            }
        } else {
            out.dropped.push(format!("{event} (no records)"));
        }
        return out;
    }
    let Some(records) = parsed.records else {
        out.dropped.push("no `Records` in the message".to_owned());
        return out;
    };
    for value in records {
        let record: Record = match serde_json::from_value(value) {
            Ok(record) => record,
            Err(err) => {
                out.dropped.push(format!("unreadable record: {err}"));
                continue;
            }
        };
        if !record.event_name.starts_with("ObjectCreated:") {
            out.dropped.push(format!("event {}", record.event_name));
            continue;
        }
        if record.s3.bucket.name != raw_bucket {
            out.dropped
                .push(format!("object in bucket {:?}", record.s3.bucket.name));
            continue;
        }
        match session_of_key(&decode_key(&record.s3.object.key)) {
            Ok(session) => {
                out.sessions.insert(session);
            }
            Err(why) => out.dropped.push(why),
        }
    }
    out
}

/// S3 event keys are URL-encoded as HTML forms are (`+` for a space).
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The session a raw-bucket key belongs to: `{wallet}/{sid}{suffix}` or
/// `{wallet}/{upload_epoch_ms}_{sid}{suffix}`, with a valid wallet and session id.
pub fn session_of_key(key: &str) -> Result<SessionRef, String> {
    let shown: String = key.chars().take(200).collect();
    let (wallet, name) = key
        .split_once('/')
        .ok_or_else(|| format!("key {shown:?} is not under a wallet folder"))?;
    let wallet =
        WalletAddress::parse(wallet).map_err(|why| format!("key {shown:?}: bad wallet: {why}"))?;
    if name.contains('/') {
        return Err(format!("key {shown:?} is nested below a wallet folder"));
    }
    let part =
        PartName::parse(name).ok_or_else(|| format!("key {shown:?} is not a part of a bundle"))?;
    let session = SessionId::parse(&part.session_id)
        .map_err(|why| format!("key {shown:?}: bad session id: {why}"))?;
    Ok(SessionRef { wallet, session })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sd_bucket::reprocess_message;

    const WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

    fn record(bucket: &str, key: &str, event: &str) -> serde_json::Value {
        serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "abc"}}
        })
    }

    #[test]
    fn several_records_both_key_forms_each_session_once() {
        let body = serde_json::json!({"Records": [
            record("sd-raw", &format!("{WALLET}/1769936467514_session_1769936388223_tp5owb.webm"), "ObjectCreated:Put"),
            record("sd-raw", &format!("{WALLET}/session_1769936388223_tp5owb_meta.json"), "ObjectCreated:Put"),
            record("sd-raw", &format!("{WALLET}/session_1769938621118_eylo08_inputs.json"), "ObjectCreated:CompleteMultipartUpload"),
        ]})
        .to_string();
        let parsed = parse_notification(&body, "sd-raw");
        let sessions: Vec<String> = parsed.sessions.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            sessions,
            [
                format!("{WALLET}/session_1769936388223_tp5owb"),
                format!("{WALLET}/session_1769938621118_eylo08")
            ]
        );
        assert!(parsed.dropped.is_empty(), "{:?}", parsed.dropped);
    }

    #[test]
    fn test_events_other_events_and_hostile_keys_are_dropped() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"sd-raw"}"#;
        let parsed = parse_notification(test_event, "sd-raw");
        assert!(parsed.sessions.is_empty());
        assert_eq!(parsed.dropped, ["s3:TestEvent (no records)"]);

        let body = serde_json::json!({"Records": [
            record("sd-raw", &format!("{WALLET}/session_1_a.webm"), "ObjectRemoved:Delete"),
            record("other", &format!("{WALLET}/session_1_a.webm"), "ObjectCreated:Put"),
            record("sd-raw", "../../etc/passwd", "ObjectCreated:Put"),
            record("sd-raw", &format!("{WALLET}/..%2F..%2Fsession_1_a.webm"), "ObjectCreated:Put"),
            record("sd-raw", "not-a-wallet/session_1_a.webm", "ObjectCreated:Put"),
            record("sd-raw", &format!("{WALLET}/session_1_a%27%3B--.webm"), "ObjectCreated:Put"),
            record("sd-raw", &format!("{WALLET}/notes.txt"), "ObjectCreated:Put"),
            serde_json::json!({"eventName": 3}),
        ]})
        .to_string();
        let parsed = parse_notification(&body, "sd-raw");
        assert!(parsed.sessions.is_empty(), "{:?}", parsed.sessions);
        assert_eq!(parsed.dropped.len(), 8, "{:?}", parsed.dropped);
        assert_eq!(parse_notification("{not json", "sd-raw").dropped.len(), 1);
    }

    #[test]
    fn reprocess_messages_name_one_valid_session() {
        let session =
            session_of_key(&format!("{WALLET}/session_1769936388223_tp5owb.webm")).expect("valid");
        let parsed = parse_notification(&reprocess_message(&session), "sd-raw");
        assert_eq!(parsed.sessions.into_iter().collect::<Vec<_>>(), [session]);
        let hostile = r#"{"Event": "sd:Reprocess", "Wallet": "../x", "SessionId": "session_1_a"}"#;
        let parsed = parse_notification(hostile, "sd-raw");
        assert!(parsed.sessions.is_empty());
        assert_eq!(parsed.dropped.len(), 1);
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("a%2Fb+c%2Bd"), "a/b c+d");
        let key = format!("{WALLET}%2F1769936467514_session_1769936388223_tp5owb.webm");
        let session = session_of_key(&decode_key(&key)).expect("valid");
        assert_eq!(session.session.as_str(), "session_1769936388223_tp5owb");
    }
}
