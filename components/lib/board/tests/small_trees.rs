//! Hand-written trees (compiled by dtc) for what real boards rarely show: capacity limits,
//! malformed properties, disabled nodes, nesting, buses without `ranges`, non-GIC interrupts;
//! and what Linux's rules read where Warden used to be stricter or blind (PPIs above 15,
//! Qualcomm's GIC, `interrupts-extended`, phandles resolved through an index).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{all_devices, chain_tree, compile_dts, compile_dts_with, device, read_everything};
use warden_board::{Board, BoardError, PhandleSlot};
use warden_vocabulary::MmioWindow;

const TREE: &str = r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    compatible = "test,board", "test,family";
    model = "Warden test board";
    interrupt-parent = <&gic>;

    cpus {
        #address-cells = <1>;
        #size-cells = <0>;
        cpu@0 { compatible = "arm,cortex-a53"; device_type = "cpu"; reg = <0>; };
    };
    chosen { compatible = "test,not-a-device"; };
    aliases { compatible = "test,not-a-device"; };
    reserved-memory {
        #address-cells = <1>;
        #size-cells = <1>;
        ranges;
        pool@100000 { compatible = "shared-dma-pool"; reg = <0x100000 0x1000>; };
    };
    memory@40000000 { device_type = "memory"; reg = <0x40000000 0x1000000>; };

    gic: interrupt-controller@1000 {
        compatible = "arm,gic-400";
        reg = <0x1000 0x1000>, <0x2000 0x2000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    gpio_intc: gpio-interrupts@3000 {
        compatible = "test,gpio-intc";
        reg = <0x3000 0x100>;
        interrupt-controller;
        #interrupt-cells = <2>;
        interrupts = <0 5 4>;
    };
    nine-windows@4000 {
        compatible = "test,nine-windows";
        reg = <0x4000 0x10>, <0x4100 0x10>, <0x4200 0x10>, <0x4300 0x10>, <0x4400 0x10>,
              <0x4500 0x10>, <0x4600 0x10>, <0x4700 0x10>, <0x4780 0x10>;
    };
    eight-windows@4800 {
        compatible = "test,eight-windows";
        reg = <0x4800 0x10>, <0x4900 0x10>, <0x4a00 0x10>, <0x4b00 0x10>, <0x4c00 0x10>,
              <0x4d00 0x10>, <0x4e00 0x10>, <0x4f00 0x10>;
    };
    odd-reg@5000 { compatible = "test,odd-reg"; reg = <0x5000 0x10 0x5100>; };
    disabled@6000 { compatible = "test,disabled"; reg = <0x6000 0x100>; status = "disabled"; };
    status-ok { compatible = "test,status-ok"; status = "ok"; };
    five-compatible { compatible = "a,1", "a,2", "a,3", "a,4", "a,5"; };
    seventeen-interrupts {
        compatible = "test,seventeen-interrupts";
        interrupts = <0 1 4>, <0 2 4>, <0 3 4>, <0 4 4>, <0 5 4>, <0 6 4>, <0 7 4>, <0 8 4>,
                     <0 9 4>, <0 10 4>, <0 11 4>, <0 12 4>, <0 13 4>, <0 14 4>, <0 15 4>,
                     <0 16 4>, <0 17 4>;
    };
    sixteen-interrupts {
        compatible = "test,sixteen-interrupts";
        interrupts = <0 1 4>, <0 2 4>, <0 3 4>, <0 4 4>, <0 5 4>, <0 6 4>, <0 7 4>, <0 8 4>,
                     <0 9 4>, <0 10 4>, <0 11 4>, <0 12 4>, <0 13 4>, <0 14 4>, <0 15 4>,
                     <0 16 4>;
    };
    odd-interrupts { compatible = "test,odd-interrupts"; interrupts = <0 1 4 0>; };
    bad-spi { compatible = "test,bad-spi"; interrupts = <0 988 4>; };
    button {
        compatible = "test,button";
        interrupt-parent = <&gpio_intc>;
        interrupts = <3 8>;
    };
    dangling {
        compatible = "test,dangling";
        interrupt-parent = <0x4242>;
        interrupts = <0 1 4>;
    };
    bus@10000000 {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges = <0x0 0x10000000 0x100000>;
        reg = <0x10000000 0x100000>;

        child@2000 { compatible = "test,child"; reg = <0x2000 0x100>; interrupts = <1 3 4>; };
        plain-node {
            #address-cells = <1>;
            #size-cells = <1>;
            ranges;
            grandchild@3000 { compatible = "test,grandchild"; reg = <0x3000 0x10>; };
        };
        wide-bus@8000 {
            compatible = "simple-bus";
            #address-cells = <2>;
            #size-cells = <2>;
            ranges = <0x1 0x0 0x8000 0x0 0x1000>;
            reg = <0x8000 0x1000>;

            deep@100000100 { compatible = "test,deep"; reg = <0x1 0x100 0x0 0x10>; };
            outside@200000000 { compatible = "test,outside"; reg = <0x2 0x0 0x0 0x10>; };
            straddling@100000ff8 { compatible = "test,straddling"; reg = <0x1 0xff8 0x0 0x10>; };
        };
    };
    i2c@7000 {
        compatible = "test,i2c";
        reg = <0x7000 0x100>;
        #address-cells = <1>;
        #size-cells = <0>;
        sensor@48 { compatible = "test,sensor"; reg = <0x48>; };
    };
    no-ranges-bus@9000 {
        compatible = "test,bus";
        reg = <0x9000 0x100>;
        #address-cells = <1>;
        #size-cells = <1>;
        leaf@10 { compatible = "test,leaf"; reg = <0x10 0x4>; };
        no-reg-leaf { compatible = "test,no-reg-leaf"; };
    };
};
"#;

