//! Parsing the JSON parts from readers, under hard caps on size, nesting depth and array length.

use std::io::Read;

use serde::de::DeserializeOwned;

use crate::ids::PartKind;
use crate::model::NON_FINITE_MARKER;
use crate::reject::RejectReason;

/// Hard caps applied before and while a part is parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest JSON part read (real parts are a few KB; a minute of mouse input is well under 1 MB).
    pub max_json_part_bytes: u64,
    /// Largest video part opened (SPEC: 2-15 MB a minute).
    pub max_video_bytes: u64,
    /// Deepest nesting of arrays and objects (real parts nest 3 levels).
    pub max_json_depth: usize,
    /// Most items in any one JSON array (events, samples).
    pub max_array_items: usize,
    /// Most frames decoded from one video (10 minutes at 60 fps is 36 000).
    pub max_video_frames: usize,
    /// Largest frame, in pixels (1920x1088 is 2.1 M; the client records 1280x704).
    pub max_video_pixels: u64,
    /// Smallest frame: CLEAN measures sharpness on a 256x144 grey copy, and a frame smaller than
    /// that is not training data (`docs/QUALITY.md`).
    pub min_video_width: u32,
    pub min_video_height: u32,
    /// Accepted width / height, around the capture's 1280x704 (1.82) and 16:9 (1.78).
    pub min_video_aspect: f64,
    pub max_video_aspect: f64,
}

impl Limits {
    /// Why frames of `width` x `height` are not usable, or `None` when they are.
    pub fn frame_size_problem(&self, width: u32, height: u32) -> Option<String> {
        if width < self.min_video_width || height < self.min_video_height {
            return Some(format!(
                "too small to be training data (at least {}x{})",
                self.min_video_width, self.min_video_height
            ));
        }
        let aspect = f64::from(width) / f64::from(height);
        if !(self.min_video_aspect..=self.max_video_aspect).contains(&aspect) {
            return Some(format!(
                "width / height is {aspect:.2}, far from the capture's 1280x704 ({:.2}-{:.2} accepted)",
                self.min_video_aspect, self.max_video_aspect
            ));
        }
        None
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_part_bytes: 16 * 1024 * 1024,
            max_video_bytes: 512 * 1024 * 1024,
            max_json_depth: 16,
            max_array_items: 500_000,
            max_video_frames: 200_000,
            max_video_pixels: 1920 * 1088,
            min_video_width: 256,
            min_video_height: 144,
            min_video_aspect: 1.6,
            max_video_aspect: 2.05,
        }
    }
}

/// Reads at most `limit` bytes; more than that is [`RejectReason::PartTooLarge`].
pub(crate) fn read_capped(
    part: PartKind,
    reader: impl Read,
    limit: u64,
) -> Result<Vec<u8>, RejectReason> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| RejectReason::Unreadable {
            part,
            detail: err.to_string(),
        })?;
    if bytes.len() as u64 > limit {
        return Err(RejectReason::PartTooLarge {
            part,
            size_bytes: bytes.len() as u64,
            limit_bytes: limit,
        });
    }
    Ok(bytes)
}

/// Parses one JSON part from a reader.
pub fn parse_json_part<T: DeserializeOwned>(
    part: PartKind,
    reader: impl Read,
    limits: &Limits,
) -> Result<T, RejectReason> {
    let bytes = read_capped(part, reader, limits.max_json_part_bytes)?;
    parse_json_bytes(part, &bytes, limits)
}

/// Parses one JSON part already in memory.
pub fn parse_json_bytes<T: DeserializeOwned>(
    part: PartKind,
    bytes: &[u8],
    limits: &Limits,
) -> Result<T, RejectReason> {
    check_shape(part, bytes, limits)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| json_error(part, json_path(err.path()), err.inner()))?;
    deserializer
        .end()
        .map_err(|err| json_error(part, ".".to_owned(), &err))?;
    Ok(value)
}

/// The path to the failing value; a segment serde could not name (`?`) is left off.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    let text = text
        .strip_suffix(".?")
        .or_else(|| text.strip_suffix('?'))
        .unwrap_or(&text);
    if text.is_empty() {
        ".".to_owned()
    } else {
        text.to_owned()
    }
}

fn json_error(part: PartKind, path: String, err: &serde_json::Error) -> RejectReason {
    let message = err.to_string();
    if message.contains(NON_FINITE_MARKER) {
        return RejectReason::NonFiniteNumber {
            part,
            path,
            line: err.line(),
            column: err.column(),
        };
    }
    // serde_json appends " at line L column C"; the reason carries them as fields.
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    // "missing field `avgRtt`": a field the client always writes is not there.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return RejectReason::MissingField {
            part,
            path: if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            },
            line: err.line(),
            column: err.column(),
        };
    }
    RejectReason::MalformedJson {
        part,
        path,
        line: err.line(),
        column: err.column(),
        message,
    }
}

