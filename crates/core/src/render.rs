//! Plans as people and CI read them: text in Terraform's shape, and a
//! versioned JSON document. Both are deterministic (sorted, no timestamps),
//! which is what lets them be snapshot-tested.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::kinds::Attr;
use crate::plan::{Action, Mode, Plan, ResourceChange, State};
use crate::policy::{StatementChange, diff_statements};

/// Optional ANSI colour for the symbols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Color {
    #[default]
    Never,
    Always,
}

/// The plan as text: a header, one block per change, the summary line.
pub fn plan_text(plan: &Plan, color: Color) -> String {
    let mut out = String::new();
    let c = &plan.cluster;
    let _ = writeln!(out, "Cluster {} ({}), account {}, bucket {}", c.name, c.region, c.account_id, c.bucket);
    let provider = if c.oidc_provider_arn.is_empty() { "none" } else { c.oidc_provider_arn.as_str() };
    let _ = writeln!(out, "OIDC issuer {} (IAM provider {provider})", c.oidc_issuer);
    let _ = writeln!(out);
    for w in &plan.warnings {
        let _ = writeln!(out, "Warning: {w}\n");
    }
    if !plan.has_changes() {
        let what = match plan.mode {
            Mode::Apply => "No changes. The tenants match the account and the cluster.",
            Mode::Destroy => "No changes. None of these tenants exists.",
        };
        let _ = writeln!(out, "{what}");
        return out;
    }
    let _ = writeln!(out, "kfp-tenant will perform the following actions:");
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let _ = writeln!(out);
        block(&mut out, change, color);
    }
    let s = plan.summary();
    let _ = writeln!(out, "\nPlan: {} to add, {} to change, {} to destroy.", s.add, s.change, s.destroy);
    out
}

fn paint(symbol: &str, action: Action, color: Color) -> String {
    if color == Color::Never {
        return symbol.to_owned();
    }
    let code = match action {
        Action::Create => "32",
        Action::Update => "33",
        Action::Replace => "35",
        Action::Delete => "31",
        Action::NoOp => "0",
    };
    format!("\x1b[{code}m{symbol}\x1b[0m")
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Replace => "must be replaced",
        Action::Delete => "will be destroyed",
        Action::NoOp => "is up to date",
    }
}

fn block(out: &mut String, change: &ResourceChange, color: Color) {
    let _ = write!(out, "  # {} {}", change.address, verb(change.action));
    match &change.reason {
        Some(reason) => {
            let _ = writeln!(out, ": {reason}");
        }
        None => out.push('\n'),
    }
    // The loudest consequence of all: say it where the plan deletes it.
    if let (Action::Delete, Some(State::Profile(profile))) = (change.action, &change.before) {
        let _ = writeln!(out, "  # its namespace {} and everything in it (notebooks, volumes, runs) are deleted with it", profile.name);
    }
    let state = change.after.as_ref().or(change.before.as_ref()).expect("invariant: a change has a state");
    let (kind, name) = state.label();
    let symbol = paint(change.action.symbol(), change.action, color);
    let _ = writeln!(out, "{symbol:>3} {kind} {name:?} {{");
    // A create shows everything it will write, a delete everything it removes.
    let before = match change.action {
        Action::Create => Vec::new(),
        _ => change.before.as_ref().map(State::attributes).unwrap_or_default(),
    };
    let after = match change.action {
        Action::Delete => Vec::new(),
        _ => change.after.as_ref().map(State::attributes).unwrap_or_default(),
    };
    let width = before.iter().chain(&after).map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut hidden = 0;
    let keys: Vec<&str> = {
        let mut keys: Vec<&str> = after.iter().map(|(k, _)| *k).collect();
        keys.extend(before.iter().map(|(k, _)| *k).filter(|k| !after.iter().any(|(a, _)| a == k)));
        keys
    };
    for key in keys {
        let old = before.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
        let new = after.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
        match (old, new) {
            (None, Some(v)) => attribute(out, "+", key, width, v, color, Action::Create),
            (Some(v), None) => attribute(out, "-", key, width, v, color, Action::Delete),
            (Some(o), Some(n)) if o == n => hidden += 1,
            (Some(o), Some(n)) => changed(out, key, width, o, n, color),
            (None, None) => {}
        }
    }
    if hidden > 0 {
        let _ = writeln!(out, "        # ({hidden} unchanged attribute{} hidden)", if hidden == 1 { "" } else { "s" });
    }
    let _ = writeln!(out, "    }}");
}

