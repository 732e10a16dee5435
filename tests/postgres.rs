//! PostgreSQL for the ledger's tests: a throwaway cluster on a free port of 127.0.0.1
//! (`scripts/postgres.sh`), one database per test, and `psql` to talk to it.
//!
//! When PostgreSQL is not installed (`scripts/install-deps.sh` installs it) a test prints
//! `SKIPPED` and returns; with `SD_REQUIRE_POSTGRES=1` (CI sets it) that is a failure instead.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{free_port, workspace_root};

/// A running cluster in a folder of its own, stopped and removed when dropped (in that order:
/// the folder outlives the server).
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    /// Its data, socket and log.
    pub dir: PathBuf,
    _folder: tempfile::TempDir,
}

/// The outcome of one `psql` call.
#[derive(Debug)]
pub struct Psql {
    pub ok: bool,
    /// Rows, one per line, columns separated by `|` (`psql -At`).
    pub stdout: String,
    pub stderr: String,
}

impl Postgres {
    /// Starts a cluster in a new folder right under the system's temporary folder (as root, the
    /// `postgres` user must reach it), or answers `None` after saying plainly that `test` is
    /// skipped.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, false)
    }

    /// [`Postgres::start`], with `fsync` on when `durable` (a benchmark that compares with
    /// SQLite's `synchronous=FULL`); the tests run without it.
    pub fn start_with(test: &str, durable: bool) -> Option<Self> {
        Self::start_in(test, durable, None)
    }

    /// [`Postgres::start`] with TLS on, serving `certificate` (PEM) with its `key`.
    pub fn start_tls(test: &str, certificate: &[u8], key: &[u8]) -> Option<Self> {
        Self::start_in(test, false, Some((certificate, key)))
    }

    fn start_in(test: &str, durable: bool, tls: Option<(&[u8], &[u8])>) -> Option<Self> {
        if !script(&["check"]).status.success() {
            let message = "PostgreSQL is not installed: run `scripts/install-deps.sh`";
            if std::env::var_os("SD_REQUIRE_POSTGRES").is_some_and(|v| v == "1") {
                panic!("{test}: {message}, and SD_REQUIRE_POSTGRES=1");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {message}");
            return None;
        }
        let folder = tempfile::Builder::new()
            .prefix("sd-postgres-")
            .tempdir()
            .expect("a folder for the cluster");
        let dir = folder.path().to_path_buf();
        if let Some((certificate, key)) = tls {
            std::fs::create_dir_all(dir.join("tls")).expect("a folder for TLS");
            std::fs::write(dir.join("tls/server.crt"), certificate).expect("the certificate");
            std::fs::write(dir.join("tls/server.key"), key).expect("the key");
        }
        // The port is free when picked, and may be taken before the server binds it: another
        // port, up to three times.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let fsync = if durable { "on" } else { "off" };
            let started = script_with(
                &["start", &port.to_string(), &dir.display().to_string()],
                fsync,
            );
            if started.status.success() {
                return Some(Self {
                    port,
                    dir,
                    _folder: folder,
                });
            }
            failures.push(String::from_utf8_lossy(&started.stderr).into_owned());
        }
        panic!("PostgreSQL did not start: {}", failures.join("\n"));
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database (a fresh one per test keeps tests apart).
    pub fn create_database(&self, database: &str) {
        let created = self.psql("postgres", &format!("CREATE DATABASE \"{database}\""));
        assert!(created.ok, "CREATE DATABASE {database}: {}", created.stderr);
    }

    /// Runs `sql` (one or more statements, stopping at the first error) in `database`.
    pub fn psql(&self, database: &str, sql: &str) -> Psql {
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .output()
            .expect("run psql");
        Psql {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stops the cluster (fast shutdown: connections are cut), for a test of an outage.
    pub fn stop(&self) {
        let stopped = script(&["stop", &self.dir.display().to_string()]);
        assert!(stopped.status.success(), "PostgreSQL did not stop");
    }

    /// Starts a stopped cluster again on its port.
    pub fn restart(&self) {
        let started = script(&["restart", &self.dir.display().to_string()]);
        assert!(
            started.status.success(),
            "PostgreSQL did not restart: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A cluster a test already stopped answers an error here, which is fine; one still
        // running that will not stop is said (it would outlive its folder for a while).
        if self.dir.join("data/postmaster.pid").exists()
            && !script(&["stop", &self.dir.display().to_string()])
                .status
                .success()
        {
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL in {} did not stop",
                self.dir.display()
            );
        }
    }
}

fn script(args: &[&str]) -> Output {
    script_with(args, "off")
}

fn script_with(args: &[&str], fsync: &str) -> Output {
    Command::new("bash")
        .arg(workspace_root().join("scripts").join("postgres.sh"))
        .args(args)
        .env("SD_POSTGRES_FSYNC", fsync)
        .output()
        .expect("run scripts/postgres.sh")
}
