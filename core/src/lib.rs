//! The core of Scale Diffusion's data pipeline: everything that turns a raw session bundle into
//! facts, with no network and no async.
//!
//! - [`discover`] lists the bundles in a folder or a raw-bucket-shaped tree ([`BundleSource`]).
//! - [`load_bundle`] reads and checks every part; a bundle that cannot be used carries one
//!   [`RejectReason`]; a usable one becomes a [`Bundle`].
//! - [`probe_video`] decodes the video for its real frame timestamps; [`VideoHealth`] reads stalls
//!   and repeated-timestamp bursts from them.
//! - [`report`] summarises a loaded bundle as plain data ([`SessionReport`]).
//!
//! ```
//! use sd_core::{PartName, PartKind, SessionId};
//!
//! let name = PartName::parse("1769936467514_session_1769936388223_tp5owb_meta.json").unwrap();
//! assert_eq!(name.kind, PartKind::Meta);
//! assert_eq!(name.upload_epoch_ms, Some(1769936467514));
//! assert!(SessionId::parse(&name.session_id).is_ok());
//! ```

mod actions;
mod align;
mod bundle;
mod clean;
mod clock;
mod config;
mod discover;
mod fingerprint;
mod frames;
mod ids;
mod image_stats;
mod inspect;
mod latency;
mod ledger;
mod manifest;
mod model;
mod motion;
mod outputs;
mod parse;
mod pipeline;
mod publish;
mod reject;
mod report;
mod schema;
mod session;
mod splice;
mod timeline;
pub mod trace;
mod video;

pub use actions::{
    frame_actions, frame_at, frame_timing, shortest_arc, ActionConfig, Controls, DrivingKeys,
    FrameAction, FrameTiming, Pose,
};
pub use align::{
    align, timing_facts, ActionSummary, AlignConfig, AlignedFile, AlignedVideo, Alignment,
    ALIGNED_SCHEMA_VERSION,
};
pub use bundle::{load_bundle, load_bundle_streaming, Bundle, LoadedBundle};
pub use clean::{
    busiest_key_transitions, clean_segment, ActionValidityConfig, AlignmentConfig, ArtifactConfig,
    BlurConfig, Bound, CheckName, CheckResult, ConfigError, FrameThresholds, QualityConfig,
    SegmentQuality, SessionContext, VideoHealthConfig,
};
pub use clock::{
    estimate_clock, split_runs, timing_prior, ChannelFit, ClockConfig, ClockEstimate, LagEstimate,
    LagSource, MotionFit, OffsetSource, Prior, PriorBasis, RunClock, TimingFacts, VideoMotion,
};
pub use config::{OutputConfig, PipelineConfig};
pub use discover::{
    discover, lossy_path, upload_order, BundleSource, DiscoverError, Discovery, Ignored, PartFile,
};
pub use fingerprint::{
    band_keys, distance, duplicate_check, find_duplicate, frame_hash, DuplicateConfig,
    DuplicateFinding, DuplicateMatch, EarlierLookup, EarlierSegment, FingerprintError,
    FingerprintFrame, SegmentFingerprint, ANCHOR_EVERY_MS,
};
pub use frames::{
    frame_file_name, thumbnail_jpeg, FrameWriteError, FramesWritten, JpegSettings, JpegWriter,
};
pub use ids::{PartKind, PartName, SessionId, WalletAddress};
pub use image_stats::{
    blockiness, histogram, histogram_distance, laplacian_variance, std_dev, HISTOGRAM_BINS,
    SHARP_HEIGHT, SHARP_WIDTH,
};
pub use inspect::{
    part_reports, report, AlignmentOverview, CameraSummary, InputSummary, LatencySummary, LogSpan,
    MetaSummary, PartReport, RunOverview, SegmentVerdict, SessionReport, VideoReport,
};
pub use latency::{LatencyModel, LatencySource};
pub use ledger::{
    effective_verdict, AmountOverflow, DuplicateRecheck, Lamports, OverrideNote, PayoutConfig,
    PayoutState, SegmentKey, SegmentRecord, SegmentRef, SessionRecord, SessionStatus, Verdict,
    LAMPORTS_PER_SOL,
};
pub use manifest::{
    ManifestObject, ManifestSegment, SessionManifest, MANIFEST_FILE, MANIFEST_SCHEMA_VERSION,
};
pub use model::{
    CameraSample, InputEvent, InputKind, LatencyLog, Meta, RttSample, Scenario, DRIVING_KEYS,
};
pub use motion::{GrayThumb, PhaseCorrelator, Shift, Spectrum, THUMB_HEIGHT, THUMB_WIDTH};
pub use outputs::{
    place_segments, FrameMetrics, Location, Placement, RejectNote, RunInfo, SegmentAlignedFile,
    SegmentFrame, SegmentQualityFile, SessionFile, SessionSegment, SessionVideo,
    OUTPUT_SCHEMA_VERSION,
};
pub use parse::{parse_json_bytes, parse_json_part, Limits};
pub use pipeline::{align_config, analyse_bundle, AcceptedSession, Analysis};
pub use publish::{
    manifest_json, AssembledSession, OutputLayout, PublishError, PublishTarget, Published,
    SegmentFiles, SessionContent, StagedSession, ABORT_AFTER_RENAMES_ENV, SESSION_FILES,
};
pub use reject::{RejectReason, WalletFoundIn};
pub use report::{render_report, thumbnail_frames, Thumbnails, THUMBNAILS_PER_SEGMENT};
pub use schema::{schema, SCHEMA_NAMES};
pub use session::{
    process_session, rejected_wallet, thumbnails, SessionError, SessionJob, SessionLedger,
    SessionOutcome,
};
pub use splice::{splice, Segment, SkipKind, Skipped, Splice, SpliceConfig};
pub use timeline::{repeated_timestamps, Burst, Stall, TimelineConfig, VideoHealth};
pub use video::{
    decode_video, probe_video, probe_video_with, DecodedFrame, FrameStats, VideoProbe, Yuv420Planes,
};