#[test]
fn hand_built_tree_reports_each_node_on_its_own() {
    let blob = compile_dts(TREE);
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.model(), Some("Warden test board"));
    assert_eq!(board.compatible(), Some("test,board"));
    let devices = all_devices(&board);

    let names: Vec<String> = devices
        .iter()
        .map(|item| match item {
            Ok(device) => device.path_name.to_owned(),
            Err(error) => format!("error: {error}"),
        })
        .collect();
    // Tree order; nothing from /cpus, /chosen, /aliases, /reserved-memory or memory.
    assert_eq!(names.len(), 26, "{names:#?}");
    assert!(names
        .iter()
        .all(|name| !name.contains("cpu@") && !name.contains("pool@")));

    // Capacity (issue 16: a GICv3's six windows were refused at four): 9 windows is too many,
    // 8 is not; 17 interrupts too many, 16 not.
    assert_eq!(
        devices[2],
        Err(BoardError::TooMany {
            node: "nine-windows@4000",
            what: "reg windows",
            limit: 8,
        })
    );
    assert_eq!(device(&devices, "eight-windows@4800").1.mmio.len(), 8);
    assert_eq!(device(&devices, "sixteen-interrupts").1.irqs.len(), 16);
    assert!(devices[2]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("more reg windows than the 8 Warden holds"));
    assert_eq!(
        devices[4],
        Err(BoardError::BadProperty {
            node: "odd-reg@5000",
            property: "reg"
        })
    );
    assert!(devices[4]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("odd-reg@5000"));

    let (_, disabled) = device(&devices, "disabled@6000");
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.mmio.as_slice(),
        [MmioWindow {
            base: 0x6000,
            size: 0x100
        }]
    );
    assert!(device(&devices, "status-ok").1.enabled);
    assert!(device(&devices, "gpio-interrupts@3000").1.enabled);
    assert!(devices.contains(&Err(BoardError::TooMany {
        node: "five-compatible",
        what: "compatible strings",
        limit: 4,
    })));
    assert!(devices.contains(&Err(BoardError::TooMany {
        node: "seventeen-interrupts",
        what: "interrupts",
        limit: 16,
    })));
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "odd-interrupts",
        property: "interrupts"
    })));
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "bad-spi",
        property: "interrupts"
    })));
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "dangling",
        property: "interrupt-parent"
    })));

    // The GPIO interrupt controller's own interrupt goes to the GIC; the button's do not.
    assert_eq!(
        device(&devices, "gpio-interrupts@3000").1.irqs.as_slice(),
        [37]
    );
    let (_, button) = device(&devices, "button");
    assert!(button.irqs.is_empty() && button.interrupt_parent_not_gic);

    // Nesting and translation.
    let (bus_index, bus) = device(&devices, "bus@10000000");
    assert_eq!((bus.depth, bus.parent), (1, None));
    let (_, child) = device(&devices, "child@2000");
    assert_eq!((child.depth, child.parent), (2, Some(bus_index)));
    assert_eq!(
        child.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000_2000,
            size: 0x100
        }]
    );
    assert_eq!(child.irqs.as_slice(), [19]);
    // `plain-node` is no device: the grandchild's parent is the bus above it.
    let (_, grandchild) = device(&devices, "grandchild@3000");
    assert_eq!((grandchild.depth, grandchild.parent), (3, Some(bus_index)));
    assert_eq!(
        grandchild.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000_3000,
            size: 0x10
        }]
    );
    let (wide_index, wide) = device(&devices, "wide-bus@8000");
    assert_eq!(
        wide.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000_8000,
            size: 0x1000
        }]
    );
    let (_, deep) = device(&devices, "deep@100000100");
    assert_eq!((deep.depth, deep.parent), (3, Some(wide_index)));
    assert_eq!(
        deep.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000_8100,
            size: 0x10
        }]
    );
    // Outside every range: a device all the same, with no window (Linux's `of_device_alloc`
    // keeps the windows before the first that fails to translate; it used to be left out).
    let (_, outside) = device(&devices, "outside@200000000");
    assert!(outside.mmio.is_empty() && outside.reg_not_translatable);
    assert!(!deep.reg_not_translatable);
    // Linux's rule: a range must hold the window's start; the window may run past its end.
    let (_, straddling) = device(&devices, "straddling@100000ff8");
    assert_eq!(
        straddling.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000_8ff8,
            size: 0x10
        }]
    );

    // I2C addresses are not CPU addresses: #size-cells 0 (and no `ranges`). The sensor is a
    // device on its controller's I2C bus, at its address (it used to be refused).
    let (i2c, _) = device(&devices, "i2c@7000");
    let (_, sensor) = device(&devices, "sensor@48");
    assert_eq!(sensor.bus, local("i2c", 0x48));
    assert_eq!(sensor.parent, Some(i2c));
    // Under a bus without `ranges` (a syscon's children): the same.
    let (bus_index, _) = device(&devices, "no-ranges-bus@9000");
    let (_, leaf) = device(&devices, "leaf@10");
    assert!(leaf.mmio.is_empty() && leaf.reg_not_translatable);
    assert_eq!(leaf.parent, Some(bus_index));
    // An error item keeps its place in the sequence: the next node's parent index still holds.
    let (_, no_reg_leaf) = device(&devices, "no-reg-leaf");
    assert_eq!(no_reg_leaf.parent, Some(bus_index));
    assert!(no_reg_leaf.mmio.is_empty());
}

