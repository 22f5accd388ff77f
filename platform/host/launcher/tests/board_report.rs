//! `warden-host board`: the devices of a tree and the nodes left out, counted by reason in the
//! last line; the JSON form says the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

const TREE: &str = r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    model = "report test";
    interrupt-parent = <&gic>;
    gic: interrupt-controller@1000 {
        compatible = "arm,gic-400";
        reg = <0x1000 0x1000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    uart@2000 { compatible = "arm,pl011", "arm,primecell"; reg = <0x2000 0x1000>; interrupts = <0 1 4>; };
    nine@4000 {
        compatible = "test,nine";
        reg = <0x4000 0x10>, <0x4100 0x10>, <0x4200 0x10>, <0x4300 0x10>, <0x4400 0x10>,
              <0x4500 0x10>, <0x4600 0x10>, <0x4700 0x10>, <0x4800 0x10>;
    };
    odd@5000 { compatible = "test,odd"; reg = <0x5000 0x10 0x5100>; };
    i2c@7000 {
        compatible = "test,i2c";
        reg = <0x7000 0x100>;
        #address-cells = <1>;
        #size-cells = <0>;
        sensor@48 { compatible = "test,sensor"; reg = <0x48>; };
    };
    pcie@10000000 {
        compatible = "pci-host-ecam-generic";
        device_type = "pci";
        #address-cells = <3>;
        #size-cells = <1>;
        #interrupt-cells = <1>;
        reg = <0x10000000 0x100000>;
        bus-range = <0 0>;
        ranges = <0x02000000 0 0x20000000 0x20000000 0x1000000>;
        interrupt-map-mask = <0 0 0 7>;
        interrupt-map = <0 0 0 1 &gic 0 5 4>;
    };
};
"#;

fn blob() -> Vec<u8> {
    // A directory per call: the tests run in parallel.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "warden-board-report-{}-{serial}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (dts, dtb) = (dir.join("t.dts"), dir.join("t.dtb"));
    std::fs::write(&dts, TREE).unwrap();
    let status = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb)
        .arg(&dts)
        .status()
        .expect("run dtc");
    assert!(status.success());
    let blob = std::fs::read(&dtb).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    blob
}

#[test]
fn the_report_lists_devices_and_counts_what_it_leaves_out() {
    let report = warden_host::board::report(&blob(), false).unwrap();
    let lines: Vec<&str> = report.text.lines().collect();
    assert_eq!(
        *lines.last().unwrap(),
        "board: 5 devices, 2 left out (reasons: 1 malformed reg, 1 more reg windows than 8)"
    );
    assert!(lines.contains(
        &"/uart@2000  compatible arm,pl011 arm,primecell  bus platform  windows 0x2000+0x1000  \
          intids 33  parent -"
    ));
    // On its controller's bus, at its address (it was left out: issue 16).
    assert!(lines.contains(
        &"/i2c@7000/sensor@48  compatible test,sensor  bus i2c@0x48  windows -  intids -  \
          parent /i2c@7000"
    ));
    assert!(lines
        .iter()
        .any(|line| line.starts_with("/i2c@7000  compatible test,i2c")));
    // A PCI host bridge: its buses, apertures and INTx routes on a line of their own.
    let host = lines
        .iter()
        .position(|line| line.starts_with("/pcie@10000000  compatible pci-host-ecam-generic"))
        .expect("the host bridge");
    assert_eq!(
        lines[host + 1],
        "    pci host: buses 0-0; apertures memory 0x20000000+0x1000000 at 0x20000000; INTx 1 routes"
    );
}

#[test]
fn the_json_report_says_the_same() {
    let report = warden_host::board::report(&blob(), true).unwrap();
    let value: serde_json::Value = serde_json::from_str(&report.text).unwrap();
    assert_eq!(value["board"], "report test");
    assert_eq!(value["devices"].as_array().unwrap().len(), 5);
    let left_out = value["left_out"].as_array().unwrap();
    assert_eq!(left_out.len(), 2);
    assert_eq!(left_out[0]["path"], "/nine@4000");
    assert_eq!(left_out[1]["path"], "/odd@5000");
    let sensor = &value["devices"][3];
    assert_eq!(sensor["path"], "/i2c@7000/sensor@48");
    assert_eq!(sensor["bus"], "i2c");
    assert_eq!(sensor["address"], 0x48);
    assert_eq!(sensor["parent"], "/i2c@7000");
    let uart = &value["devices"][1];
    assert_eq!(uart["path"], "/uart@2000");
    assert_eq!(uart["windows"][0]["base"], 0x2000);
    assert_eq!(uart["intids"][0], 33);
    assert!(uart["pci"].is_null());
    let host = &value["devices"][4];
    assert_eq!(host["path"], "/pcie@10000000");
    assert_eq!(host["pci"]["last_bus"], 0);
    assert_eq!(host["pci"]["apertures"][0]["space"], "memory");
    assert_eq!(host["pci"]["apertures"][0]["cpu_base"], 0x2000_0000);
    assert_eq!(host["pci"]["intx"][0]["intid"], 37);
    assert_eq!(host["pci"]["intx_malformed"], false);
    assert!(value["summary"]
        .as_str()
        .unwrap()
        .starts_with("board: 5 devices, 2 left out"));
}
