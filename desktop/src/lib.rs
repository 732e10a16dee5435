//! `scale-diffusion-review`: the desktop review app on `sd-core` and `sd-ledger` (egui/eframe).
//! A reviewer walks the queue of segments, scrubs a segment's frames at their real times with the
//! actions beside them, reads every check, and passes or fails the segment with a reason: the same
//! ledger call as `scale-diffusion review override`, which also moves the files. Whoever approves
//! payouts does it on the Payouts tab.
//!
//! - [`catalog`]: the queue from the ledger, filters and counts (pure).
//! - [`segment`]: one segment's frames, times, actions and checks, read from the layout.
//! - [`frames`]: JPEG decoding on a named thread behind a bounded queue, with a cache.
//! - [`inspect`]: one bundle folder processed offline on a named thread (nothing recorded).
//! - [`remote`]: a clean bucket as the source, mirrored on a named thread; verdicts through
//!   `sd_bucket::request_review`, as `scale-diffusion-server review`.
//! - [`app`]: the state and the `ui` pass; key bindings in one table ([`app::BINDINGS`]).

pub mod app;
pub mod catalog;
pub mod frames;
pub mod inspect;
pub mod remote;
pub mod segment;

pub use app::{ReviewApp, Sources};
pub use remote::BucketSource;
