//! The architecture, checked: ARCHITECTURE.md states the crates' direction
//! and names every module; this test reads the manifests and the sources and
//! fails where they drift apart, as rust-analyzer's tidy tests do.
//!
//! - dependencies go `core` ← `aws`, `k8s` ← `cli`, and `testkit` (on
//!   `core`) is only ever a dev-dependency;
//! - only `aws` names `aws_sdk_*`/`aws_smithy_*`, only `k8s` names `kube` or
//!   `k8s_openapi`, in code that ships (tests and testkit excepted);
//! - every module under `crates/*/src` is named in its crate's section of the
//!   code map;
//! - every source file opens with a `//!` header and has at most 500 lines;
//! - in the binary only `flags` (and `main`) name clap;
//! - every dependency is named by a source it serves (no unused ones);
//! - no import cycle of any length among a crate's source files (a module
//!   and its parent excepted), and only core's `order` adds edges between
//!   resources.
//!
//! Each rule is a function of text, so the last tests plant a violation and
//! watch the rule catch it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Crate directory -> the kfp-tenant crates it may depend on (normal deps).
const ALLOWED: [(&str, &[&str]); 5] =
    [("core", &[]), ("aws", &["core"]), ("k8s", &["core"]), ("cli", &["core", "aws", "k8s"]), ("testkit", &["core"])];

/// Crate directory -> the prefixes only it may name in shipped code.
const OWNED_NAMES: [(&str, &[&str]); 2] =
    [("aws", &["aws_sdk_", "aws_smithy_"]), ("k8s", &["kube::", "kube_client", "kube_runtime", "kube_core", "k8s_openapi"])];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace root").to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `.rs` files under `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The kfp-tenant crates a manifest's `section` (`dependencies`,
/// `dev-dependencies`) names, by directory (`kfp-tenant-aws` -> `aws`; the
/// binary's package `kfp-tenant` is `cli`).
fn kfp_dependencies(manifest: &str, section: &str) -> Vec<String> {
    dependency_idents(manifest, section)
        .into_iter()
        .filter_map(|ident| match ident.strip_prefix("kfp_tenant_") {
            Some(rest) => Some(rest.to_owned()),
            None => (ident == "kfp_tenant").then(|| "cli".to_owned()),
        })
        .collect()
}

/// Violations of the dependency direction, given each crate's manifest.
fn dependency_violations(manifests: &BTreeMap<String, String>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.into_iter().collect();
    let mut problems = Vec::new();
    for (krate, manifest) in manifests {
        let Some(may) = allowed.get(krate.as_str()) else {
            problems.push(format!("crates/{krate}: not in the documented direction; add it to ARCHITECTURE.md and ALLOWED"));
            continue;
        };
        for dep in kfp_dependencies(manifest, "dependencies") {
            if !may.contains(&dep.as_str()) {
                problems.push(format!("crates/{krate} depends on {dep}, against the direction core <- aws, k8s <- cli"));
            }
        }
    }
    problems
}

/// Every dependency named in a manifest's `section`, as Rust spells it.
fn dependency_idents(manifest: &str, section: &str) -> Vec<String> {
    let mut in_section = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
            continue;
        }
        if in_section && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            found.push(if name == "kfp-tenant" { "kfp_tenant".to_owned() } else { name.replace('-', "_") });
        }
    }
    found
}

