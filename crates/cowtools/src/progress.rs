//! Progress bars on stderr, shown only when stderr is a terminal and the tool
//! is not quiet.

use std::io::IsTerminal;
use std::path::Path;

use cowfmt::progress::Progress;
use cowfmt::store::migrate::{MigrateObserver, Phase};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over `total` steps labelled `what`, hidden when stderr is not
/// a terminal or `quiet` is set.
pub fn bar(total: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {percent:>3}% {human_pos}/{human_len} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A counter of `unit`s with no known total, labelled `what`, hidden when stderr
/// is not a terminal or `quiet` is set. Advance it with `set_position`.
pub fn counter(what: &str, unit: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = format!("{{msg:>12}} {{spinner}} {{human_pos}} {unit} ({{elapsed}})");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs `job` with a [`cowfmt::progress::Progress`] callback that moves `bar`
/// (setting its length whenever the job tells a total), then clears the bar.
pub fn show<T>(bar: ProgressBar, job: impl FnOnce(&mut Progress) -> T) -> T {
    let result = job(&mut |done, total| {
        if total > 0 && bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result
}

/// Records between two updates of a [`RecordCounter`].
const RECORD_STEP: u64 = 1 << 16;

/// A record counter on stderr for a dump, shown only when the dump does not
/// go to the terminal.
pub struct RecordCounter {
    bar: ProgressBar,
}

impl RecordCounter {
    /// A counter labelled `what`, hidden when `quiet`, or when the dump goes
    /// to stdout (not `to_file`) and stdout is a terminal.
    pub fn new(what: &str, quiet: bool, to_file: bool) -> Self {
        let to_terminal = !to_file && std::io::stdout().is_terminal();
        RecordCounter {
            bar: counter(what, "records", quiet || to_terminal),
        }
    }

    /// Shows `count` records done (every 65536).
    #[inline]
    pub fn tick(&self, count: u64) {
        if count.is_multiple_of(RECORD_STEP) {
            self.bar.set_position(count);
        }
    }

    /// Clears the counter.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The progress bars and notes of a migration on stderr: a bar per phase
/// (a counter of tree blocks while a shared output is verified), and the
/// note that `--force` overwrote an output.
pub struct MigrateBars {
    tool: &'static str,
    quiet: bool,
    bar: ProgressBar,
}

impl MigrateBars {
    /// Bars for `tool`, hidden when `quiet` or stderr is not a terminal.
    pub fn new(tool: &'static str, quiet: bool) -> Self {
        MigrateBars {
            tool,
            quiet,
            bar: ProgressBar::hidden(),
        }
    }
}

impl MigrateObserver for MigrateBars {
    fn start(&mut self, phase: Phase, total: u64) {
        self.bar = match phase {
            Phase::Counting => bar(total, "counting", self.quiet),
            Phase::Copying => bar(total, "copying", self.quiet),
            Phase::Verifying { shared: true } => counter("verifying", "tree blocks", self.quiet),
            Phase::Verifying { shared: false } => bar(total, "verifying", self.quiet),
        };
    }

    fn advance(&mut self, done: u64, total: u64) {
        if total > 0 && self.bar.length() != Some(total) {
            self.bar.set_length(total);
        }
        self.bar.set_position(done);
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }

    fn overwritten(&mut self, path: &Path, what: &str) {
        crate::output::say_overwritten(self.tool, path, Some(what));
    }
}

/// One progress bar per pass of a job that writes in passes (mkcow's
/// restores).
pub struct PassBars {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl PassBars {
    /// No bar yet; `quiet` hides them all.
    pub fn new(quiet: bool) -> Self {
        PassBars { bar: None, quiet }
    }
}

impl cowfmt::store::create::PassProgress for PassBars {
    fn start(&mut self, what: &'static str, total: u64) {
        self.bar = Some(bar(total, what, self.quiet));
    }

    fn at(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
