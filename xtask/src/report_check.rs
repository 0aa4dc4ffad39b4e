//! `cargo xtask report-check`: open a run's report.html in headless Chromium (Debian's
//! `chromium`, driven by Playwright's `playwright-core` from npm, installed under
//! target/report-check), fail on console errors, page errors, failed requests, pictures that do
//! not load or lack alt text, ids used twice and links to missing anchors, and save a full-page
//! screenshot. Without `--run` it first makes a
//! small run (Fashion-MNIST's format, raw pixels, a few hundred examples) with `fit`, `fit
//! interpret` and `fit debug`, so CI checks the report the code makes today.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{build_fit, root, run};

/// Pinned so the check does not change under the project's feet.
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.1";

#[derive(Args)]
pub struct ReportCheckArgs {
    /// A run folder with report.html (default: make a small run into runs/report-check).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Where to save the screenshot (default: RUN/report-screenshot.png).
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// The Chromium binary (default: $CHROMIUM or /usr/bin/chromium).
    #[arg(long)]
    chromium: Option<PathBuf>,
}

const SCRIPT: &str = r##"
// Usage: node check.mjs REPORT.html SCREENSHOT.png CHROMIUM
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
const [report, shot, exe] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: exe,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
page.on('pageerror', e => problems.push(`page error: ${e.message}`));
page.on('requestfailed', r => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });
const facts = await page.evaluate(() => {
  const imgs = [...document.images];
  return {
    title: document.title,
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    noAlt: imgs.filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.getAttribute('src')),
    sections: [...document.querySelectorAll('section h2')].map(h => h.textContent),
    duplicateIds: (() => {
      const seen = new Map();
      for (const e of document.querySelectorAll('[id]')) seen.set(e.id, (seen.get(e.id) || 0) + 1);
      return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    })(),
    brokenLinks: [...document.querySelectorAll('a[href^="#"]')]
      .map(a => a.getAttribute('href').slice(1))
      .filter(id => !document.getElementById(id)),
    height: document.body.scrollHeight,
  };
});
for (const s of facts.broken) problems.push(`picture does not load: ${s}`);
for (const s of facts.noAlt) problems.push(`picture without alt text: ${s}`);
for (const s of facts.duplicateIds) problems.push(`id used more than once: ${s}`);
for (const s of facts.brokenLinks) problems.push(`link to a missing anchor: #${s}`);
await page.screenshot({ path: shot, fullPage: true });
await browser.close();
console.log(JSON.stringify({ ...facts, problems }, null, 1));
process.exit(problems.length ? 1 : 0);
"##;

fn chromium(arg: Option<PathBuf>) -> Result<PathBuf> {
    let exe = arg
        .or_else(|| std::env::var_os("CHROMIUM").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !exe.is_file() {
        bail!(
            "{} not found: install Debian's chromium (`apt-get install chromium`) or pass --chromium",
            exe.display()
        );
    }
    Ok(exe)
}

/// playwright-core in target/report-check (npm, once), and the check script beside it.
fn checker() -> Result<PathBuf> {
    let dir = root().join("target/report-check");
    std::fs::create_dir_all(&dir)?;
    if !dir.join("node_modules/playwright-core/package.json").is_file() {
        eprintln!(
            "report-check: installing {PLAYWRIGHT_CORE} from npm into {}",
            dir.display()
        );
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund", "--no-save", "--prefix"])
            .arg(&dir)
            .arg(PLAYWRIGHT_CORE))
        .context("npm install playwright-core (needs node and npm)")?;
    }
    let script = dir.join("check.mjs");
    std::fs::write(&script, SCRIPT)?;
    Ok(script)
}

/// A small but complete run: raw-pixel features of a Fashion-MNIST subset, then the report.
fn small_run(out: &Path) -> Result<()> {
    crate::fetch::fetch_all()?;
    let fit = build_fit("flex")?;
    run(Command::new(&fit)
        .current_dir(root())
        .args([
            "--dataset",
            "fashion-mnist",
            "--arch",
            "pixels",
            "--max-examples",
            "400",
            "--k",
            "30",
            "-q",
        ])
        .arg("--out-path")
        .arg(out))?;
    run(Command::new(&fit)
        .current_dir(root())
        .args([
            "interpret",
            "-q",
            "--segments",
            "12",
            "--lime-samples",
            "64",
            "--run",
        ])
        .arg(out))?;
    run(Command::new(&fit)
        .current_dir(root())
        .args(["debug", "-q", "--run"])
        .arg(out))
}

pub fn report_check(args: ReportCheckArgs) -> Result<()> {
    let exe = chromium(args.chromium)?;
    let run_dir = match args.run {
        Some(r) => r,
        None => {
            let out = root().join("runs/report-check");
            small_run(&out)?;
            out
        }
    };
    let report = std::fs::canonicalize(run_dir.join("report.html")).with_context(|| {
        format!(
            "{} has no report.html: run `fit interpret --run` first",
            run_dir.display()
        )
    })?;
    let shot = args
        .screenshot
        .unwrap_or_else(|| run_dir.join("report-screenshot.png"));
    let script = checker()?;
    let out = Command::new("node")
        .current_dir(script.parent().expect("in a folder"))
        .arg(&script)
        .arg(&report)
        .arg(std::path::absolute(&shot)?)
        .arg(&exe)
        .output()
        .context("cannot run node")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!(
            "{} has problems in headless Chromium (listed above)",
            report.display()
        );
    }
    println!(
        "report-check: {} opens cleanly; screenshot {}",
        report.display(),
        shot.display()
    );
    Ok(())
}