fn show(value: &Attr) -> String {
    match value {
        Attr::Text(s) => format!("{s:?}"),
        Attr::Document(d) => serde_json::to_string_pretty(d.as_json()).unwrap_or_default(),
        Attr::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().enumerate().map(|(i, l)| if i == 0 { l.to_owned() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
}

fn attribute(out: &mut String, sym: &str, key: &str, width: usize, value: &Attr, color: Color, action: Action) {
    let sym = paint(sym, action, color);
    let _ = writeln!(out, "      {sym} {key:<width$} = {}", indent(&show(value), 8));
}

fn changed(out: &mut String, key: &str, width: usize, old: &Attr, new: &Attr, color: Color) {
    let sym = paint("~", Action::Update, color);
    match (old, new) {
        (Attr::Document(o), Attr::Document(n)) => {
            let _ = writeln!(out, "      {sym} {key:<width$} = {{");
            for change in diff_statements(o, n) {
                match change {
                    StatementChange::Added { statement } => {
                        let _ = writeln!(out, "          {} statement {}", paint("+", Action::Create, color), statement);
                    }
                    StatementChange::Removed { statement } => {
                        let _ = writeln!(out, "          {} statement {}", paint("-", Action::Delete, color), statement);
                    }
                    StatementChange::Changed { sid, key, added, removed } => {
                        let which = if sid.is_empty() { String::new() } else { format!("{sid:?} ") };
                        let _ = writeln!(out, "          {sym} statement {which}{key}");
                        for v in added {
                            let _ = writeln!(out, "              {} {v}", paint("+", Action::Create, color));
                        }
                        for v in removed {
                            let _ = writeln!(out, "              {} {v}", paint("-", Action::Delete, color));
                        }
                    }
                }
            }
            let _ = writeln!(out, "        }}");
        }
        (Attr::Json(Value::Object(o)), Attr::Json(Value::Object(n))) => {
            let _ = writeln!(out, "      {sym} {key:<width$} = {{");
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                match (o.get(k), n.get(k)) {
                    (Some(a), Some(b)) if a == b => {}
                    (Some(a), Some(b)) => {
                        let _ = writeln!(out, "          {sym} {k:?} = {a} -> {b}");
                    }
                    (None, Some(b)) => {
                        let _ = writeln!(out, "          {} {k:?} = {b}", paint("+", Action::Create, color));
                    }
                    (Some(a), None) => {
                        let _ = writeln!(out, "          {} {k:?} = {a}", paint("-", Action::Delete, color));
                    }
                    (None, None) => {}
                }
            }
            let _ = writeln!(out, "        }}");
        }
        _ => {
            let _ = writeln!(out, "      {sym} {key:<width$} = {} -> {}", indent(&show(old), 8), indent(&show(new), 8));
        }
    }
}

/// The plan as the `--json` document: versioned, documents as JSON objects.
pub fn plan_json(plan: &Plan) -> Value {
    let summary = plan.summary();
    json!({
        "format_version": plan.format_version,
        "mode": plan.mode,
        "cluster": plan.cluster,
        // A no-op is named, not spelled out: before and after only where
        // something changes.
        "resource_changes": plan.changes.iter().map(|c| match c.action {
            Action::NoOp => json!({"address": c.address.to_string(), "action": c.action}),
            _ => json!({
                "address": c.address.to_string(),
                "namespace": c.address.namespace(),
                "kind": c.address.kind(),
                "action": c.action,
                "reason": c.reason.as_ref().map(ToString::to_string),
                "before": c.before,
                "after": c.after,
            }),
        }).collect::<Vec<_>>(),
        "warnings": plan.warnings,
        "summary": summary,
        "has_changes": plan.has_changes(),
    })
}

/// The resource graph in Graphviz DOT, like `terraform graph`; with a plan,
/// each node carries its planned action.
pub fn graph_dot(graph: &crate::graph::Dag<crate::address::Address>, plan: Option<&Plan>) -> String {
    let mut out = String::from("digraph kfp_tenant {\n  rankdir = \"LR\";\n  node [shape = box, fontname = \"monospace\"];\n");
    for (_, address) in graph.nodes() {
        let action = plan.and_then(|p| p.change(address)).map(|c| c.action);
        let (label, style) = match (address.kind(), action) {
            (None, _) => (format!("{address}"), ", style = dashed"),
            (Some(crate::address::Kind::TrustPolicy), _) => (format!("{address}"), ", style = dotted"),
            (_, Some(a)) if a != Action::NoOp => (format!("{} {address}", a.symbol().trim()), ", style = bold"),
            _ => (format!("{address}"), ""),
        };
        let _ = writeln!(out, "  {:?} [label = {:?}{style}];", address.to_string(), label);
    }
    let mut edges: Vec<(String, String)> = graph.edges().map(|(a, b)| (graph.node(a).to_string(), graph.node(b).to_string())).collect();
    edges.sort();
    for (a, b) in edges {
        let _ = writeln!(out, "  {a:?} -> {b:?};");
    }
    out.push_str("}\n");
    out
}