#[test]
fn gic_v3_specifiers_and_interrupt_parent_chains() {
    let blob = compile_dts(
        r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    interrupt-parent = <&redirect>;

    gic: interrupt-controller@8000000 {
        compatible = "arm,gic-v3";
        reg = <0x0 0x8000000 0x0 0x10000>, <0x0 0x80a0000 0x0 0xf60000>;
        interrupt-controller;
        #interrupt-cells = <4>;
    };
    /* No #interrupt-cells: interrupts pass on through its own interrupt-parent. */
    redirect: redirect {
        interrupt-parent = <&gic>;
    };
    extended {
        compatible = "test,extended";
        interrupts = <0 1 4 0>, <1 2 4 0>, <2 3 4 0>, <3 4 4 0>;
    };
    bad-type {
        compatible = "test,bad-type";
        interrupts = <4 0 4 0>;
    };
};
"#,
    );
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.model(), None);
    assert_eq!(board.compatible(), None);
    let devices = all_devices(&board);
    let (_, extended) = device(&devices, "extended");
    assert_eq!(extended.irqs.as_slice(), [33, 18, 4099, 1060]);
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "bad-type",
        property: "interrupts"
    })));
}

#[test]
fn three_cell_interrupts_of_a_gic_v2_with_four_cells_are_refused() {
    let blob = compile_dts(
        r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    gic: interrupt-controller@1000 {
        compatible = "arm,cortex-a15-gic";
        interrupt-controller;
        #interrupt-cells = <4>;
    };
    device@2000 {
        compatible = "test,device";
        reg = <0x2000 0x10>;
        interrupt-parent = <&gic>;
        interrupts = <0 1 4 0>;
    };
};
"#,
    );
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let error = devices[1].as_ref().unwrap_err();
    assert_eq!(
        *error,
        BoardError::BadParentProperty {
            node: "device@2000",
            parent: "interrupt-controller@1000",
            property: "#interrupt-cells"
        }
    );
    assert!(error.to_string().contains("device@2000"));
}

