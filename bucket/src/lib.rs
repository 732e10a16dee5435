//! The clean bucket and the workers' queue, configured as the server configures them (every AWS
//! SDK's environment: `AWS_ENDPOINT_URL`, `AWS_REGION`, the default credentials chain). Shared
//! by `scale-diffusion-server` and the review app, so that both publish, read and review a bucket
//! by one code path.
//!
//! - [`clients`]: the S3 and SQS clients, retries and timeouts.
//! - [`publish`]: [`BucketTarget`], the pipeline's publish target for the clean bucket.
//! - [`mirror`]: one session's published objects copied into a local layout, checked.
//! - [`review`]: a reviewer's verdict, recorded and carried out by a reprocess message.
//! - [`session`]: the session ids the bucket and the queue speak of.

pub mod clients;
pub mod mirror;
pub mod publish;
pub mod review;
pub mod session;

pub use clients::{describe, Clients};
pub use mirror::{mirror_session, published_sessions, MirrorDirs, Mirrored};
pub use publish::{
    get_if_present, session_prefix, BucketError, BucketTarget, Fence, REVIEW_PREFIX,
};
pub use review::{
    published_in, queue_url, request_review, ReviewError, ReviewQueued, ReviewRequest, ReviewTarget,
};
pub use session::{parse_reprocess, reprocess_message, SessionRef, REPROCESS_EVENT};
