//! The progress bar: drawn on standard error for large files read by a person at a terminal,
//! and nowhere else (pipes, tests and small inputs get nothing, not even a hidden bar's
//! escape codes).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this size a file is read too quickly for a bar to be worth drawing.
const THRESHOLD: u64 = 4 * 1024 * 1024;

/// A bar over the bytes of one input, or nothing.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for an input of `size` bytes named `name`, when `enabled` (standard error is a
    /// terminal) and the input is a file large enough.
    pub(crate) fn new(enabled: bool, size: Option<u64>, name: &str) -> Self {
        let bar = size
            .filter(|&size| enabled && size >= THRESHOLD)
            .map(|size| {
                let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(name.to_owned());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
        Self(bar)
    }

    /// Moves the bar to `bytes` read.
    pub(crate) fn set(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(bytes);
        }
    }

    /// Runs `f`, which writes to standard error, with the bar out of its way.
    pub(crate) fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
