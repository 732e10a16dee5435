//! The PostgreSQL ledger over TLS, as RDS requires it: a cluster on 127.0.0.1 serving a
//! certificate of a throwaway CA (made with `openssl`), and the ledger connecting with
//! `sslmode=require` and that CA as `sslrootcert`: encrypted, the server checked, and refused when
//! the server's certificate cannot be checked.

use std::path::Path;
use std::process::Command;

use sd_ledger::{Ledger, LedgerError};
use sd_tests::postgres::Postgres;

/// A CA and a certificate it signed for 127.0.0.1, in `dir`: (ca.crt, server.crt, server.key).
fn certificates(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=sd-ledger test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
    (read("ca.crt"), read("server.crt"), read("server.key"))
}

/// Whether the ledger's connection to `postgres` is encrypted, as the server sees it.
fn ledger_connection_encrypted(postgres: &Postgres) -> Vec<String> {
    let out = postgres.psql(
        "postgres",
        "SELECT s.ssl FROM pg_stat_ssl AS s JOIN pg_stat_activity AS a USING (pid) \
         WHERE a.application_name = 'sd-ledger'",
    );
    assert!(out.ok, "{}", out.stderr);
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn the_ledger_connects_over_tls_and_checks_the_server() {
    let test = "the_ledger_connects_over_tls_and_checks_the_server";
    let dir = tempfile::tempdir().expect("a folder");
    // Before the cluster: without PostgreSQL the test says SKIPPED, not an openssl failure.
    if !Command::new("bash")
        .arg("-c")
        .arg("command -v openssl")
        .status()
        .is_ok_and(|s| s.success())
    {
        panic!("{test}: openssl is not installed (scripts/install-deps.sh installs it)");
    }
    let (ca, certificate, key) = certificates(dir.path());
    let Some(postgres) = Postgres::start_tls(test, &certificate, &key) else {
        return;
    };
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca).expect("the CA");
    let url = postgres.url("postgres");

    // Required and checked against the CA: encrypted.
    let ledger = Ledger::connect(&format!(
        "{url}?sslmode=require&sslrootcert={}",
        ca_file.display()
    ))
    .expect("a TLS connection");
    assert!(ledger.wallet_totals().expect("a query").is_empty());
    assert_eq!(ledger_connection_encrypted(&postgres), ["t"]);
    drop(ledger);

    // A server whose certificate nothing vouches for is refused.
    let err = Ledger::connect(&format!("{url}?sslmode=require")).expect_err("an unknown CA");
    assert!(
        matches!(err, LedgerError::PostgresConnect { .. })
            && err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // A CA file that is not there is said.
    let err = Ledger::connect(&format!(
        "{url}?sslmode=require&sslrootcert=/no/such/ca.pem"
    ))
    .expect_err("no CA file");
    assert!(matches!(err, LedgerError::TlsRoots { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
    // Plain when asked (a local cluster): not encrypted.
    let ledger = Ledger::connect(&format!("{url}?sslmode=disable")).expect("a plain connection");
    assert!(ledger.sessions().expect("a query").is_empty());
    assert_eq!(ledger_connection_encrypted(&postgres), ["f"]);
}