#[test]
fn nodes_nested_too_deep_are_refused_as_a_whole() {
    // A node one deeper than MAX_DEPTH (the root is depth 0).
    let mut source = String::from("/dts-v1/;\n/ {\n");
    for level in 0..=warden_board::MAX_DEPTH {
        source.push_str(&format!("n{level} {{ compatible = \"test,n\";\n"));
    }
    for _ in 0..=warden_board::MAX_DEPTH + 1 {
        source.push_str("};\n");
    }
    let blob = compile_dts(&source);
    assert!(matches!(Board::new(&blob), Err(BoardError::TooDeep { .. })));

    // A node at MAX_DEPTH itself is read, and every node's parent is the one above it.
    let mut source = String::from("/dts-v1/;\n/ {\n");
    for level in 0..warden_board::MAX_DEPTH {
        source.push_str(&format!("n{level} {{ compatible = \"test,n\";\n"));
    }
    for _ in 0..=warden_board::MAX_DEPTH {
        source.push_str("};\n");
    }
    let blob = compile_dts(&source);
    let board = Board::new(&blob).unwrap();
    let mut deepest = 0;
    for (index, item) in board.devices().enumerate() {
        let device = item.unwrap();
        assert_eq!(device.depth, index + 1);
        assert_eq!(device.parent, index.checked_sub(1));
        deepest = device.depth;
    }
    assert_eq!(deepest, warden_board::MAX_DEPTH);
}

/// Overwrites with `FDT_NOP`s the property `name` whose value is `value` (as a bootloader's
/// `fdt_nop_property` does), or, with `name` empty, the whole childless node named `value`.
fn nop_out(blob: &mut [u8], name: &str, value: &[u8]) {
    let word = |blob: &[u8], at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
    let (structure, strings) = (word(blob, 8) as usize, word(blob, 12) as usize);
    let mut at = structure;
    let (start, end) = loop {
        let token = word(blob, at);
        if name.is_empty() && token == 1 && blob[at + 4..].starts_with(value) {
            let length = (value.len() + 1).div_ceil(4) * 4;
            let mut end = at + 4 + length;
            // A childless node: its properties, then FDT_END_NODE.
            while word(blob, end) == 3 {
                end += 12 + (word(blob, end + 4) as usize).div_ceil(4) * 4;
            }
            assert_eq!(word(blob, end), 2, "a childless node");
            break (at, end + 4);
        }
        if !name.is_empty() && token == 3 {
            let length = word(blob, at + 4) as usize;
            let name_at = strings + word(blob, at + 8) as usize;
            if blob[name_at..].starts_with(name.as_bytes())
                && blob[name_at + name.len()] == 0
                && &blob[at + 12..at + 12 + length] == value
            {
                break (at, at + 12 + length.div_ceil(4) * 4);
            }
        }
        at += 4;
    };
    for nop in (start..end).step_by(4) {
        blob[nop..nop + 4].copy_from_slice(&4_u32.to_be_bytes());
    }
}

#[test]
fn nop_tokens_left_by_a_bootloader_are_skipped() {
    let mut blob = compile_dts(
        r#"
/dts-v1/;
/ {
    nop-me = "first";
    #address-cells = <1>;
    #size-cells = <1>;
    model = "NOP board";
    compatible = "test,nop-board";
    a@1000 { compatible = "test,a"; status = "disabled"; reg = <0x1000 0x10>; };
    b@2000 { compatible = "test,b"; reg = <0x2000 0x10>; };
    c@3000 { compatible = "test,c"; reg = <0x3000 0x10>; };
};
"#,
    );
    nop_out(&mut blob, "nop-me", b"first\0");
    nop_out(&mut blob, "status", b"disabled\0");
    nop_out(&mut blob, "", b"b@2000");
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.model(), Some("NOP board"));
    assert_eq!(board.compatible(), Some("test,nop-board"));
    let devices = all_devices(&board);
    assert_eq!(devices.len(), 2, "{devices:#?}");
    let (_, a) = device(&devices, "a@1000");
    assert!(a.enabled, "its status was removed");
    assert_eq!(
        a.mmio.as_slice(),
        [MmioWindow {
            base: 0x1000,
            size: 0x10
        }]
    );
    let (_, c) = device(&devices, "c@3000");
    assert_eq!(
        c.mmio.as_slice(),
        [MmioWindow {
            base: 0x3000,
            size: 0x10
        }]
    );
}

