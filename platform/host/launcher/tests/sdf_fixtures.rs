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

#[test]
fn a_virtual_machine_is_read_with_its_vcpus_and_guest_maps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/virtual_machine.xml");
    let system = sdf::parse_file(&path).unwrap();
    let [vmm, helper] = &system.protection_domains[..] else {
        panic!("two protection domains expected");
    };
    let vm = vmm.virtual_machine.as_ref().unwrap();
    assert_eq!(
        (vm.name.as_str(), vm.priority, vm.budget, vm.period),
        ("linux", 150, 500, 1000)
    );
    let vcpus: Vec<_> = vm.vcpus.iter().map(|vcpu| (vcpu.id, vcpu.cpu)).collect();
    assert_eq!(vcpus, [(0, None), (1, Some(0))]);
    assert!(vm.maps[0].permissions.execute && !vm.maps[1].cached);
    assert_eq!(
        vm.maps[1].vaddr + 0x1000,
        sdf::VM_MAP_LIMIT,
        "a guest may map up to the top of the address space, where a PD's stack would be"
    );
    assert!(
        vmm.maps.is_empty(),
        "the guest's maps are not the VMM's own"
    );
    let boot = vmm
        .setvar_ids
        .iter()
        .find(|setvar| setvar.symbol == "boot_vcpu")
        .unwrap();
    assert_eq!(
        boot.id, 0,
        "setvar_id on a vcpu patches its id into the VMM"
    );
    assert_eq!(helper.parent, Some((0, 2)));
    assert!(helper.virtual_machine.is_none());
}

#[test]
fn domains_get_their_ids_and_every_pd_its_domain() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/domains.xml");
    let system = sdf::parse_file(&path).unwrap();
    let domains = system.domains.as_ref().unwrap();
    let ids: Vec<_> = domains
        .domains
        .iter()
        .map(|domain| (domain.name.as_str(), domain.id))
        .collect();
    assert_eq!(
        ids,
        [("red", 0), ("blue", 1)],
        "'red' takes the lowest id that 'blue' does not"
    );
    assert_eq!((domains.start_index, domains.index_shift), (1, Some(10)));
    assert_eq!(
        domains.schedule,
        [
            sdf::ScheduleEntry {
                domain: 0,
                duration: sdf::Duration::Microseconds(3000)
            },
            sdf::ScheduleEntry {
                domain: 1,
                duration: sdf::Duration::Ticks(16)
            },
            sdf::ScheduleEntry {
                domain: 0,
                duration: sdf::Duration::EndMarker
            },
        ]
    );
    let of: Vec<_> = system
        .protection_domains
        .iter()
        .map(|pd| (pd.name.as_str(), pd.domain))
        .collect();
    assert_eq!(
        of,
        [
            ("control", Some(0)),
            ("sensor", Some(0)),
            ("logger", Some(1))
        ]
    );
    // seL4's domain scheduler is a single-core configuration.
    let text = std::fs::read_to_string(&path).unwrap();
    let error = sdf::parse_for("domains.xml", &text, sdf::Target { cores: Some(2) }).unwrap_err();
    assert_eq!(
        (error.line, error.message.as_str()),
        (
            5,
            "the domain scheduler is not supported in multicore builds of seL4 (the target has 2 cores)"
        )
    );
    // Lower ids given later are still left to the domains that name them.
    let given_later = text.replace(
        r#"<domain name="blue" id="1"/>"#,
        r#"<domain name="blue" id="0"/>"#,
    );
    let system = sdf::parse("domains.xml", &given_later).unwrap();
    let ids: Vec<_> = system
        .domains
        .unwrap()
        .domains
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [1, 0]);
    // A file of 200,000 domains is refused at the 17th as it is read.
    let mut many = String::from("<system>\n<domains>\n");
    for domain in 0..200_000 {
        many.push_str(&format!("<domain name=\"d{domain}\"/>\n"));
    }
    many.push_str("</domains>\n</system>\n");
    let error = sdf::parse("many.xml", &many).unwrap_err();
    assert_eq!(
        (error.line, error.message.as_str()),
        (19, "domain 'd16': more than 16 domains (KernelNumDomains)")
    );
}

#[test]
fn a_cspace_places_other_pds_capabilities_in_slots() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/cspace.xml");
    let system = sdf::parse_file(&path).unwrap();
    let caps: Vec<_> = system.protection_domains[0]
        .cap_maps
        .iter()
        .map(|cap| (cap.kind, cap.pd.as_str(), cap.slot))
        .collect();
    assert_eq!(
        caps,
        [
            (sdf::CapKind::Tcb, "worker", 1),
            (sdf::CapKind::SchedulingContext, "worker", 2),
            (sdf::CapKind::VSpace, "worker", 127),
        ]
    );
    assert_eq!(
        system.protection_domains[1].cap_maps[0].pd, "scheduler",
        "a PD named after the one that holds its capability"
    );
}

#[test]
fn a_map_with_empty_perms_has_no_access_as_for_the_tool() {
    let text = r#"<system><memory_region name="guard" size="0x1000"/><protection_domain name="a"><program_image path="a.elf"/><map mr="guard" vaddr="0x1000000" perms=""/></protection_domain></system>"#;
    let system = sdf::parse("empty_perms.xml", text).unwrap();
    let permissions = system.protection_domains[0].maps[0].permissions;
    assert!(!permissions.read && !permissions.write && !permissions.execute);
}
