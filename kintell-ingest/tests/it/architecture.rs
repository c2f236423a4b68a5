//! Architecture invariants that can be checked by reading the sources (see ARCHITECTURE.md).

use std::path::{Path, PathBuf};

/// The pure core: no database driver, no async runtime, no clock, no filesystem, no network.
const PURE: &[&str] = &[
    "domain",
    "formats",
    "batch",
    "scoring",
    "association",
    "ports",
];

/// Tokens the pure core never contains outside comments.
const FORBIDDEN: &[&str] = &[
    "sqlx",
    "sea_query",
    "tokio",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
    "now_v7",
    "std::fs",
    "std::net",
    "std::env",
    "std::process",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("read source directory")
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn pure_sources() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for module in PURE {
        let dir = src.join(module);
        let file = src.join(format!("{module}.rs"));
        assert!(
            dir.exists() || file.exists(),
            "pure module {module} not found"
        );
        rust_files(&dir, &mut files);
        rust_files(&file, &mut files);
    }
    files
}

/// The code of a line without its `//` comment (string literals holding `//` are rare enough here to ignore).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

#[test]
fn the_pure_core_does_no_io_and_reads_no_clock() {
    let mut hits = Vec::new();
    for file in pure_sources() {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            for token in FORBIDDEN {
                if code.contains(token) {
                    hits.push(format!("{}:{}: {token}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the pure core touches I/O, the clock or a driver:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_binaries_hold_no_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root.join("kintell-ingest-cli/src"), &mut files);
    rust_files(&root.join("kintell-ingest-http/src"), &mut files);
    let mut hits = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            for token in [
                "sqlx",
                "sea_query",
                "SELECT ",
                "INSERT ",
                "UPDATE ",
                "DELETE FROM",
            ] {
                if code.contains(token) {
                    hits.push(format!("{}:{}: {token}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "SQL in an adapter:\n{}", hits.join("\n"));
}

#[test]
fn the_pure_scan_sees_the_domain_sources() {
    let files = pure_sources();
    assert!(
        files.iter().any(|f| f.ends_with("domain/number.rs")),
        "{files:?}"
    );
}