// --- Linux's rules ---------------------------------------------------------------------------

const LINUX_TREE: &str = r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    compatible = "test,board";
    interrupt-parent = <&gic>;

    gic: interrupt-controller@1000 {
        compatible = "arm,gic-v3";
        reg = <0x1000 0x1000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    qgic: interrupt-controller@2000 {
        compatible = "qcom,msm-qgic2";
        reg = <0x2000 0x1000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    gpio: gpio@3000 {
        compatible = "test,gpio";
        reg = <0x3000 0x100>;
        interrupt-controller;
        #interrupt-cells = <2>;
    };
    thunderx-uart@4000 {
        compatible = "arm,pl011";
        reg = <0x4000 0x1000>;
        interrupts = <1 0x15 4>;
    };
    ppi-too-far@5000 {
        compatible = "test,ppi-too-far";
        reg = <0x5000 0x100>;
        interrupts = <1 1004 4>;
    };
    qcom-device@6000 {
        compatible = "test,qcom";
        reg = <0x6000 0x100>;
        interrupt-parent = <&qgic>;
        interrupts = <0 7 4>, <1 2 4>;
    };
    extended@7000 {
        compatible = "test,extended";
        reg = <0x7000 0x100>;
        interrupts = <0 99 4>;
        interrupts-extended = <&gic 0 10 4>, <&gpio 5 8>, <&qgic 0 11 4>;
    };
    extended-dangling@8000 {
        compatible = "test,extended-dangling";
        interrupts-extended = <&gic 0 10 4>, <0x4242 1 2>;
    };
    extended-short@9000 {
        compatible = "test,extended-short";
        interrupts-extended = <&gic 0 10>;
    };
};
"#;

#[test]
fn interrupts_are_read_as_linux_reads_them() {
    let blob = compile_dts(LINUX_TREE);
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    // A "PPI" 0x15 is INTID 16 + 0x15 = 37, as Linux maps ThunderX's UARTs.
    let (_, uart) = device(&devices, "thunderx-uart@4000");
    assert_eq!(uart.irqs.as_slice(), [37]);
    // Only the INTID is bounded: 16 + 1004 is past 1019.
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "ppi-too-far@5000",
        property: "interrupts"
    })));
    // Qualcomm's GIC is a GIC.
    let (_, qcom) = device(&devices, "qcom-device@6000");
    assert_eq!(qcom.irqs.as_slice(), [39, 18]);
    assert!(!qcom.interrupt_parent_not_gic);
    // `interrupts-extended` wins over `interrupts`; each entry names its controller, and a
    // GPIO controller's entry is counted out, not taken for an INTID.
    let (_, extended) = device(&devices, "extended@7000");
    assert_eq!(extended.irqs.as_slice(), [42, 43]);
    assert!(extended.interrupt_parent_not_gic);
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "extended-dangling@8000",
        property: "interrupts-extended"
    })));
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "extended-short@9000",
        property: "interrupts-extended"
    })));
    // And the index changes none of it.
    read_everything(&blob).unwrap();
}

#[test]
fn the_phandle_index_needs_room_for_every_phandle() {
    let blob = compile_dts(LINUX_TREE);
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.phandle_count(), 3);
    let mut small = [PhandleSlot::default(); 2];
    assert_eq!(
        board.index_phandles(&mut small).unwrap_err(),
        BoardError::IndexTooSmall {
            needed: 3,
            given: 2
        }
    );
    let mut room = [PhandleSlot::default(); 8];
    let index = board.index_phandles(&mut room).unwrap();
    assert_eq!(index.len(), 3);
}

/// Two nodes claim one phandle: the first in tree order is the one found, with or without the
/// index.
#[test]
fn a_duplicate_phandle_resolves_to_the_first_node_either_way() {
    let source = r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    first: interrupt-controller@1000 {
        compatible = "arm,gic-400";
        interrupt-controller;
        #interrupt-cells = <3>;
        phandle = <7>;
    };
    second@2000 {
        compatible = "test,gpio";
        interrupt-controller;
        #interrupt-cells = <3>;
        phandle = <7>;
    };
    user@3000 { compatible = "test,user"; interrupt-parent = <7>; interrupts = <0 1 4>; };
};
"#;
    let blob = compile_dts_with(source, &["-f"]);
    let board = Board::new(&blob).unwrap();
    let mut storage = vec![PhandleSlot::default(); board.phandle_count()];
    let index = board.index_phandles(&mut storage).unwrap();
    for devices in [
        board.devices().collect::<Vec<_>>(),
        board.devices_indexed(&index).collect(),
    ] {
        let (_, user) = device(&devices, "user@3000");
        assert_eq!(user.irqs.as_slice(), [33]);
    }
}

