//! moto, the S3+SQS emulator, in server mode on a free port of 127.0.0.1 (`scripts/moto.sh`), for
//! the tests that talk to a bucket and a queue.
//!
//! When moto is not installed (`scripts/moto.sh install`, which `./test.sh` runs) a test prints
//! `SKIPPED` and returns; with `SD_REQUIRE_EMULATOR=1` (CI sets it) that is a failure instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{free_port, workspace_root};

/// A moto server, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    /// Its log and pid file.
    pub dir: PathBuf,
    pub pid: u32,
}

impl Moto {
    /// Starts moto with its files in `dir/moto`, or answers `None` after saying plainly that
    /// `test` is skipped.
    pub fn start(test: &str, dir: &Path) -> Option<Self> {
        let script = workspace_root().join("scripts").join("moto.sh");
        let installed = Command::new("bash")
            .arg(&script)
            .arg("check")
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let message =
                "moto (the S3+SQS emulator) is not installed: run `scripts/moto.sh install`";
            if std::env::var_os("SD_REQUIRE_EMULATOR").is_some_and(|v| v == "1") {
                panic!("{test}: {message}, and SD_REQUIRE_EMULATOR=1");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {message}");
            return None;
        }
        let port = free_port();
        let dir = dir.join("moto");
        std::fs::create_dir_all(&dir).expect("moto dir");
        let started = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(port.to_string())
            .arg(&dir)
            .output()
            .expect("run moto.sh start");
        assert!(
            started.status.success(),
            "moto did not start: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        let pid = std::fs::read_to_string(dir.join("moto.pid"))
            .expect("moto.pid")
            .trim()
            .parse()
            .expect("pid");
        Some(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            pid,
        })
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the emulator: requests hang meanwhile.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The AWS SDK's environment for this emulator (any credentials: moto checks none).
    pub fn sdk_env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.pid.to_string())
            .status();
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts").join("moto.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