/// Dependencies that no source of theirs names (`sources` is the text of
/// every file the section serves).
fn unused_dependencies(krate: &str, manifest: &str, section: &str, sources: &str) -> Vec<String> {
    dependency_idents(manifest, section)
        .into_iter()
        .filter(|ident| {
            !sources.match_indices(ident.as_str()).any(|(at, _)| {
                let before = sources[..at].chars().next_back();
                let after = sources[at + ident.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !word(before) && !word(after)
            })
        })
        .map(|ident| format!("{krate}: [{section}] {ident} is used by no source; remove it"))
        .collect()
}

/// The shipped part of a source: everything before its `#[cfg(test)]` module.
fn shipped_part(source: &str) -> &str {
    source.find("#[cfg(test)]").map_or(source, |at| &source[..at])
}

/// Names a crate uses that belong to another crate's provider.
fn foreign_names(krate: &str, file: &str, source: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (owner, prefixes) in OWNED_NAMES {
        if owner == krate {
            continue;
        }
        for (number, line) in shipped_part(source).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(prefix) = prefixes.iter().find(|p| names(code, p)) {
                problems.push(format!("{file}:{}: names {prefix}, which only crates/{owner} may", number + 1));
            }
        }
    }
    problems
}

/// Whether `code` uses `prefix` as the start of a path (not inside a longer identifier).
fn names(code: &str, prefix: &str) -> bool {
    code.match_indices(prefix).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '"')
    })
}

/// The module names a crate's sources define (file stems; `mod.rs` by its
/// folder; binaries by their name), without the crate roots.
fn module_names(src: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| {
            let relative = f.strip_prefix(src).ok()?;
            let stem = f.file_stem()?.to_str()?;
            match stem {
                "lib" | "main" if relative.parent() == Some(Path::new("")) => None,
                "mod" => Some(relative.parent()?.file_name()?.to_str()?.to_owned()),
                _ => Some(stem.to_owned()),
            }
        })
        .collect()
}

/// The text of the code map's section about `crates/<krate>`.
fn code_map_section<'a>(architecture: &'a str, krate: &str) -> Option<&'a str> {
    let heading = format!("### crates/{krate} ");
    let start = architecture.find(&heading)?;
    let rest = &architecture[start + heading.len()..];
    let end = rest.find("\n## ").into_iter().chain(rest.find("\n### ")).min().unwrap_or(rest.len());
    Some(&rest[..end])
}

fn unmapped_modules(architecture: &str, krate: &str, modules: &[String]) -> Vec<String> {
    let Some(section) = code_map_section(architecture, krate) else {
        return vec![format!("ARCHITECTURE.md has no section \"### crates/{krate} \"")];
    };
    modules
        .iter()
        .filter(|m| !section.contains(&format!("`{m}`")) && !section.contains(&format!("`{m}::")))
        .map(|m| format!("crates/{krate}: module `{m}` is not in ARCHITECTURE.md's code map"))
        .collect()
}

/// The ports of `Providers` (its `&'a dyn X` fields) that testkit's
/// compile-time check (`fn implements<...>`) does not name.
fn unchecked_ports(ports: &str, testkit: &str) -> Vec<String> {
    let providers = ports.split("pub struct Providers").nth(1).and_then(|rest| rest.split("\n}").next()).unwrap_or_default();
    let checked = testkit.split("fn implements<").nth(1).and_then(|rest| rest.split(">()").next()).unwrap_or_default();
    providers
        .split("&'a dyn ")
        .skip(1)
        .filter_map(|rest| rest.split([',', ' ', '\n']).next())
        .filter(|port| !checked.split(|c: char| !c.is_alphanumeric()).any(|word| word == *port))
        .map(|port| format!("testkit: no fake of {port} is checked at compile time (fn implements in lib.rs)"))
        .collect()
}

/// A source file is a room for one job: at most this many lines.
const MAX_LINES: usize = 500;

fn too_long(file: &str, source: &str) -> Option<String> {
    let lines = source.lines().count();
    (lines > MAX_LINES).then(|| format!("{file}: {lines} lines, over {MAX_LINES}: split it by job"))
}

/// In the binary, only `flags` (and `main`, which parses) may name clap:
/// every other module works on plain requests.
fn clap_outside_flags(file: &str, source: &str) -> Option<String> {
    let allowed = file.starts_with("crates/cli/src/flags/") || file == "crates/cli/src/main.rs";
    let names = shipped_part(source).lines().any(|l| names(l.split("//").next().unwrap_or_default(), "clap"));
    (file.starts_with("crates/cli/src/") && !allowed && names)
        .then(|| format!("{file}: names clap; convert the flags into a request in flags/convert.rs instead"))
}