/// One pass over the raw bytes, before any allocation by serde: bounds nesting and array length.
fn check_shape(part: PartKind, bytes: &[u8], limits: &Limits) -> Result<(), RejectReason> {
    // One entry per open container: `Some(commas)` for an array, `None` for an object.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                if open.len() >= limits.max_json_depth {
                    return Err(RejectReason::TooDeep {
                        part,
                        limit: limits.max_json_depth,
                    });
                }
                open.push((byte == b'[').then_some(0));
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => {
                if let Some(Some(commas)) = open.last_mut() {
                    *commas += 1;
                    if *commas >= limits.max_array_items {
                        return Err(RejectReason::TooManyItems {
                            part,
                            limit: limits.max_array_items,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CameraSample, InputEvent, LatencyLog, Meta};

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn keeps_unknown_fields() {
        let json = br#"[{"t":1.5,"type":"camera","pos":[0,5,50],"yaw":0,"speed":0,
            "throttle":0,"brake":0,"steer":0,"command":4,"future":{"x":1}}]"#;
        let samples: Vec<CameraSample> =
            parse_json_bytes(PartKind::Camera, json, &limits()).unwrap();
        assert_eq!(samples[0].command, Some(4.0));
        assert_eq!(samples[0].extra["future"]["x"], 1);
    }

    #[test]
    fn null_start_time_is_tolerated() {
        let json = br#"{"sessionId":"session_1_a","walletAddress":"w","duration":0,
            "startTime":null,"endTime":1769939053970,"scenario":{"id":"x","name":"y","type":"free"}}"#;
        let meta: Meta = parse_json_bytes(PartKind::Meta, json, &limits()).unwrap();
        assert_eq!(meta.start_time, None);
        assert_eq!(meta.scenario.unwrap().id.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_json_names_part_and_position() {
        let json = b"[{\"t\":1,\"type\":\"keydown\"},\n {\"t\":2,\"type\":}]";
        let err =
            parse_json_bytes::<Vec<InputEvent>>(PartKind::Inputs, json, &limits()).unwrap_err();
        match err {
            RejectReason::MalformedJson { part, line, .. } => {
                assert_eq!(part, PartKind::Inputs);
                assert_eq!(line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_field_names_its_path() {
        let json = br#"[{"t":1,"type":"keydown"},{"type":"keyup"}]"#;
        let err =
            parse_json_bytes::<Vec<InputEvent>>(PartKind::Inputs, json, &limits()).unwrap_err();
        assert!(
            matches!(&err, RejectReason::MissingField { part: PartKind::Inputs, path, .. } if path == "[1].t"),
            "{err:?}"
        );
        assert_eq!(err.code(), "missing_field");
        let err = parse_json_bytes::<LatencyLog>(PartKind::Latency, b"{}", &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the latency part lacks the required field `avgRtt` (line 1, column 2)"
        );
        // A required field that may be null: null is fine, absent is not.
        let log: LatencyLog = parse_json_bytes(
            PartKind::Latency,
            br#"{"avgRtt":null,"rttSamples":[]}"#,
            &limits(),
        )
        .unwrap();
        assert_eq!(log.avg_rtt, None);
        let err = parse_json_bytes::<LatencyLog>(PartKind::Latency, br#"{"avgRtt":3}"#, &limits())
            .unwrap_err();
        assert!(err.to_string().contains("`rttSamples`"), "{err}");
    }

    #[test]
    fn frame_size_limits() {
        let limits = limits();
        assert_eq!(limits.frame_size_problem(1280, 704), None);
        assert_eq!(limits.frame_size_problem(256, 144), None);
        assert!(limits
            .frame_size_problem(16, 16)
            .is_some_and(|why| why.contains("256x144")));
        assert!(limits
            .frame_size_problem(1280, 960)
            .is_some_and(|why| why.contains("1.33")));
    }

    #[test]
    fn null_number_is_non_finite() {
        let json = br#"[{"t":null,"type":"keydown","key":"w"}]"#;
        let err =
            parse_json_bytes::<Vec<InputEvent>>(PartKind::Inputs, json, &limits()).unwrap_err();
        assert!(
            matches!(&err, RejectReason::NonFiniteNumber { path, .. } if path == "[0].t"),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let err =
            parse_json_bytes::<Vec<InputEvent>>(PartKind::Inputs, b"[] []", &limits()).unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn depth_is_capped_before_parsing() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse_json_bytes::<serde_json::Value>(PartKind::Meta, deep.as_bytes(), &limits())
            .unwrap_err();
        assert_eq!(err.code(), "too_deep");
        // Brackets inside strings do not count.
        let quoted = format!("[\"{}\"]", "[".repeat(100));
        parse_json_bytes::<serde_json::Value>(PartKind::Meta, quoted.as_bytes(), &limits())
            .unwrap();
    }

    #[test]
    fn array_length_is_capped() {
        let small = Limits {
            max_array_items: 3,
            ..Limits::default()
        };
        parse_json_bytes::<Vec<u8>>(PartKind::Inputs, b"[1,2,3]", &small).unwrap();
        let err = parse_json_bytes::<Vec<u8>>(PartKind::Inputs, b"[1,2,3,4]", &small).unwrap_err();
        assert_eq!(err.code(), "too_many_items");
    }

    #[test]
    fn size_is_capped_while_reading() {
        let small = Limits {
            max_json_part_bytes: 8,
            ..Limits::default()
        };
        let err = parse_json_part::<Vec<u8>>(PartKind::Inputs, &b"[1,2,3,4,5,6]"[..], &small)
            .unwrap_err();
        assert!(matches!(
            err,
            RejectReason::PartTooLarge {
                size_bytes: 9,
                limit_bytes: 8,
                ..
            }
        ));
    }
}