/// The tree of the quadratic-time report: many nodes whose interrupt parents are chains of
/// hops through nodes without `#interrupt-cells`, each chain its own. Indexed and walked, the
/// answers agree (the time is the board benchmark's business).
#[test]
fn long_interrupt_parent_chains_read_the_same_through_the_index() {
    let blob = chain_tree(200, 7);
    let board = Board::new(&blob).unwrap();
    let mut storage = vec![PhandleSlot::default(); board.phandle_count()];
    let index = board.index_phandles(&mut storage).unwrap();
    let plain: Vec<_> = board.devices().collect();
    let indexed: Vec<_> = board.devices_indexed(&index).collect();
    assert_eq!(plain, indexed);
    let users: Vec<_> = indexed
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .filter(|device| device.path_name.starts_with("user"))
        .collect();
    assert_eq!(users.len(), 200);
    assert!(users.iter().all(|user| user.irqs.as_slice() == [33]));
}

/// Buses that are not memory-mapped (issue 16: 5,873 nodes of Linux's arm64 trees were "malformed
/// or not supported" for their parent's `#size-cells = <0>`).
const LOCAL_BUS_TREE: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    interrupt-parent = <&gic>;
    gic: interrupt-controller@1000 {
        compatible = "arm,gic-400";
        reg = <0 0x1000 0 0x1000>, <0 0x2000 0 0x2000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    i2c@ff805000 {
        compatible = "amlogic,meson-axg-i2c";
        reg = <0 0xff805000 0 0x20>;
        interrupts = <0 39 1>;
        #address-cells = <1>;
        #size-cells = <0>;
        eeprom@50 { compatible = "atmel,24c02"; reg = <0x50>; };
        sensor@48 { compatible = "ti,tmp102"; reg = <0x48 0x49>; interrupts = <0 9 4>; };
        bad@1 { compatible = "test,bad"; reg = [01 02 03]; };
    };
    spi@ffd15000 {
        compatible = "amlogic,meson-g12a-spicc";
        reg = <0 0xffd15000 0 0x44>;
        #address-cells = <1>;
        #size-cells = <0>;
        flash@0 { compatible = "jedec,spi-nor"; reg = <0>; };
    };
    pcie@40000000 {
        compatible = "pci-host-ecam-generic";
        device_type = "pci";
        reg = <0 0x40000000 0 0x10000000>;
        #address-cells = <3>;
        #size-cells = <2>;
        ranges = <0x02000000 0 0x10000000 0 0x10000000 0 0x10000000>;
        nic@0,0 { compatible = "pci8086,100e"; reg = <0x0000 0 0 0 0>; };
        bridge@1,0 {
            compatible = "pci1b36,c";
            device_type = "pci";
            reg = <0x0800 0 0 0 0>;
            #address-cells = <3>;
            #size-cells = <2>;
            disk@0,1 { compatible = "pci1af4,1042"; reg = <0x10100 0 0 0 0>; };
        };
        short@2,0 { compatible = "test,short"; reg = <0x1000 0 0>; };
    };
    ethernet@ff3f0000 {
        compatible = "amlogic,meson-g12a-dwmac";
        reg = <0 0xff3f0000 0 0x10000>;
        mdio {
            compatible = "snps,dwmac-mdio";
            #address-cells = <1>;
            #size-cells = <0>;
            phy@0 { compatible = "ethernet-phy-id001c.c916"; reg = <0>; };
        };
    };
};
"#;

