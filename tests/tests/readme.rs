//! The README's walk-throughs run as written. Every code block marked `sh walkthrough` in
//! `README.md` and then in `connectors/README.md` is run by bash, in order, in one working
//! directory (as a reader would, from the repository's root, with `relais serve` running in
//! another terminal), and each command's output is compared with the `#>` lines that follow it
//! in the README: each must appear in the output, `…` standing for anything. The `cargo build`
//! lines are not run: the programs under test are on `PATH` as `relais` and `relais-connector`.

use relais_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One command of a walk-through, as the README writes it, and the output it shows.
#[derive(Debug)]
struct Step {
    /// Where it is (file and line), for the failure message.
    at: String,
    command: String,
    expected: Vec<String>,
}

/// The `sh walkthrough` blocks of a Markdown file, command by command.
fn steps(file: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut steps: Vec<Step> = vec![];
    let mut inside = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if !inside {
            inside = line.trim() == "```sh walkthrough";
            continue;
        }
        if line.trim() == "```" {
            inside = false;
            continue;
        }
        if let Some((start, mut command)) = pending.take() {
            command.push('\n');
            command.push_str(line);
            if line.ends_with('\\') {
                pending = Some((start, command));
            } else {
                steps.push(Step {
                    at: format!("{name}:{start}"),
                    command,
                    expected: vec![],
                });
            }
            continue;
        }
        let trimmed = line.trim();
        if let Some(shown) = trimmed.strip_prefix("#>") {
            steps
                .last_mut()
                .unwrap_or_else(|| panic!("{name}:{n}: `#>` before any command"))
                .expected
                .push(shown.trim().to_string());
        } else if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("cargo ") {
            continue;
        } else if line.ends_with('\\') {
            pending = Some((n, line.to_string()));
        } else {
            steps.push(Step {
                at: format!("{name}:{n}"),
                command: line.to_string(),
                expected: vec![],
            });
        }
    }
    steps
}

/// Does `output` show `expected` (`…` for anything, runs of spaces alike)?
fn shows(output: &str, expected: &str) -> bool {
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let output = flat(output);
    let mut rest = output.as_str();
    for part in flat(expected).split('…') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // Each piece after the one before.
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A directory with `relais` and `relais-connector` pointing at the programs under test.
fn programs(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let relais = hub_program();
    let connector = relais.with_file_name("relais-connector-under-test");
    std::os::unix::fs::symlink(&relais, bin.join("relais")).unwrap();
    std::os::unix::fs::symlink(&connector, bin.join("relais-connector")).unwrap();
    bin
}

#[test]
fn the_walk_throughs_run_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = steps(&root.join("README.md"));
    let main_steps = all.len();
    all.extend(steps(&root.join("connectors/README.md")));
    assert!(
        main_steps >= 20,
        "the main walk-through has {main_steps} commands"
    );
    assert!(
        all.len() > main_steps,
        "the connectors README has a walk-through"
    );

    // A reader's clone: the files the walk-throughs use, in a directory of their own.
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let status = Command::new("cp")
        .arg("-rp")
        .arg(root.join("connectors"))
        .arg(dir.join("connectors"))
        .status()
        .unwrap();
    assert!(status.success());
    let bin = programs(dir);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // The first terminal: `relais serve` (the README's first command), on its default address,
    // which the profiles name.
    let port = 7443;
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        eprintln!("NOT RUN: 127.0.0.1:7443 is taken (a hub running?); the walk-through needs it");
        return;
    }
    let mut hub = Command::new(bin.join("relais"))
        .current_dir(dir)
        .env("RELAIS_LOG_FILTER", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let admin_bundle = dir.join("relais-data/admin/admin.bundle.pem");
    let started = std::time::Instant::now();
    while !admin_bundle.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the hub did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The second terminal: the walk-through, one bash script, each command's output between
    // markers.
    let mut script = String::from("set -e\n");
    for (i, s) in all.iter().enumerate() {
        script.push_str(&format!("echo '@@@ {i}'\n{}\n", s.command));
    }
    script.push_str(&format!("echo '@@@ {}'\n", all.len()));
    let out = Command::new("bash")
        .current_dir(dir)
        .env("PATH", &path)
        .env("RELAIS_LOG_FILTER", "warn")
        .env("NO_COLOR", "1")
        .arg("-c")
        .arg(format!(
            "{script}\nkill $(jobs -p) 2>/dev/null; wait 2>/dev/null; true"
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = hub.kill();
    let _ = hub.wait();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut outputs: Vec<String> = vec![String::new(); all.len() + 1];
    let mut current = None;
    for line in stdout.lines() {
        if let Some(i) = line
            .strip_prefix("@@@ ")
            .and_then(|n| n.parse::<usize>().ok())
        {
            current = Some(i);
            continue;
        }
        if let Some(i) = current {
            outputs[i].push_str(line);
            outputs[i].push('\n');
        }
    }
    let reached = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("@@@ ").and_then(|n| n.parse::<usize>().ok()))
        .max()
        .unwrap_or(0);
    assert!(
        reached == all.len(),
        "the walk-through stopped at {} `{}`:\n{}\n--- stderr\n{stderr}",
        all[reached.min(all.len() - 1)].at,
        all[reached.min(all.len() - 1)].command,
        outputs[reached.min(all.len() - 1)]
    );
    for (i, s) in all.iter().enumerate() {
        for e in &s.expected {
            assert!(
                shows(&outputs[i], e),
                "{}: `{}` printed\n{}\nwhere the README shows\n#> {e}",
                s.at,
                s.command,
                outputs[i]
            );
        }
    }
}

#[test]
fn expected_output_matches_with_ellipses() {
    assert!(shows(
        "person 01ab (linked_by_pivot)",
        "person … (linked_by_pivot)"
    ));
    assert!(shows("a\n  b   c", "a b c"));
    assert!(!shows(
        "person 01ab (created)",
        "person … (linked_by_pivot)"
    ));
}
