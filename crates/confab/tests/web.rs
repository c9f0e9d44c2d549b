//! The web client's browser tests (web/tests, Node + Debian's chromium through playwright-core),
//! run against this build of the binary. They need `/usr/bin/chromium` and `web/node_modules`
//! (`.ci/run` installs both); without them this test prints why it skipped, unless
//! CONFAB_TEST_BROWSER=1 says they must run.

use std::path::Path;
use std::process::Command;

#[test]
fn the_web_client_passes_its_browser_tests() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (apt-get install chromium)"));
    }
    if !web.join("node_modules/playwright-core").exists() {
        missing.push("web/node_modules (cd web && npm ci)".to_owned());
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".to_owned());
    }
    if !missing.is_empty() {
        let required = std::env::var("CONFAB_TEST_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CONFAB_TEST_BROWSER=1 but missing: {}",
            missing.join(", ")
        );
        eprintln!("skipped the browser tests: missing {}", missing.join(", "));
        return;
    }
    let status = Command::new("bash")
        .arg(web.join("e2e.sh"))
        .env("CONFAB_BIN", env!("CARGO_BIN_EXE_confab"))
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "web/e2e.sh failed: see its output above and web/test-results/"
    );
}