#[test]
fn devices_on_buses_that_are_not_memory_mapped_sit_on_their_controllers_bus() {
    use warden_board::BoardBus;
    let blob = compile_dts(LOCAL_BUS_TREE);
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (i2c, controller) = device(&devices, "i2c@ff805000");
    assert_eq!(controller.bus, BoardBus::Platform);
    assert_eq!(controller.mmio.len(), 1);
    let (_, eeprom) = device(&devices, "eeprom@50");
    assert_eq!(eeprom.bus, local("i2c", 0x50));
    assert!(eeprom.mmio.is_empty(), "an I2C address is no window");
    assert_eq!(eeprom.parent, Some(i2c), "a child of its controller");
    // The first address, as Linux's I2C core reads it; its interrupts as any device's.
    let (_, sensor) = device(&devices, "sensor@48");
    assert_eq!(sensor.bus, local("i2c", 0x48));
    assert_eq!(sensor.irqs.as_slice(), [41]);
    // Not a whole number of address cells: malformed, named.
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "bad@1",
        property: "reg"
    })));
    let (_, flash) = device(&devices, "flash@0");
    assert_eq!(flash.bus, local("spi", 0));
    let (mdio, _) = device(&devices, "mdio");
    let (_, phy) = device(&devices, "phy@0");
    assert_eq!(phy.bus, local("mdio", 0));
    assert_eq!(phy.parent, Some(mdio));
    // PCI functions (issue 16: 63 nodes were "malformed" for their three address cells): on a
    // pci bus at their devfn, as Linux's of_pci_get_devfn reads it; a bridge's own functions
    // under it.
    let (host, _) = device(&devices, "pcie@40000000");
    let (_, nic) = device(&devices, "nic@0,0");
    assert_eq!(nic.bus, local("pci", 0));
    assert_eq!(nic.parent, Some(host));
    let (bridge, port) = device(&devices, "bridge@1,0");
    assert_eq!(port.bus, local("pci", 0x08));
    let (_, disk) = device(&devices, "disk@0,1");
    assert_eq!(disk.bus, local("pci", 0x01));
    assert_eq!(disk.parent, Some(bridge));
    assert!(disk.mmio.is_empty(), "BARs are assigned, not described");
    assert!(devices.contains(&Err(BoardError::BadProperty {
        node: "short@2,0",
        property: "reg"
    })));
    read_everything(&blob).unwrap();
}

/// A `simple-bus` whose `#size-cells` is 0 (a container of fixed regulators): its children are
/// platform devices with no window, as Linux makes them, not devices on a bus named after it
/// (the second review found them taken for an I2C-like bus); a child with no `reg` under an I2C
/// controller stays a platform device, as it was.
#[test]
fn children_of_a_simple_bus_without_sizes_are_platform_devices() {
    use warden_board::BoardBus;
    let blob = compile_dts(
        r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    regulators {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <0>;
        regulator@0 { compatible = "regulator-fixed"; reg = <0>; };
    };
    i2c@7000 {
        compatible = "test,i2c";
        reg = <0x7000 0x100>;
        #address-cells = <1>;
        #size-cells = <0>;
        no-reg { compatible = "test,no-reg"; };
    };
};
"#,
    );
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (_, regulator) = device(&devices, "regulator@0");
    assert_eq!(regulator.bus, BoardBus::Platform);
    assert!(regulator.mmio.is_empty() && regulator.reg_not_translatable);
    let (_, no_reg) = device(&devices, "no-reg");
    assert_eq!(no_reg.bus, BoardBus::Platform);
    assert!(no_reg.mmio.is_empty() && !no_reg.reg_not_translatable);
    read_everything(&blob).unwrap();
}

#[test]
fn an_empty_ranges_maps_only_what_the_parent_space_can_name() {
    // A bus of two address cells with `ranges;` under a root of one: the identity holds for
    // an address below 4 GiB; one above it (or a window running past it) is named by no CPU
    // address. Linux would cut the high bits off and map the window at the wrong place.
    let blob = compile_dts(
        r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    wide {
        compatible = "simple-bus";
        #address-cells = <2>;
        #size-cells = <1>;
        ranges;
        low@2000 { compatible = "test,low"; reg = <0x0 0x2000 0x100>; };
        high@100002000 { compatible = "test,high"; reg = <0x1 0x2000 0x100>; };
        edge@ffffff00 { compatible = "test,edge"; reg = <0x0 0xffffff00 0x200>; };
    };
};
"#,
    );
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (_, low) = device(&devices, "low@2000");
    assert_eq!(
        low.mmio.as_slice(),
        [MmioWindow {
            base: 0x2000,
            size: 0x100
        }]
    );
    assert!(!low.reg_not_translatable);
    for name in ["high@100002000", "edge@ffffff00"] {
        let (_, node) = device(&devices, name);
        assert!(node.mmio.is_empty() && node.reg_not_translatable, "{name}");
    }
    read_everything(&blob).unwrap();
}

