//! What the operator sees besides the plan: colour, progress, the prompt,
//! call statistics, and writing that survives a closed pipe.
//!
//! Nothing here panics on an output error. stdout errors come back to the
//! caller ([`out`]); `main` ends quietly with 0 on a closed pipe, as ripgrep
//! does when a pager stops reading. stderr errors are ignored ([`note!`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use kfp_tenant_core::address::Address;
use kfp_tenant_core::apply::{Outcome, Progress, Report};
use kfp_tenant_core::plan::{Action, Mode, Summary};
use kfp_tenant_core::render::Color;

/// Writes `text` to stdout as it is.
pub fn out(text: impl fmt::Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{text}")?;
    stdout.flush()
}

/// Writes a line to stderr; a closed stderr is not worth failing for.
pub fn note_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// `eprintln!` that never panics.
macro_rules! note {
    () => { $crate::output::note_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::note_line(format_args!($($arg)*)) };
}
pub(crate) use note;

/// `println!` into [`out`].
macro_rules! say {
    () => { $crate::output::out("\n") };
    ($($arg:tt)*) => { $crate::output::out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use say;

/// Whether an error is stdout's reader going away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Colour only on a terminal, never with NO_COLOR or --no-color.
pub fn color(stream_is_terminal: bool, no_color_flag: bool) -> Color {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if stream_is_terminal && !no_color_env && !no_color_flag { Color::Always } else { Color::Never }
}

pub fn stdout_color(no_color_flag: bool) -> Color {
    color(std::io::stdout().is_terminal(), no_color_flag)
}

/// `RUST_LOG` wins; otherwise -v is debug and -vv trace for kfp-tenant's crates.
pub fn init_logging(verbose: u8) {
    // Libraries' own error logs repeat what kfp-tenant reports once, better.
    let default = match verbose {
        0 => "off,kfp_tenant=warn,kfp_tenant_core=warn,kfp_tenant_aws=warn,kfp_tenant_k8s=warn",
        1 => "warn,kfp_tenant=debug,kfp_tenant_core=debug,kfp_tenant_aws=debug,kfp_tenant_k8s=debug",
        _ => "debug,kfp_tenant=trace,kfp_tenant_core=trace,kfp_tenant_aws=trace,kfp_tenant_k8s=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color(std::io::stderr().is_terminal(), false) == Color::Always)
        .try_init();
}

/// Apply's progress on stderr: a line per resource in Terraform's wording,
/// under a live line (done/total, failures, ETA) on a terminal; plain lines
/// without one (no control characters); or one JSON event per line.
#[derive(Debug)]
pub struct ApplyProgress {
    bar: Option<indicatif::ProgressBar>,
    json: bool,
    failed: std::sync::atomic::AtomicUsize,
}

impl ApplyProgress {
    /// For `total` changes, in `style`.
    pub fn new(style: crate::request::ProgressStyle, total: usize) -> Self {
        use crate::request::ProgressStyle;
        let bar = (style == ProgressStyle::Auto && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} changes, {msg}, {elapsed} elapsed, ETA {eta}")
                .expect("invariant: the template is valid");
            bar.set_style(style);
            bar.set_message("0 failed");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        ApplyProgress { bar, json: style == ProgressStyle::Json, failed: Default::default() }
    }

    fn line(&self, text: fmt::Arguments<'_>) {
        match &self.bar {
            Some(bar) => bar.println(text.to_string()),
            None => note_line(text),
        }
    }

    fn event(&self, event: serde_json::Value) {
        note!("{event}");
    }

    /// Takes the live line away, leaving the per-resource lines.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn verbs(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("Creating...", "Creation complete"),
        Action::Update => ("Modifying...", "Modifications complete"),
        Action::Replace => ("Replacing...", "Replacement complete"),
        Action::Delete => ("Destroying...", "Destruction complete"),
        Action::NoOp => ("Reading...", "Read complete"),
    }
}

impl Progress for ApplyProgress {
    fn started(&self, address: &Address, action: Action) {
        if self.json {
            return self.event(serde_json::json!({"event": "started", "address": address, "action": action}));
        }
        self.line(format_args!("{address}: {}", verbs(action).0));
    }

    fn finished(&self, address: &Address, action: Action, outcome: &Outcome, elapsed: Duration) {
        if matches!(outcome, Outcome::Failed { .. } | Outcome::Skipped { .. }) {
            let failed = self.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Some(bar) = &self.bar {
                bar.set_message(format!("{failed} failed or skipped"));
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if self.json {
            let mut event =
                serde_json::json!({"event": "finished", "address": address, "action": action, "elapsed_seconds": elapsed.as_secs_f64()});
            if let (Some(map), Ok(serde_json::Value::Object(o))) = (event.as_object_mut(), serde_json::to_value(outcome)) {
                map.extend(o);
            }
            return self.event(event);
        }
        match outcome {
            Outcome::Done => self.line(format_args!("{address}: {} after {:.1}s", verbs(action).1, elapsed.as_secs_f64())),
            Outcome::Failed { error, .. } => self.line(format_args!("{address}: failed after {:.1}s: {error}", elapsed.as_secs_f64())),
            Outcome::Skipped { because } => self.line(format_args!("{address}: skipped, because {because} failed")),
            Outcome::NotStarted | Outcome::Interrupted => {}
        }
    }
}

/// Asks for `yes` on a terminal; without one, refuses instead of waiting.
pub fn confirm(question: &str, approve_flag: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question}: stdin is not a terminal, so nobody can answer; review what is shown and pass {approve_flag}");
    }
    out(format_args!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "))?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The closing lines of apply or destroy (by the plan's mode), and whether everything succeeded.
pub fn summarize(report: &Report, mode: Mode) -> bool {
    let done = Summary::of(report.outcomes.values().filter(|(_, outcome)| *outcome == Outcome::Done).map(|(action, _)| *action));
    if report.is_success() {
        // The summary is the record of what happened: a closed stdout does not undo it.
        let _ = if mode == Mode::Destroy {
            say!("\nDestroy complete! Resources: {} destroyed.", done.destroy)
        } else {
            say!("\nApply complete! Resources: {} added, {} changed, {} destroyed.", done.add, done.change, done.destroy)
        };
        return true;
    }
    let done = format!("{} added, {} changed, {} destroyed", done.add, done.change, done.destroy);
    if report.interrupted() > 0 {
        note!("\nInterrupted: {done}; {} not started, {} cut short, {} failed.", not_started(report), cut_short(report), report.failed());
    } else {
        note!("\nError: {} failed, {} skipped; the rest was applied ({done}).", report.failed(), report.skipped());
    }
    for (address, (_, outcome)) in &report.outcomes {
        match outcome {
            Outcome::Failed { error, .. } => note!("  - {address}: {error}"),
            Outcome::NotStarted => note!("  - {address}: not started"),
            Outcome::Interrupted => note!("  - {address}: cut short by the interrupt; it may or may not have taken effect"),
            Outcome::Done | Outcome::Skipped { .. } => {}
        }
    }
    note!("Run the same command again to finish: kfp-tenant only does what is still missing.");
    false
}

fn not_started(report: &Report) -> usize {
    report.outcomes.values().filter(|(_, o)| *o == Outcome::NotStarted).count()
}

fn cut_short(report: &Report) -> usize {
    report.outcomes.values().filter(|(_, o)| *o == Outcome::Interrupted).count()
}

/// `--stats`: API calls per operation.
pub fn print_stats(aws: &BTreeMap<String, u64>, kubernetes: &BTreeMap<String, u64>) {
    let line = |calls: &BTreeMap<String, u64>| {
        if calls.is_empty() {
            "none".to_owned()
        } else {
            let total: u64 = calls.values().sum();
            let parts: Vec<String> = calls.iter().map(|(op, n)| format!("{op}={n}")).collect();
            format!("{total} ({})", parts.join(", "))
        }
    };
    note!("API calls: AWS {}; Kubernetes {}", line(aws), line(kubernetes));
}

/// `30s`, `5m`, `1h`, `90` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration; use e.g. 30s, 5m or 1h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("{text:?} has an unknown unit; use s, m or h")),
    }
}

/// A duration of at least a second, for what repeats (a resync, a Lease):
/// zero would spin.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{:?} is too short: at least 1s", text.trim()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_durations() {
        assert_eq!(parse_positive_duration("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_positive_duration("0s").unwrap_err().contains("at least 1s"));
        assert!(parse_positive_duration("500ms").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn colour_only_on_a_terminal_and_not_when_asked_not_to() {
        assert_eq!(color(false, false), Color::Never);
        assert_eq!(color(true, true), Color::Never);
    }
}
