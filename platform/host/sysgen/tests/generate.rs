//! The generator against the repository's descriptions (the committed files are what they
//! make, and Warden's SDF parser takes the result) and against broken descriptions (each gets
//! an error that names what is wrong).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(top().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// Every system of systems/ (all but interfaces.toml), by name.
fn systems() -> Vec<(String, String)> {
    let mut systems: Vec<(String, String)> = std::fs::read_dir(top().join("systems"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml") && name != "interfaces.toml")
        .map(|name| {
            let path = format!("systems/{name}");
            let text = read(&path);
            (path, text)
        })
        .collect();
    systems.sort();
    systems
}

fn interfaces() -> warden_sysgen::Interfaces {
    warden_sysgen::Interfaces::parse(&read("systems/interfaces.toml")).unwrap()
}

fn qemu() -> String {
    read("systems/qemu_virt_aarch64.toml")
}

fn error_of(interfaces: &warden_sysgen::Interfaces, text: &str) -> String {
    match warden_sysgen::generate(interfaces, text) {
        Ok(_) => panic!("the description was taken:\n{text}"),
        Err(error) => error,
    }
}

#[test]
fn the_committed_files_are_what_the_descriptions_make() {
    let files = warden_sysgen::outputs(&read("systems/interfaces.toml"), &systems()).unwrap();
    let paths: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "components/lib/interface/src/lib.rs",
            "platform/odroidc4/system.xml",
            "system.xml",
            "platform/qemu_virt_aarch64/sddf_serial.xml"
        ]
    );
    for (path, text) in files {
        assert!(
            read(&path) == text,
            "{path} differs from what systems/ describes: run `make system` (and edit the description, not the file)"
        );
    }
}

#[test]
fn the_generated_systems_are_valid_microkit_descriptions() {
    for (path, text) in systems() {
        let system = warden_sysgen::generate(&interfaces(), &text).unwrap();
        let parsed = warden_system::parse(&path, &system.xml)
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert!(!parsed.protection_domains.is_empty());
    }
}

#[test]
fn adding_a_driver_is_one_entry() {
    let text = format!(
        "{}\n[[pd]]\nname = \"demo\"\nimage = \"demo_driver.elf\"\ninterface = \"demo_driver\"\ndriver = 7\npriority = 150\n",
        qemu()
    );
    let xml = warden_sysgen::generate(&interfaces(), &text).unwrap().xml;
    // Its rings, both sides' maps, its channel to the manager and to the log printer.
    for line in [
        "<memory_region name=\"to_driver7\" size=\"0x2000\" />",
        "<memory_region name=\"from_driver7\" size=\"0x2000\" />",
        "<map mr=\"to_driver7\" vaddr=\"0x4018000\" perms=\"rw\" setvar_vaddr=\"to_driver7\" setvar_size=\"to_driver7_size\" />",
        "<map mr=\"from_driver7\" vaddr=\"0x401a000\" perms=\"rw\" setvar_vaddr=\"from_driver7\" setvar_size=\"from_driver7_size\" />",
        "<protection_domain name=\"demo\" id=\"7\" priority=\"150\">",
        "<map mr=\"to_driver7\" vaddr=\"0x4000000\" perms=\"rw\" setvar_vaddr=\"from_manager\" setvar_size=\"from_manager_size\" />",
        "<end pd=\"device_manager\" id=\"7\" />\n        <end pd=\"demo\" id=\"0\" pp=\"true\" />",
        "<end pd=\"demo\" id=\"61\" pp=\"true\" notify=\"false\" />\n        <end pd=\"log_printer\" id=\"7\" notify=\"false\" />",
    ] {
        assert!(xml.contains(line), "no {line:?} in\n{xml}");
    }
    // Nested in the manager, after the other drivers (the client's log id moves up one).
    let manager_end = xml.find("\n    </protection_domain>\n").unwrap();
    assert!(xml.find("name=\"demo\"").unwrap() < manager_end);
    assert!(xml.contains("<end pd=\"client\" id=\"61\" pp=\"true\" notify=\"false\" />\n        <end pd=\"log_printer\" id=\"8\""));
    warden_system::parse("with-demo.xml", &xml).unwrap();
}