/// A device on its controller's bus at `address`.
fn local(kind: &'static str, address: u64) -> warden_board::BoardBus<'static> {
    warden_board::BoardBus::Local {
        kind,
        address: Some(address),
    }
}

#[test]
fn a_pci_host_bridge_with_a_malformed_interrupt_map_keeps_its_node_without_intx() {
    let tree = |map: &str, bus_range: &str| {
        format!(
            r#"
/dts-v1/;
/ {{
    #address-cells = <2>;
    #size-cells = <2>;
    gic: interrupt-controller@8000000 {{
        compatible = "arm,gic-400";
        interrupt-controller;
        #interrupt-cells = <3>;
        #address-cells = <1>;
        reg = <0x0 0x8000000 0x0 0x10000>;
    }};
    pcie@10000000 {{
        compatible = "pci-host-ecam-generic";
        device_type = "pci";
        #address-cells = <3>;
        #size-cells = <2>;
        #interrupt-cells = <1>;
        {bus_range}
        reg = <0x40 0x10000000 0x0 0x10000000>;
        ranges = <0x02000000 0x0 0x10000000 0x0 0x10000000 0x0 0x10000000
                  0x00000000 0x0 0x0 0x0 0x3f000000 0x0 0x1000>;
        interrupt-map-mask = <0x1800 0 0 7>;
        interrupt-map = <{map}>;
    }};
}};
"#
        )
    };
    // Entries missing the GIC's address cell (Linux 6.1's Qualcomm IPQ trees): the map does
    // not parse; the host bridge stays, with its apertures and no INTx.
    let blob = compile_dts(&tree("0 0 0 1 &gic 0 3 4  0 0 0 2 &gic 0 4 4", ""));
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (_, host) = device(&devices, "pcie@10000000");
    let pci = host.pci.as_ref().unwrap();
    assert!(pci.intx_malformed && pci.intx.is_empty());
    // The configuration-space range is no aperture.
    assert_eq!(pci.apertures.len(), 1);
    read_everything(&blob).unwrap();
    // A well-formed map of the same tree routes.
    let blob = compile_dts(&tree("0 0 0 1 &gic 0 0 3 4  0x800 0 0 1 &gic 0 0 4 4", ""));
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (_, host) = device(&devices, "pcie@10000000");
    let pci = host.pci.as_ref().unwrap();
    assert!(!pci.intx_malformed);
    assert_eq!(
        (pci.intid(0, 0, 1), pci.intid(1, 0, 1), pci.intid(2, 0, 1)),
        (Some(35), Some(36), None)
    );
    // A bus-range whose first bus is above its last: the node is malformed, named.
    let blob = compile_dts(&tree("", "bus-range = <4 2>;"));
    let board = Board::new(&blob).unwrap();
    let error = all_devices(&board)
        .into_iter()
        .find_map(Result::err)
        .expect("refused");
    assert_eq!(
        error,
        BoardError::BadProperty {
            node: "pcie@10000000",
            property: "bus-range"
        }
    );
    read_everything(&blob).unwrap();
}

#[test]
fn a_host_bridges_ranges_that_do_not_translate_are_counted_not_used() {
    // Under a bus without `ranges`: neither the ECAM window nor the memory range has a CPU
    // address.
    let blob = compile_dts(
        r#"
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    soc {
        compatible = "test,soc";
        #address-cells = <1>;
        #size-cells = <1>;
        pcie@10000000 {
            compatible = "pci-host-ecam-generic";
            device_type = "pci";
            #address-cells = <3>;
            #size-cells = <1>;
            reg = <0x10000000 0x100000>;
            ranges = <0x02000000 0 0x20000000 0x20000000 0x1000000>;
        };
    };
};
"#,
    );
    let board = Board::new(&blob).unwrap();
    let devices = all_devices(&board);
    let (_, host) = device(&devices, "pcie@10000000");
    assert!(host.mmio.is_empty() && host.reg_not_translatable);
    let pci = host.pci.as_ref().unwrap();
    assert!(pci.apertures.is_empty());
    assert_eq!(pci.ranges_not_translatable, 1);
    read_everything(&blob).unwrap();
}
