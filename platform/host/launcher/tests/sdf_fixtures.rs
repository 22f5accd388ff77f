//! The system-description checks, tested the way the microkit tool tests its parser: a folder
//! of small invalid descriptions, each ending with the error it must produce
//! (`<!-- expect: LINE:COLUMN: message -->`), and a folder of valid ones that must parse; the
//! target is the tool's default configuration (one core).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use warden_host::sdf;

fn fixtures(folder: &str) -> Vec<std::path::PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdf")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "xml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_description_gives_its_located_error() {
    let files = fixtures("invalid");
    assert!(files.len() >= 30, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let start = text
            .rfind("<!-- expect: ")
            .unwrap_or_else(|| panic!("{}: no expectation", path.display()));
        let expected = text[start + "<!-- expect: ".len()..]
            .trim_end()
            .trim_end_matches("-->")
            .trim();
        match sdf::parse_for("fixture.xml", &text, sdf::Target { cores: Some(1) }) {
            Ok(_) => failures.push(format!("{}: parsed, expected {expected}", path.display())),
            Err(error) => {
                assert_eq!(error.file, "fixture.xml");
                let got = format!("{}:{}: {}", error.line, error.column, error.message);
                if got != expected {
                    failures.push(format!(
                        "{}:\n  expected {expected}\n  got      {got}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_valid_description_parses() {
    let files = fixtures("valid");
    assert!(files.len() >= 4);
    for path in files {
        if let Err(error) = sdf::parse_file(&path) {
            panic!("{error}");
        }
    }
}

#[test]
fn parsed_values_follow_the_microkit_defaults() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/parent_restarts_child.xml");
    let system = sdf::parse_file(&path).unwrap();
    let [manager, driver] = &system.protection_domains[..] else {
        panic!("two protection domains expected");
    };
    assert_eq!(manager.parent, None);
    assert_eq!(driver.parent, Some((0, 1)));
    assert_eq!(
        (manager.budget, manager.period, manager.stack_size),
        (1000, 1000, 0x2000),
        "the microkit tool's PD_DEFAULT_STACK_SIZE"
    );
    assert!(!driver.maps[0].cached);
    assert!(driver.maps[1].permissions.read && driver.maps[1].permissions.write);
    assert_eq!(driver.irqs[0].id, 2);
    assert_eq!(system.memory_regions[1].page_size, 0x20_0000);
    let client_server =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/client_server.xml");
    let system = sdf::parse_file(&client_server).unwrap();
    let channel = &system.channels[0];
    assert!(channel.ends[0].pp && !channel.ends[0].notify);
    assert_eq!(
        system.memory_regions[0].size, 0x1000,
        "underscores in numbers"
    );
}

#[test]
fn a_prefilled_region_takes_its_size_from_its_file() {
    // Relative to the working directory (the package), as the fixtures name them.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/prefill.xml");
    let system = sdf::parse_file(&path).unwrap();
    let [data, larger, fdt] = &system.memory_regions[..] else {
        panic!("three regions expected");
    };
    assert_eq!(data.size, 0x2000, "5,000 bytes rounded up to pages");
    assert_eq!(
        data.prefill.as_ref().map(|prefill| prefill.length),
        Some(5000)
    );
    assert_eq!(larger.size, 0x4000, "a size given is kept");
    assert_eq!(
        (fdt.size, fdt.prefill_bootinfo.as_deref()),
        (0x1000, Some("fdt"))
    );
    assert_eq!(
        system.protection_domains[0].maps[0]
            .setvar_prefill_size
            .as_deref(),
        Some("data_length")
    );
}

#[test]
fn the_check_command_reports_and_exits() {
    let binary = env!("CARGO_BIN_EXE_warden-host");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf");
    let valid = std::process::Command::new(binary)
        .arg("check")
        .arg(root.join("valid/ping_pong.xml"))
        .output()
        .unwrap();
    assert_eq!(valid.status.code(), Some(0));
    let stdout = String::from_utf8(valid.stdout).unwrap();
    assert!(
        stdout.contains("ok (2 protection domains, 0 memory regions, 1 channels)"),
        "{stdout}"
    );
    let invalid_path = root.join("invalid/pp_to_equal_priority.xml");
    let invalid = std::process::Command::new(binary)
        .arg("check")
        .arg(&invalid_path)
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(1));
    let stderr = String::from_utf8(invalid.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("{}:4:3: ", invalid_path.display())),
        "{stderr}"
    );
    let missing = std::process::Command::new(binary)
        .args(["check", "/nonexistent.xml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

/// A description nested thousands deep is refused before the XML parser (which recurses per
/// level) can overflow its stack, and one of 20,000 PDs at the 64th, not after reading all.
#[test]
fn huge_and_deep_descriptions_are_refused_early() {
    let depth = 10_000;
    let mut deep = String::from("<system>\n");
    for level in 0..depth {
        let id = if level > 0 { r#" id="1""# } else { "" };
        deep.push_str(&format!(
            r#"<protection_domain name="d{level}"{id}><program_image path="p.elf"/>"#
        ));
        deep.push('\n');
    }
    deep.push_str(&"</protection_domain>".repeat(depth));
    deep.push_str("\n</system>\n");
    let error = sdf::parse("deep.xml", &deep).unwrap_err();
    assert_eq!(
        (error.line, error.column, error.message.as_str()),
        (
            129,
            1,
            "elements nested 129 deep: at most 128 (a system of 63 nested protection domains needs fewer)"
        )
    );
    // Tags inside comments and a quoted '>' do not count as elements.
    let tricky = format!(
        r#"<?xml version="1.0"?><system><!-- {} --><protection_domain name="a>b"><program_image path="a.elf"/></protection_domain></system>"#,
        "<a>".repeat(1000)
    );
    assert!(sdf::parse("tricky.xml", &tricky).is_ok());
    let mut many = String::from("<system>\n");
    for pd in 0..20_000 {
        many.push_str(&format!(
            "<protection_domain name=\"p{pd}\"><program_image path=\"p.elf\"/></protection_domain>\n"
        ));
    }
    many.push_str("</system>\n");
    let error = sdf::parse("many.xml", &many).unwrap_err();
    assert_eq!(
        error.message,
        "'p63' would be protection domain 64: at most 63 are allowed (children count)"
    );
}

/// A PD's `cpu` is checked against the target's cores when they are known (`check` says one
/// unless told: the SDK's debug and release configurations), not on the host platform.
#[test]
fn cpu_is_checked_against_the_targets_cores() {
    let text = r#"<system><protection_domain name="a" cpu="3"><program_image path="a.elf"/></protection_domain></system>"#;
    let cores = |cores| sdf::Target { cores: Some(cores) };
    assert!(sdf::parse_for("one.xml", text, cores(1)).is_err());
    assert!(sdf::parse_for("four.xml", text, cores(4)).is_ok());
    assert!(sdf::parse_for("three.xml", text, cores(3)).is_err());
    assert!(
        sdf::parse("host.xml", text).is_ok(),
        "unknown cores: not checked"
    );
    // `warden-host check` is the tool's default: one core.
    let file = std::env::temp_dir().join(format!("warden-cpu-{}.xml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let check = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warden-host"))
            .arg("check")
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let one = check(&[]);
    assert_eq!(one.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&one.stderr).contains("the target has 1 core(s)"));
    assert!(check(&["--cores", "4"]).status.success());
    std::fs::remove_file(&file).unwrap();
}

/// `setvar_id`s reach the PDs that own the ids.
#[test]
fn setvar_ids_go_to_the_pd_that_owns_the_id() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/setvar_ids.xml");
    let system = sdf::parse_file(&path).unwrap();
    let ids = |pd: usize| -> Vec<(String, u64)> {
        system.protection_domains[pd]
            .setvar_ids
            .iter()
            .map(|setvar| (setvar.symbol.clone(), setvar.id))
            .collect()
    };
    assert_eq!(
        ids(0),
        [
            ("uart_irq".to_string(), 1),
            ("child_id".to_string(), 3),
            ("to_child".to_string(), 5)
        ]
    );
    assert_eq!(ids(1), [("to_parent".to_string(), 0)]);
}