/// The QEMU virt description with `from` replaced by `to` (which must be there).
fn changed(from: &str, to: &str) -> String {
    let text = qemu();
    assert!(text.contains(from), "no {from:?} in the description");
    text.replacen(from, to, 1)
}

#[test]
fn a_broken_description_gets_an_error_that_names_the_problem() {
    let interfaces = interfaces();
    let cases = [
        (changed("interface = \"rtc\"", "interface = \"rtcc\""), "PD 'rtc_driver': no interface 'rtcc'"),
        (changed("maps = [\"rtc_driver.rtc\"]", "maps = [\"rtc_driver.clock\"]"), "region 'rtc': PD 'rtc_driver''s interface 'rtc' has no map 'clock'"),
        (changed("maps = [\"rtc_driver.rtc\"]", "maps = [\"rtc_drive.rtc\"]"), "region 'rtc': no PD 'rtc_drive'"),
        (changed("maps = [\"rtc_driver.rtc\"]", "maps = []"), "region 'rtc' is mapped by no PD"),
        (changed("size = 0x1000\npaddr = 0x9010000", "size = 0x1800\npaddr = 0x9010000"), "region 'rtc': 0x1800 bytes is not a whole number"),
        (changed("paddr = 0x9010000\n", ""), "region 'rtc': PD 'rtc_driver' maps it as device registers ('rtc'), but it has no physical address"),
        (changed("name = \"block_data\"\nsize = 0x1000", "name = \"block_data\"\nsize = 0x100000"), "PD 'blk_driver': map 'block_data' (0x3104000-0x3204000) overlaps map 'blk_storage_info' at 0x3200000"),
        (changed("driver = 5", "driver = 4"), "PD 'rng_driver': driver PD 4 is described twice"),
        (changed("driver = 5", "driver = 9"), "PD 'rng_driver': driver PD 9; the device manager has driver PDs 1-8"),
        (changed("name = \"rng_driver\"", "name = \"rtc_driver\""), "PD 'rtc_driver' is described twice"),
        (changed("irqs = [{ channel = \"device_irq\", irq = 78 }]", "irqs = [{ channel = \"client\", irq = 78 }]"), "PD 'rng_driver': channel id 1 is used twice (IRQ 78; channel 'rng_driver.client')"),
        (changed("irqs = [{ channel = \"device_irq\", irq = 78 }]", "irqs = [{ channel = \"irq\", irq = 78 }]"), "PD 'rng_driver': its interface has no channel 'irq' for IRQ 78"),
        (changed("irq = 30 }", "irq = 30, trigger = \"rising\" }"), "PD 'timer': IRQ 30 has trigger 'rising' (edge or level)"),
        (changed("call = [\"client.entropy\", \"rng_driver.client\"]", "call = [\"rng_driver.client\", \"client.entropy\"]"), "PD 'rng_driver' (priority 150) calls PD 'client' (priority 100): the Microkit allows calls only to a PD of higher priority"),
        (changed("notify = [\"client.block\", \"blk_driver.client\"]", "notify = [\"client.disk\", \"blk_driver.client\"]"), "channel end 'client.disk': PD 'client''s interface 'block_client' has no channel or range 'disk'"),
        (changed("notify = [\"client.block\", \"blk_driver.client\"]", "notify = [\"client.block\", \"client.timer\"]"), "both ends are in one PD"),
        (changed("notify = [\"client.block\", \"blk_driver.client\"]", "notify = [\"client.block\"]"), "invalid length 1"),
        (changed("name = \"shell\"\nimage", "name = \"Shell\"\nimage"), "PD 'Shell': a name is lower-case letters"),
        (changed("priority = 90", "priority = 255"), "PD 'shell': priority 255 (the Microkit's are 0-254)"),
        (changed("priority = 90", "priorty = 90"), "unknown field `priorty`"),
        (changed("comment = \"The block client's queue pair and data.\"", "comment = \"The block client's queue pair -- and data.\""), "a comment holds '--'"),
        (changed("interface = \"log_printer\"", "interface = \"shell\""), "the log printer's interface has no range 'senders'"),
        (changed("interface = \"device_manager\"", "interface = \"shell\""), "driver PDs are described, but no device manager"),
        (changed("irqs = [{ channel = \"device_irq\", irq = 78 }]", "irqs = [{ channel = \"device_irq\", irq = 33 }]"), "IRQ 33 is given to PD 'uart_driver' and to PD 'rng_driver'"),
        (changed("maps = [\"blk_driver.responses\", \"client.responses\"]", "maps = [\"blk_driver.responses\", \"client.responses\", \"client.block_data\"]"), "PD 'client' maps region 'blk_responses' twice ('responses' and 'block_data')"),
        (changed("name = \"blk_requests\"\nsize = 0x2000", "name = \"blk_requests\"\nsize = 0x2000\npaddr = 0x40000000"), "region 'blk_requests' is device memory (it has a physical address), but PD 'blk_driver' maps it as shared memory"),
        (changed("name = \"block_data\"\nsize = 0x1000", "name = \"block_data\"\nsize = 0xfffffffffffff000"), "PD 'blk_driver': map 'block_data' of 0xfffffffffffff000 bytes at 0x3104000 runs past 2^64"),
        (changed("log_printer = true\n", ""), "no log printer is described"),
        (changed("output = \"system.xml\"", "output = \"../system.xml\""), "output '../system.xml': a path relative"),
        (changed("output = \"system.xml\"", "output = \"./system.xml\""), "output './system.xml'"),
        (changed("comment = \"The block client's queue pair and data.\"", "comment = \"The block client's \\u0001 queue\""), "region 'blk_requests': comment holds the control character"),
        (changed("stack_size = 0x40000", "stack_size = 0x40010"), "the system description made from it is refused"),

    ];
    for (text, expected) in cases {
        let error = error_of(&interfaces, &text);
        assert!(
            error.contains(expected),
            "expected {expected:?}, got {error:?}"
        );
    }
}

