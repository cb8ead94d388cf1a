//! What the operator sees besides the plan: colour, progress, the prompt,
//! call statistics.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use kfp_tenant_core::address::Address;
use kfp_tenant_core::apply::{Outcome, Progress, Report};
use kfp_tenant_core::plan::Action;
use kfp_tenant_core::render::Color;

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

/// Per-resource progress lines on stderr, Terraform's wording.
#[derive(Debug)]
pub struct StderrProgress;

fn verbs(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("Creating...", "Creation complete"),
        Action::Update => ("Modifying...", "Modifications complete"),
        Action::Replace => ("Replacing...", "Replacement complete"),
        Action::Delete => ("Destroying...", "Destruction complete"),
        Action::NoOp => ("Reading...", "Read complete"),
    }
}

impl Progress for StderrProgress {
    fn started(&self, address: &Address, action: Action) {
        eprintln!("{address}: {}", verbs(action).0);
    }

    fn finished(&self, address: &Address, action: Action, outcome: &Outcome, elapsed: Duration) {
        match outcome {
            Outcome::Done => eprintln!("{address}: {} after {:.1}s", verbs(action).1, elapsed.as_secs_f64()),
            Outcome::Failed { error } => eprintln!("{address}: failed after {:.1}s: {error}", elapsed.as_secs_f64()),
            Outcome::Skipped { because } => eprintln!("{address}: skipped, because {because} failed"),
        }
    }
}

/// Asks for `yes` on a terminal; without one, refuses instead of waiting.
pub fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question}: stdin is not a terminal, so nobody can answer; review the plan and pass --auto-approve, or apply a saved plan");
    }
    print!("\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The closing line of apply or destroy, and whether everything succeeded.
pub fn summarize(report: &Report, destroying: bool) -> bool {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (action, outcome) in report.outcomes.values() {
        if *outcome == Outcome::Done {
            match action {
                Action::Create => *counts.entry("added").or_default() += 1,
                Action::Update => *counts.entry("changed").or_default() += 1,
                Action::Replace => {
                    *counts.entry("added").or_default() += 1;
                    *counts.entry("destroyed").or_default() += 1;
                }
                Action::Delete => *counts.entry("destroyed").or_default() += 1,
                Action::NoOp => {}
            }
        }
    }
    let n = |k| counts.get(k).copied().unwrap_or(0);
    if report.is_success() {
        if destroying {
            println!("\nDestroy complete! Resources: {} destroyed.", n("destroyed"));
        } else {
            println!("\nApply complete! Resources: {} added, {} changed, {} destroyed.", n("added"), n("changed"), n("destroyed"));
        }
        return true;
    }
    eprintln!(
        "\nError: {} failed, {} skipped; the rest was applied ({} added, {} changed, {} destroyed).",
        report.failed(),
        report.skipped(),
        n("added"),
        n("changed"),
        n("destroyed")
    );
    for (address, (_, outcome)) in &report.outcomes {
        if let Outcome::Failed { error } = outcome {
            eprintln!("  - {address}: {error}");
        }
    }
    eprintln!("Run the same command again to finish: kfp-tenant only does what is still missing.");
    false
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
    eprintln!("API calls: AWS {}; Kubernetes {}", line(aws), line(kubernetes));
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

#[cfg(test)]
mod tests {
    use super::*;

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
