//! Helpers shared by every test that touches files: where the real sessions are, per-test temp
//! folders, and running the real `scale-diffusion` binary.
//!
//! Tests that need `../shared/real-sessions` call [`real_sessions`]. When it is absent they print a
//! plain `SKIPPED` line (to the real stderr, past the test harness's capture) and return early;
//! with `SD_REQUIRE_REAL_SESSIONS=1` (CI sets it) absence is a failure instead.

pub mod moto;
pub mod otlp;
pub mod postgres;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The wallet folder of the real sessions in `shared/`.
pub const REAL_WALLET: &str = "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR";

/// The four real sessions: id, decodable frame count (`None` for the 0-byte video), longest stall.
pub const REAL_SESSIONS: [(&str, Option<usize>, f64); 4] = [
    ("session_1769936388223_tp5owb", Some(147), 41_157.0),
    ("session_1769936668710_se4gmo", Some(56), 9_811.0),
    ("session_1769938621118_eylo08", Some(90), 35_654.0),
    ("session_1769938990243_832oey", None, 0.0),
];

/// The workspace root (the folder holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `shared/` beside the repository, or `$SD_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("SD_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("..").join("shared"),
    }
}

/// The real sessions' wallet folder, or `None` after saying plainly that `test` is skipped.
pub fn real_sessions(test: &str) -> Option<PathBuf> {
    let dir = shared_dir().join("real-sessions").join(REAL_WALLET);
    if dir.is_dir() {
        return Some(dir);
    }
    let message = format!(
        "{} not found (set SD_SHARED_DIR to the folder holding real-sessions/)",
        dir.display()
    );
    if std::env::var_os("SD_REQUIRE_REAL_SESSIONS").is_some_and(|v| v == "1") {
        panic!("{test}: {message}, and SD_REQUIRE_REAL_SESSIONS=1");
    }
    // Straight to the process's stderr: libtest captures `eprintln!`, not this.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {message}");
    None
}

/// The Python of the export readers' venv (`scripts/readers.sh`: `lerobot`, `webdataset`, and
/// with them pyarrow, pandas and PyAV), or `None` after saying plainly that `test` is skipped;
/// with `SD_REQUIRE_READERS=1` (CI sets it) their absence is a failure instead.
pub fn readers_python(test: &str) -> Option<PathBuf> {
    let script = workspace_root().join("scripts").join("readers.sh");
    let output = Command::new("bash").arg(&script).arg("python").output();
    if let Ok(output) = output {
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    let message = "the Python readers are not installed: run `scripts/readers.sh install`";
    if std::env::var_os("SD_REQUIRE_READERS").is_some_and(|v| v == "1") {
        panic!("{test}: {message}, and SD_REQUIRE_READERS=1");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {message}");
    None
}

/// A port of 127.0.0.1 free a moment ago, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

/// Prints a measured figure where it is always seen: the process's stderr, past libtest's capture,
/// so that `./test.sh` and CI show it on every run.
pub fn report_figure(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A temporary folder that lives as long as the test.
#[derive(Debug)]
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new(test: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("sd-{test}-"))
            .tempdir()
            .expect("create temp dir");
        Self { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Copies every part of `session_id` from `from` into `self/<folder>`, returning that folder.
    pub fn copy_session(&self, from: &Path, session_id: &str, folder: &str) -> PathBuf {
        let to = self.path().join(folder);
        std::fs::create_dir_all(&to).expect("create bundle folder");
        let mut copied = 0;
        for entry in std::fs::read_dir(from).expect("read session folder") {
            let entry = entry.expect("read entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(session_id) {
                std::fs::copy(entry.path(), to.join(&name)).expect("copy part");
                copied += 1;
            }
        }
        assert!(copied > 0, "no parts of {session_id} in {}", from.display());
        to
    }
}

/// The one file in `folder` whose name ends with `suffix`.
pub fn part_path(folder: &Path, suffix: &str) -> PathBuf {
    let matches: Vec<PathBuf> = std::fs::read_dir(folder)
        .expect("read folder")
        .map(|entry| entry.expect("read entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "parts ending {suffix} in {}",
        folder.display()
    );
    matches.into_iter().next().expect("one match")
}

/// Rewrites a JSON part through `edit`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(path).expect("read json");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("parse json");
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec(&value).expect("serialise")).expect("write json");
}

/// Re-encodes `input` to VP8 WebM at `output` with ffmpeg as a cheat would (fast settings), with
/// `before_input` (`-ss 2`) and `args` (`-b:v`, `-vf`, `-r`). Panics when ffmpeg fails: a test
/// helper (`scripts/install-deps.sh` installs ffmpeg).
pub fn ffmpeg_reencode(input: &Path, output: &Path, before_input: &[&str], args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-loglevel", "error"])
        .args(before_input)
        .arg("-i")
        .arg(input)
        .args(args)
        .args([
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-an",
        ])
        .args(["-f", "webm"])
        .arg(output)
        .status()
        .expect("ffmpeg runs (scripts/install-deps.sh installs it)");
    assert!(status.success(), "ffmpeg {args:?} on {}", input.display());
}

/// Runs the binary at `bin` with `args`, returning its output.
///
/// The end-to-end tests are a test target of the `scale-diffusion` package, so cargo builds the
/// binary before them and hands its path over as `CARGO_BIN_EXE_scale-diffusion`.
pub fn run(bin: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(bin);
    command.args(args).env("RUST_LOG", "warn");
    without_otel(&mut command)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()))
}

/// Clears every `OTEL_*` variable the test's own environment may hold, so that a binary under
/// test traces only where its test says (a developer's shell may point at a real collector).
pub fn without_otel(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// Stdout as text, with stderr attached to the panic message when the status is not `expected`.
pub fn stdout_with_status(output: &Output, expected: i32) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(expected),
        "unexpected exit status\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}