#[test]
fn broken_interfaces_get_an_error_that_names_the_problem() {
    let cases = [
        ("[a]\ndoc = \"\"\nextends = \"b\"\n[b]\ndoc = \"\"\nextends = \"a\"\n", "extends itself"),
        ("[a]\ndoc = \"\"\nextends = \"c\"\n", "interface 'a' extends 'c', which is not defined"),
        ("[a]\ndoc = \"\"\nchannels.x = { id = 62, doc = \"\" }\n", "channel 'x' has id 62; Microkit channel ids are 0-61"),
        ("[a]\ndoc = \"\"\nchannels.x = { id = 1, doc = \"\" }\nchannels.y = { id = 1, doc = \"\" }\n", "channels 'x' and 'y' both have id 1"),
        ("[a]\ndoc = \"\"\nchannels.x = { id = 3, doc = \"\" }\nranges.r = { first = 2, last = 4, doc = \"\" }\n", "range 'r' holds id 3, which is 'x''s"),
        ("[a]\ndoc = \"\"\nmaps.m = { kind = \"shared\", vaddr = 0x1234, doc = \"\" }\n", "map 'm' at 0x1234 is not on a page boundary"),
        ("[a]\ndoc = \"\"\nmaps.m = { kind = \"shared\", vaddr = 0x1000, perms = \"q\", doc = \"\" }\n", "map 'm' has permissions 'q'"),
        ("[a]\ndoc = \"\"\nmaps.m = { kind = \"shared\", vaddr = 0x1000, perms = \"w\", doc = \"\" }\n", "map 'm' has permissions 'w'"),
        ("[a]\ndoc = \"two\\nlines\"\n", "interface 'a': doc holds the control character '\\n' (it is one line)"),
        ("[a]\ndoc = \"\\u202e\"\n", "interface 'a': doc holds the control character '\\u{202e}'"),
        ("[mod]\ndoc = \"\"\n", "interface 'mod': a Rust keyword cannot name it"),
        ("[a]\ndoc = \"\"\nchannels.uart = { id = 1, doc = \"\" }\nmaps.uart = { kind = \"device\", vaddr = 0x1000, doc = \"\" }\n", "channel 'uart' and map 'uart' would be one constant UART"),
        ("[a]\ndoc = \"\"\nmaps.x = { kind = \"shared\", vaddr = 0x1000, doc = \"\" }\nmaps.x_size = { kind = \"shared\", vaddr = 0x2000, doc = \"\" }\n", "maps 'x' and 'x_size' would both set the symbol 'x_size'"),

        ("[a]\ndoc = \"\"\nmaps.m = { kind = \"mmio\", vaddr = 0x1000, doc = \"\" }\n", "unknown variant `mmio`"),
        ("[a]\ndoc = \"\"\n[b]\nextends = \"a\"\ndoc = \"\"\nchannels.log = { id = 1, doc = \"\" }\n[a.channels]\nlog = { id = 2, doc = \"\" }\n", "channel 'log' is also its parent's"),
    ];
    for (text, expected) in cases {
        match warden_sysgen::Interfaces::parse(text) {
            Ok(_) => panic!("taken: {text}"),
            Err(error) => assert!(
                error.contains(expected),
                "expected {expected:?}, got {error:?}"
            ),
        }
    }
}

