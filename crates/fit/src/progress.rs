//! Progress of long stages: a bar on a terminal, nothing (or the stage's own log lines) off one.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps named `what`, hidden unless `show`.
pub fn progress_bar(len: usize, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})")
            .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// Progress of a long loop that shows on a terminal as a bar and in a log (stderr not a
/// terminal) as a line every few seconds, so a redirected run still says where it is.
pub struct Progress {
    bar: ProgressBar,
    what: String,
    total: usize,
    log: bool,
    started: std::time::Instant,
    last_line: std::time::Instant,
}

/// Seconds between two progress lines in a log.
const LOG_EVERY_SECONDS: f64 = 5.0;

impl Progress {
    /// `total` steps of `what`; shows nothing unless `show`.
    pub fn new(total: usize, what: &str, show: bool) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let now = std::time::Instant::now();
        Progress {
            bar: progress_bar(total, what, show && terminal),
            what: what.to_string(),
            total,
            log: show && !terminal,
            started: now,
            last_line: now,
        }
    }

    /// `done` of `total` steps are done (for loops that learn their length as they go).
    pub fn set_of(&mut self, done: usize, total: usize) {
        if total != self.total {
            self.total = total;
            self.bar.set_length(total as u64);
        }
        self.set(done);
    }

    /// One more step is done.
    pub fn inc(&mut self) {
        let done = self.bar.position() as usize + 1;
        self.set(done);
    }

    /// `done` of the total steps are done.
    pub fn set(&mut self, done: usize) {
        self.bar.set_position(done as u64);
        if self.log && self.last_line.elapsed().as_secs_f64() >= LOG_EVERY_SECONDS {
            self.last_line = std::time::Instant::now();
            eprintln!(
                "{}: {done}/{} ({:.0} s)",
                self.what,
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    pub fn finish(mut self) {
        self.finish_bar();
    }

    /// Clear the bar (a loop's value that outlives it keeps the value).
    pub fn finish_bar(&mut self) {
        self.bar.finish_and_clear();
    }
}
