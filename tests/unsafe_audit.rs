//! The CLI, the control protocol and the daemon reach the kernel through rustix, std and
//! signal-hook, not raw libc calls: the only `unsafe` blocks left there are the two that no
//! safe API can replace, listed here with why. A new one must be added here, with its
//! reason, or replaced.

use std::fs;
use std::path::Path;

/// (file, what the block does): the allowed `unsafe` blocks.
const ALLOWED: &[(&str, &str)] = &[
    // Command::pre_exec is unsafe by definition; std has no stable setsid for a child.
    ("src/cli/start.rs", "pre_exec(|| {"),
    // Adopting the descriptors the service manager passed (sd_listen_fds): ownership of an
    // inherited descriptor can only be asserted.
    ("src/daemon/systemd.rs", "OwnedFd::from_raw_fd(first)"),
    ("src/daemon/systemd.rs", "OwnedFd::from_raw_fd(n)"),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn cli_control_and_daemon_have_only_the_listed_unsafe_blocks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["src/cli", "src/control", "src/daemon"] {
        rust_files(&root.join(d), &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let text = fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            if !code.contains("unsafe {") && !code.contains("unsafe fn") {
                continue;
            }
            // The block's first three lines: what it does.
            let what = lines[i..(i + 3).min(lines.len())].concat();
            let ok = ALLOWED
                .iter()
                .any(|(file, does)| *file == rel && what.contains(does));
            if !ok {
                found.push(format!("{rel}:{}: {}", i + 1, l.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe blocks not on the list (use rustix, std or signal-hook, or list it with why):\n{}",
        found.join("\n")
    );
}
