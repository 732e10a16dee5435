//! `scale-diffusion report`: the page renders in Debian's Chromium (headless) with no console
//! error and every section present.

use std::path::{Path, PathBuf};
use std::process::Command;

use sd_fixtures::{write_bundle, Naming, SyntheticSpec};
use sd_tests::{real_sessions, report_figure, stdout_with_status, Dir, REAL_WALLET};

use crate::run;

/// Debian's Chromium, or `None` after saying plainly that `test` is skipped
/// (`SD_REQUIRE_BROWSER=1`, set by `.ci/run`, makes its absence a failure).
fn chromium(test: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("SD_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
        panic!("{test}: /usr/bin/chromium not found, and SD_REQUIRE_BROWSER=1");
    }
    report_figure(&format!(
        "SKIPPED {test}: /usr/bin/chromium not found (scripts/install-deps.sh --browser installs it)"
    ));
    None
}

/// What Chromium made of a page: its DOM after loading, and the console messages it logged.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

fn render(chromium: &Path, page: &Path, screenshot: &Path, profile: &Path) -> Rendered {
    let url = format!("file://{}", page.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--log-level=0",
        "--hide-scrollbars",
        "--window-size=1200,2400",
    ];
    let dump = Command::new(chromium)
        .args(base)
        .arg(format!("--user-data-dir={}", profile.join("dom").display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    let shot = Command::new(chromium)
        .args(base)
        .arg(format!(
            "--user-data-dir={}",
            profile.join("shot").display()
        ))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    let console = [&dump.stderr, &shot.stderr]
        .iter()
        .flat_map(|stderr| {
            String::from_utf8_lossy(stderr)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.contains("CONSOLE"))
        .collect();
    Rendered {
        dom: String::from_utf8_lossy(&dump.stdout).into_owned(),
        console,
    }
}

#[test]
fn report_renders_in_chromium_with_every_section_and_no_console_error() {
    let Some(chromium) =
        chromium("report_renders_in_chromium_with_every_section_and_no_console_error")
    else {
        return;
    };
    let dir = Dir::new("report_chromium");
    // The checker itself must be able to fail: a page that logs an error is caught.
    let broken = dir.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><script>console.error('boom')</script>",
    )
    .expect("write");
    let caught = render(
        &chromium,
        &broken,
        &dir.path().join("broken.png"),
        &dir.path().join("p0"),
    );
    assert!(
        caught.console.iter().any(|l| l.contains("boom")),
        "console errors are not seen: {:?}",
        caught.console
    );

    let mut pages = Vec::new();
    let mut spec = SyntheticSpec::constant_rate(12.0, 10.0);
    spec.wallet = REAL_WALLET.to_owned();
    let synthetic = dir.path().join("synthetic").join(REAL_WALLET);
    let written = write_bundle(&synthetic, &spec, Naming::UploadEpoch).expect("bundle");
    std::fs::remove_file(&written.truth).expect("drop truth");
    pages.push(("synthetic", synthetic, None));
    if let Some(real) = real_sessions("report_renders_in_chromium (real session)") {
        pages.push(("tp5owb", real.clone(), Some("session_1769936388223_tp5owb")));
        pages.push(("832oey", real, Some("session_1769938990243_832oey")));
    }
    for (name, bundle, session) in pages {
        let page = dir.path().join(format!("{name}.html"));
        let mut args = vec![
            "report".to_owned(),
            bundle.display().to_string(),
            "--out".into(),
            page.display().to_string(),
        ];
        if let Some(session) = session {
            args.extend(["--session".to_owned(), session.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        stdout_with_status(&run(&args), 0);
        let size = std::fs::metadata(&page).expect("page").len();
        assert!(size < 4_000_000, "{name}: {size} bytes, over a few MB");
        let screenshot = dir.path().join(format!("{name}.png"));
        let rendered = render(&chromium, &page, &screenshot, &dir.path().join(name));
        assert!(
            rendered.console.is_empty(),
            "{name}: {:?}",
            rendered.console
        );
        let sections: &[&str] = if name == "832oey" {
            &["id=\"reject\""]
        } else {
            &[
                "id=\"timeline\"",
                "id=\"clock\"",
                "id=\"segments\"",
                "id=\"metrics\"",
                "<img",
            ]
        };
        for section in sections {
            assert!(
                rendered.dom.contains(section),
                "{name}: no {section} in the rendered page"
            );
        }
        let shot = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
        assert!(shot > 10_000, "{name}: no screenshot ({shot} bytes)");
        report_figure(&format!(
            "report {name}: {} KB page, rendered by Chromium with no console message, screenshot {} KB",
            size / 1024,
            shot / 1024
        ));
    }
}