/// Whatever a description says, the generator answers with a system or an error, never a
/// panic: the QEMU virt description with lines dropped, repeated or swapped and numbers and
/// bytes changed (each case stays valid TOML often enough to reach the checks).
mod mutated {
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Edit {
        Drop(usize),
        Repeat(usize),
        Swap(usize, usize),
        Number(usize, u64),
        Byte(usize, u8),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            any::<usize>().prop_map(Edit::Drop),
            any::<usize>().prop_map(Edit::Repeat),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
            (
                any::<usize>(),
                prop_oneof![
                    Just(0u64),
                    Just(1),
                    Just(61),
                    Just(62),
                    Just(255),
                    Just(0xffff_ffff_ffff_f000),
                    Just(u64::MAX),
                    any::<u64>()
                ]
            )
                .prop_map(|(line, value)| Edit::Number(line, value)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Byte(at, byte)),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for edit in edits {
            let count = lines.len().max(1);
            match edit {
                Edit::Drop(line) => {
                    if !lines.is_empty() {
                        lines.remove(line % count);
                    }
                }
                Edit::Repeat(line) => {
                    if let Some(copy) = lines.get(line % count).cloned() {
                        lines.insert(line % count, copy);
                    }
                }
                Edit::Swap(a, b) => {
                    if !lines.is_empty() {
                        lines.swap(a % count, b % count);
                    }
                }
                Edit::Number(line, value) => {
                    if let Some(text) = lines.get_mut(line % count) {
                        if let Some((key, _)) = text.split_once(" = ") {
                            if !text.contains('"') && !text.contains('[') {
                                *text = format!("{key} = {value}");
                            }
                        }
                    }
                }
                Edit::Byte(at, byte) => {
                    let joined = lines.join("\n");
                    let mut bytes = joined.into_bytes();
                    if !bytes.is_empty() {
                        let at = at % bytes.len();
                        bytes[at] = *byte;
                    }
                    lines = String::from_utf8_lossy(&bytes)
                        .lines()
                        .map(str::to_owned)
                        .collect();
                }
            }
        }
        lines.join("\n")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn a_mutated_description_gets_a_system_or_an_error(edits in prop::collection::vec(edit(), 1..6)) {
            let interfaces = super::interfaces();
            let text = apply(&super::qemu(), &edits);
            if let Ok(system) = warden_sysgen::generate(&interfaces, &text) {
                // Whatever it accepts, Warden's parser takes.
                prop_assert!(warden_system::parse("mutated.xml", &system.xml).is_ok());
            }
        }

        #[test]
        fn mutated_interfaces_get_interfaces_or_an_error(edits in prop::collection::vec(edit(), 1..6)) {
            let text = apply(&super::read("systems/interfaces.toml"), &edits);
            if let Ok(interfaces) = warden_sysgen::Interfaces::parse(&text) {
                let _ = interfaces.rust();
                let _ = warden_sysgen::generate(&interfaces, &super::qemu());
            }
        }
    }
}
