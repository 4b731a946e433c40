//! The engine stays sans-I/O: nothing under `src/proto/` (its tests aside)
//! reads a clock, a random source it was not given, a file, a socket or
//! the environment, uses tokio, or reaches into the shell. Time and
//! randomness come in as arguments; the shell (`src/server/`) does the I/O.
//!
//! A text scan, not a type check: it names the file and line of every use,
//! and a new way of doing I/O needs a new line in `FORBIDDEN`.

use std::path::{Path, PathBuf};

/// (what is forbidden, why).
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "the engine is not async"),
    ("std::fs", "files are the shell's"),
    ("File::open", "files are the shell's"),
    ("OpenOptions", "files are the shell's"),
    ("read_to_string(", "files are the shell's"),
    ("std::env", "the environment is the configuration's"),
    ("UdpSocket", "sockets are the shell's"),
    ("TcpStream", "sockets are the shell's"),
    ("TcpListener", "sockets are the shell's"),
    ("Instant::now", "time is given (Now)"),
    ("SystemTime::now", "time is given (Now)"),
    ("UnixTime::now", "time is given (Now)"),
    (".elapsed()", "time is given (Now)"),
    ("rand::random", "randomness is given (rng)"),
    ("rand::rng(", "randomness is given (rng)"),
    ("thread_rng", "randomness is given (rng)"),
    ("OsRng", "randomness is given (rng)"),
    ("crate::server", "the engine does not reach into the shell"),
    ("std::thread", "the engine runs on the caller's thread"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/proto") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without its tests: a `tests.rs` file is all tests, and
/// elsewhere the test module comes last, after `#[cfg(test)]`.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("read source");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[test]
fn the_engine_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    assert!(files.len() > 20, "src/proto is where the engine lives");
    let mut found = Vec::new();
    for file in &files {
        for (n, line) in code(file).lines().enumerate() {
            let text = line.split("//").next().unwrap_or("");
            for (token, why) in FORBIDDEN {
                if text.contains(token) {
                    found.push(format!(
                        "{}:{}: {token} ({why})",
                        file.strip_prefix(&root).unwrap_or(file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/proto does I/O:\n{}",
        found.join("\n")
    );
}

/// The scan itself finds what it must: a test that could fail.
#[test]
fn the_scan_catches_a_clock_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("x.rs");
    std::fs::write(
        &file,
        "fn f() { let t = std::time::Instant::now(); }\n#[cfg(test)]\nmod tests { fn g() { std::fs::read(\"x\"); } }\n",
    )
    .expect("write");
    let text = code(&file);
    assert!(text.contains("Instant::now"));
    assert!(!text.contains("std::fs"), "test modules are not scanned");
}
