//! End-to-end tests: the real `scale-diffusion` binary on real and synthetic bundles.
//!
//! One test binary (as ripgrep does), one module per command.

mod inspect;

use std::path::Path;
use std::process::Output;

/// Runs the `scale-diffusion` binary cargo built for this test target.
fn run(args: &[&str]) -> Output {
    sd_tests::run(Path::new(env!("CARGO_BIN_EXE_scale-diffusion")), args)
}

mod align;
mod duplicates;
mod export;
mod process;
mod report;
mod traces;