/// An edge between resources added outside core's `order` (the graph's own
/// module aside): every order comes from the kinds' declarations there.
fn edge_outside_order(file: &str, source: &str) -> Option<String> {
    let allowed = ["crates/core/src/order.rs", "crates/core/src/graph.rs"];
    (file.starts_with("crates/core/src/") && !allowed.contains(&file) && shipped_part(source).contains("add_edge(")).then(|| {
        format!("{file}: adds an edge between resources outside crates/core/src/order.rs: declare the order on the kind's Resource impl")
    })
}

/// Import cycles of any length among a crate's source files (by path under
/// `src`), a module and its parent excepted: each `crate::a::b` and
/// `super::b` path of shipped code (comments and `#[cfg(test)]` modules do
/// not count) is resolved to the longest module path that is a file
/// (`a/b.rs`, `a/b/mod.rs`, `a.rs`, `a/mod.rs`).
fn import_cycles(krate: &str, files: &BTreeMap<String, String>) -> Vec<String> {
    let resolve = |segments: &[&str]| {
        (1..=segments.len()).rev().find_map(|n| {
            let base = segments[..n].join("/");
            [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|c| files.contains_key(c))
        })
    };
    // The folder of a file's module (for `super`), and its parent module's file.
    let folder = |file: &str| Path::new(file).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let module_folder = |file: &str| if file.ends_with("mod.rs") { folder(&folder(file)) } else { folder(file) };
    let is_parent = |child: &str, parent: &str| {
        let dir = module_folder(child);
        let candidates =
            if dir.is_empty() { ["lib.rs".to_owned(), "main.rs".to_owned()] } else { [format!("{dir}.rs"), format!("{dir}/mod.rs")] };
        candidates.iter().any(|c| c == parent)
    };
    let mut uses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (file, source) in files {
        let code: Vec<&str> = shipped_part(source).lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let code = code.join("\n");
        for (prefix, base) in [("crate::", String::new()), ("super::", module_folder(file))] {
            for (at, _) in code.match_indices(prefix) {
                if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let path: String =
                    code[at + prefix.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
                let segments: Vec<&str> = base.split('/').chain(path.split("::")).filter(|s| !s.is_empty()).collect();
                if let Some(target) = resolve(&segments).filter(|t| t != file) {
                    uses.entry(file).or_default().push(target);
                }
            }
        }
    }
    // The uses that count: not between a module and its parent.
    let edges: BTreeMap<&str, Vec<&str>> = uses
        .iter()
        .map(|(a, targets)| (*a, targets.iter().map(String::as_str).filter(|b| !is_parent(a, b) && !is_parent(b, a)).collect()))
        .collect();
    // One cycle through each file that is the smallest of it, by a search
    // of the files after it: every cycle is found once, whatever its length.
    let mut found = Vec::new();
    let mut seen: Vec<std::collections::BTreeSet<&str>> = Vec::new();
    for start in edges.keys() {
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut visited = std::collections::BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten().copied() {
                if next == *start {
                    let members: std::collections::BTreeSet<&str> = path.iter().copied().collect();
                    if !seen.contains(&members) {
                        let route: Vec<String> = path.iter().chain([start]).map(|f| format!("src/{f}")).collect();
                        found.push(format!(
                            "crates/{krate}: {} form an import cycle: move what they share into one of them or a file of its own",
                            route.join(" -> ")
                        ));
                        seen.push(members);
                    }
                } else if next > *start && visited.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    found.sort();
    found
}

/// Files that may read a change's `reason`: it is for display, with the
/// exceptions ARCHITECTURE.md states.
const REASON_READERS: [&str; 4] =
    ["crates/core/src/render.rs", "crates/cli/src/commands.rs", "crates/core/src/plan/fresh.rs", "crates/core/src/plan/planner.rs"];

/// A change's `reason` read, or the planner reached, where the
/// architecture says neither happens (core and the binary).
fn display_only_violations(file: &str, source: &str) -> Vec<String> {
    let mut found = Vec::new();
    if !(file.starts_with("crates/core/src/") || file.starts_with("crates/cli/src/")) {
        return found;
    }
    let code: Vec<&str> = shipped_part(source).lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let code = code.join("\n");
    let reads_reason =
        code.match_indices(".reason").any(|(at, _)| !code[at + ".reason".len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'));
    if reads_reason && !REASON_READERS.contains(&file) {
        found.push(format!("{file}: reads a change's reason, which is for display (ARCHITECTURE.md names its readers)"));
    }
    if code.contains("planner::") && !file.starts_with("crates/core/src/plan/") {
        found.push(format!("{file}: reaches into plan's planner; use what plan exports"));
    }
    found
}

fn missing_header(file: &str, source: &str) -> Option<String> {
    let first = source.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    (!first.starts_with("//!")).then(|| format!("{file}: no //! header saying what the file is for"))
}

/// A scenario file in tests/ that no `[[test]]` of tests/Cargo.toml names
/// never runs (the package keeps its tests at its root, which Cargo does not
/// discover by itself).
fn unlisted_tests(manifest: &str, files: &[String]) -> Vec<String> {
    let listed: Vec<&str> = manifest.lines().filter_map(|l| l.trim().strip_prefix("path = \"")?.strip_suffix('"')).collect();
    files
        .iter()
        .filter(|f| f.ends_with(".rs") && !["lib.rs", "build.rs"].contains(&f.as_str()) && !listed.contains(&f.as_str()))
        .map(|f| format!("tests/{f}: no [[test]] in tests/Cargo.toml names it, so it never runs"))
        .collect()
}

#[test]
fn the_architecture_holds() {
    let root = root();
    let architecture = read(&root.join("ARCHITECTURE.md"));
    let mut manifests = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let dir = entry.expect("an entry").path();
        let krate = dir.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name").to_owned();
        manifests.insert(krate.clone(), read(&dir.join("Cargo.toml")));
        let src = dir.join("src");
        let files = sources(&src);
        for file in &files {
            let shown = file.strip_prefix(&root).unwrap_or(file).display().to_string();
            let source = read(file);
            problems.extend(missing_header(&shown, &source));
            problems.extend(too_long(&shown, &source));
            problems.extend(clap_outside_flags(&shown, &source));
            problems.extend(edge_outside_order(&shown, &source));
            problems.extend(display_only_violations(&shown, &source));
            if krate != "testkit" {
                problems.extend(foreign_names(&krate, &shown, &source));
            }
        }
        problems.extend(unmapped_modules(&architecture, &krate, &module_names(&src, &files)));
        let by_path: BTreeMap<String, String> =
            files.iter().map(|f| (f.strip_prefix(&src).unwrap_or(f).to_string_lossy().into_owned(), read(f))).collect();
        problems.extend(import_cycles(&krate, &by_path));
    }
    problems.extend(dependency_violations(&manifests));
    problems.extend(unchecked_ports(&read(&root.join("crates/core/src/ports/mod.rs")), &read(&root.join("crates/testkit/src/lib.rs"))));
    // Unused dependencies: [dependencies] against src/, [dev-dependencies]
    // against everything the crate compiles (tests/support only where a test
    // of the crate includes it, as the CLI's do).
    let text = |dirs: &[PathBuf]| dirs.iter().filter(|d| d.exists()).flat_map(|d| sources(d)).map(|f| read(&f)).collect::<String>();
    for (krate, manifest) in &manifests {
        let dir = root.join("crates").join(krate);
        problems.extend(unused_dependencies(krate, manifest, "dependencies", &text(&[dir.join("src")])));
        let mut all = vec![dir.join("src"), dir.join("tests"), dir.join("benches")];
        if text(&[dir.join("tests")]).contains("tests/support/mod.rs") {
            all.push(root.join("tests/support"));
        }
        problems.extend(unused_dependencies(krate, manifest, "dev-dependencies", &text(&all)));
    }
    let tests_manifest = read(&root.join("tests/Cargo.toml"));
    let scenario_files: Vec<String> =
        std::fs::read_dir(root.join("tests")).expect("tests/").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    problems.extend(unlisted_tests(&tests_manifest, &scenario_files));
    problems.extend(unused_dependencies("tests", &tests_manifest, "dev-dependencies", &text(&[root.join("tests")])));
    // testkit only ever as a dev-dependency, anywhere.
    for manifest in manifests.values().chain([&read(&root.join("tests/Cargo.toml"))]) {
        if kfp_dependencies(manifest, "dependencies").iter().any(|d| d == "testkit") {
            problems.push("testkit is a normal dependency somewhere: it may only be a dev-dependency".to_owned());
        }
    }
    assert!(problems.is_empty(), "the architecture drifted:\n  {}", problems.join("\n  "));
}

#[test]
fn a_dependency_against_the_direction_is_caught() {
    let manifests: BTreeMap<String, String> = [
        ("core".to_owned(), "[package]\nname = \"kfp-tenant-core\"\n\n[dependencies]\nkfp-tenant-aws.workspace = true\n".to_owned()),
        (
            "aws".to_owned(),
            "[dependencies]\nkfp-tenant-core.workspace = true\n[dev-dependencies]\nkfp-tenant-testkit.workspace = true\n".to_owned(),
        ),
        ("k8s".to_owned(), "[dependencies]\nkfp-tenant-core = { path = \"../core\" }\nkfp-tenant-cli = { path = \"../cli\" }\n".to_owned()),
    ]
    .into();
    assert_eq!(
        dependency_violations(&manifests),
        [
            "crates/core depends on aws, against the direction core <- aws, k8s <- cli",
            "crates/k8s depends on cli, against the direction core <- aws, k8s <- cli"
        ]
    );
}

#[test]
fn a_provider_type_outside_its_crate_is_caught_but_not_in_tests() {
    let source = "//! x\nuse kfp_tenant_aws::Aws; // aws_sdk_iam in a comment\nfn f(c: &aws_sdk_iam::Client) {}\nlet k: kube::Client;\n#[cfg(test)]\nmod tests { use aws_sdk_s3::Client; }\n";
    assert_eq!(
        foreign_names("cli", "crates/cli/src/x.rs", source),
        [
            "crates/cli/src/x.rs:3: names aws_sdk_, which only crates/aws may",
            "crates/cli/src/x.rs:4: names kube::, which only crates/k8s may"
        ]
    );
    assert_eq!(foreign_names("aws", "crates/aws/src/x.rs", source), ["crates/aws/src/x.rs:4: names kube::, which only crates/k8s may"]);
}

#[test]
fn a_module_missing_from_the_code_map_and_a_missing_header_are_caught() {
    let architecture = "## Code map\n### crates/core (`kfp-tenant-core`)\n- `plan`: ... `planner` ...\n### crates/aws (`kfp-tenant-aws`)\n- `token`\n## Cross-cutting\n`refresh`\n";
    let modules = ["plan".to_owned(), "planner".to_owned(), "refresh".to_owned(), "token".to_owned()];
    assert_eq!(
        unmapped_modules(architecture, "core", &modules),
        [
            "crates/core: module `refresh` is not in ARCHITECTURE.md's code map",
            "crates/core: module `token` is not in ARCHITECTURE.md's code map"
        ]
    );
    assert_eq!(unmapped_modules(architecture, "k8s", &[]), ["ARCHITECTURE.md has no section \"### crates/k8s \""]);
    assert_eq!(missing_header("a.rs", "\n//! What a is for.\nfn a() {}\n"), None);
    assert_eq!(too_long("a.rs", &"x\n".repeat(MAX_LINES)), None);
    let with_clap = "//! x\nuse clap::Args; // clap in a comment\n";
    assert_eq!(
        clap_outside_flags("crates/cli/src/live.rs", with_clap),
        Some("crates/cli/src/live.rs: names clap; convert the flags into a request in flags/convert.rs instead".to_owned())
    );
    assert_eq!(clap_outside_flags("crates/cli/src/flags/mod.rs", with_clap), None);
    assert_eq!(clap_outside_flags("crates/cli/src/live.rs", "//! the clap-free module\n"), None);
    assert_eq!(too_long("b.rs", &"x\n".repeat(MAX_LINES + 1)), Some("b.rs: 501 lines, over 500: split it by job".to_owned()));
    assert_eq!(
        missing_header("b.rs", "// not a module header\nfn b() {}\n"),
        Some("b.rs: no //! header saying what the file is for".to_owned())
    );
    let src = Path::new("/x/src");
    let files = ["/x/src/lib.rs", "/x/src/plan/mod.rs", "/x/src/plan/tenant.rs", "/x/src/bin/tool.rs"].map(PathBuf::from);
    assert_eq!(module_names(src, &files), ["plan", "tenant", "tool"]);
}

#[test]
fn an_order_outside_core_order_is_caught() {
    let apply = "//! x\nfn graph(dag: &mut Dag) { dag.add_edge(a, b); }\n";
    assert!(edge_outside_order("crates/core/src/apply.rs", apply).is_some());
    assert_eq!(edge_outside_order("crates/core/src/order.rs", apply), None);
    assert_eq!(edge_outside_order("crates/cli/src/render.rs", apply), None);
    assert_eq!(edge_outside_order("crates/core/src/apply.rs", "//! x\n#[cfg(test)]\nmod tests { fn t() { dag.add_edge(a, b); } }\n"), None);
}

#[test]
fn import_cycles_of_any_length_are_caught() {
    let files = |pairs: &[(&str, &str)]| pairs.iter().map(|(f, s)| (f.to_string(), format!("//! x\n{s}\n"))).collect::<BTreeMap<_, _>>();
    let both = files(&[("kinds/mod.rs", "use crate::plan::State;"), ("plan/mod.rs", "pub use crate::kinds::desired_role;")]);
    assert_eq!(
        import_cycles("core", &both),
        [
            "crates/core: src/kinds/mod.rs -> src/plan/mod.rs -> src/kinds/mod.rs form an import cycle: move what they share into one of them or a file of its own"
        ]
    );
    // Three files in a circle (k8s had profile -> readiness -> watches -> profile): one finding.
    let circle = files(&[
        ("profile.rs", "use crate::readiness::not_ready;"),
        ("readiness.rs", "use crate::watches::Watches;"),
        ("watches.rs", "use crate::profile::KubeflowProfile;"),
    ]);
    assert_eq!(
        import_cycles("k8s", &circle),
        [
            "crates/k8s: src/profile.rs -> src/readiness.rs -> src/watches.rs -> src/profile.rs form an import cycle: move what they share into one of them or a file of its own"
        ]
    );
    let siblings =
        files(&[("plan/mod.rs", ""), ("plan/tenant.rs", "use super::planner::Planner;"), ("plan/planner.rs", "use super::tenant::x;")]);
    assert_eq!(import_cycles("core", &siblings).len(), 1);
    // A module and its parent, one direction, a comment or a test module: no finding.
    let fine = files(&[
        ("plan/mod.rs", "mod tenant;\nuse crate::plan::tenant::x;"),
        ("plan/tenant.rs", "use super::State;"),
        ("order.rs", "use crate::kinds::place;"),
        ("kinds/mod.rs", "// see crate::order\n#[cfg(test)]\nmod tests { use crate::order::walk; }"),
        ("lib.rs", "pub mod order;"),
        ("apply.rs", "use crate::order::walk; fn x() -> pub(super) {}"),
    ]);
    assert_eq!(import_cycles("core", &fine), Vec::<String>::new());
}

#[test]
fn a_reason_read_or_the_planner_reached_elsewhere_is_caught() {
    let apply = "//! x\nfn f(c: &ResourceChange) -> bool { c.reason.is_some() }\n";
    assert_eq!(display_only_violations("crates/core/src/apply.rs", apply).len(), 1);
    assert!(display_only_violations("crates/core/src/render.rs", apply).is_empty());
    assert!(display_only_violations("crates/core/src/apply.rs", "//! x\nfn f(r: Reasons) { r.reasons(); }\n").is_empty());
    assert!(display_only_violations("crates/k8s/src/errors.rs", apply).is_empty());
    let verify = "//! x\nuse crate::plan::planner::context;\n";
    assert_eq!(display_only_violations("crates/core/src/verify/mod.rs", verify).len(), 1);
    assert!(display_only_violations("crates/core/src/plan/tenant.rs", verify).is_empty());
}

#[test]
fn a_test_file_without_its_test_target_is_caught() {
    let manifest = "[[test]]\nname = \"engine\"\npath = \"engine.rs\"\n";
    let files = ["engine.rs", "lib.rs", "build.rs", "roads.rs", "snapshots"].map(String::from);
    assert_eq!(unlisted_tests(manifest, &files), ["tests/roads.rs: no [[test]] in tests/Cargo.toml names it, so it never runs"]);
}

#[test]
fn an_unused_dependency_is_caught() {
    let manifest = "[dependencies]\nkfp-tenant-core.workspace = true\nserde_json.workspace = true\n# a comment\nasync-trait = \"0.1\"\n";
    let sources = "use kfp_tenant_core::ports;\n#[async_trait::async_trait]\nimpl X for Y {}\n// serde_json_like is another word\n";
    assert_eq!(
        unused_dependencies("aws", manifest, "dependencies", sources),
        ["aws: [dependencies] serde_json is used by no source; remove it"]
    );
}

#[test]
fn a_port_without_a_checked_fake_is_caught() {
    let ports = "pub struct Providers<'a> {\n    pub cluster: &'a dyn ClusterApi,\n    /// doc\n    pub iam: &'a dyn IamApi,\n    pub users: &'a dyn UserDirectoryApi,\n}\n";
    let testkit = "const _: fn() = || {\n    fn implements<C: ClusterApi, I: IamApi>() {}\n};";
    assert_eq!(
        unchecked_ports(ports, testkit),
        ["testkit: no fake of UserDirectoryApi is checked at compile time (fn implements in lib.rs)"]
    );
    assert!(unchecked_ports(ports, "fn implements<C: ClusterApi + UserDirectoryApi, I: IamApi>() {}").is_empty());
}

/// The README is the user's manual: a table of contents and at most 350
/// lines; the developer's matters live in CONTRIBUTING.md.
#[test]
fn the_readme_is_a_users_manual() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(lines <= 350, "README.md has {lines} lines: move developer or deep-dive material to CONTRIBUTING.md or docs/");
    assert!(readme.contains("## Contents"), "README.md has no table of contents");
    for linked in [
        "CONTRIBUTING.md",
        "docs/pod-identity.md",
        "docs/cognito.md",
        "docs/pipelines.md",
        "docs/verify-and-audit.md",
        "docs/controller.md",
        "docs/runs.md",
    ] {
        assert!(readme.contains(&format!("]({linked})")) && root().join(linked).is_file(), "README.md does not link {linked}");
    }
}
