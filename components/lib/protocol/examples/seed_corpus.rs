//! Writes a seed corpus for the fuzz targets: one valid encoding of every message kind (queue
//! and PPC forms) and a few ring scripts. `cargo run -p warden-protocol --example seed_corpus`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a one-off tool"
)]

use std::path::Path;
use warden_protocol::ppc::{encode_call, MAX_REGISTERS};
use warden_protocol::{encode, EventKind, FailureKind, Message, PdPhase, PowerTarget, Status};
use warden_vocabulary::{
    Answer, BusId, CallbackId, Compatible, DeviceId, DeviceState, DriverId, MatchData, MatchEntry,
    MatchTable, MmioWindow, Name, Outcome, PciAperture, PciHostInfo, PciSpace, PdId, Resources,
};

fn samples() -> Vec<Message> {
    let device = DeviceId::from_parts(3, 1);
    let driver = DriverId::from_parts(2, 4);
    let bus = BusId::from_parts(1, 0);
    let callback = CallbackId::from_parts(2, 17);
    let match_data = MatchData {
        compatible: heapless::Vec::from_slice(&[
            Compatible::try_from("virtio,mmio").unwrap(),
            Compatible::try_from("arm,pl011").unwrap(),
        ])
        .unwrap(),
        bus_id: Some(2),
    };
    let resources = Resources {
        mmio: heapless::Vec::from_slice(&[MmioWindow {
            base: 0x0a00_3e00,
            size: 0x200,
        }])
        .unwrap(),
        irqs: heapless::Vec::from_slice(&[3]).unwrap(),
        address: None,
        forwarded: 0,
    };
    vec![
        Message::Probe {
            callback,
            device,
            driver,
            match_data: match_data.clone(),
            resources: resources.clone(),
        },
        Message::Remove { callback, device },
        Message::Suspend { callback, device },
        Message::Resume { callback, device },
        Message::Shutdown { callback, device },
        Message::Ping { sequence: 77 },
        Message::Register {
            name: "virtio-blk".try_into().unwrap(),
            bus,
            match_table: MatchTable {
                entries: heapless::Vec::from_slice(&[
                    MatchEntry::BusId(2),
                    MatchEntry::Compatible(Compatible::try_from("virtio,device2").unwrap()),
                ])
                .unwrap(),
            },
            deadline_ms: 2000,
        },
        Message::CallbackDone {
            callback,
            answer: Answer::Failed(5),
        },
        Message::CallbackDone {
            callback,
            answer: Answer::Defer,
        },
        Message::AddChild {
            callback,
            parent: device,
            bus,
            match_data: match_data.clone(),
            resources: resources.clone(),
        },
        Message::RemoveChild {
            callback,
            child: device,
        },
        Message::Alive { sequence: 9 },
        Message::Bind { device, driver },
        Message::Unbind { device },
        Message::RemoveDevice { device },
        Message::Rescan {},
        Message::SuspendDevice {
            target: PowerTarget::All,
        },
        Message::ResumeDevice {
            target: PowerTarget::Device(device),
        },
        Message::QueryDevice { device },
        Message::QueryTree { cursor: 4 },
        Message::Subscribe { mask: 0xfe },
        Message::QueryDriver { driver },
        Message::RetryPd { pd: PdId(4) },
        Message::QueryPd { pd: PdId(4) },
        Message::Completion {
            status: Status::Ok,
            detail: 0,
            outcome: Outcome::Device {
                device,
                driver: Some(driver),
            },
        },
        Message::Completion {
            status: Status::Ok,
            detail: 0,
            outcome: Outcome::Driver { driver, bound: 3 },
        },
        Message::Event {
            kind: EventKind::Bound,
            device: Some(device),
            driver: Some(driver),
            pd: None,
            request: 0,
            status: Status::Ok,
            detail: 0,
            lost: 2,
        },
        Message::Event {
            kind: EventKind::Completed,
            device: Some(device),
            driver: None,
            pd: None,
            request: 9,
            status: Status::Failed,
            detail: 5,
            lost: 0,
        },
        Message::Accepted { request: 9 },
        Message::NextEvent {},
        Message::ShutdownSystem {},
        Message::DeviceInfo {
            device,
            parent: Some(device),
            driver: None,
            state: DeviceState::Suspended,
            match_data,
            resources,
            last_pd: Some(PdId(4)),
        },
        Message::DriverInfo {
            driver,
            pd: PdId(4),
            bound: 2,
            name: Name::try_from("virtio-blk").unwrap(),
        },
        Message::PdInfo {
            pd: PdId(4),
            phase: PdPhase::Waiting,
            restart_in_ms: 200,
            consecutive_failures: 3,
            failures: 7,
            restarts: 6,
            last_failure: FailureKind::Overdue,
            failure_detail: 1,
        },
        Message::Completion {
            status: Status::NotPermitted,
            detail: warden_protocol::not_permitted::NOT_GRANTED,
            outcome: Outcome::Done,
        },
        Message::QueryPciHost { device },
        Message::PciHost {
            device,
            host: pci_host(),
        },
        Message::AddChild {
            callback,
            parent: device,
            bus,
            match_data: MatchData::default(),
            resources: Resources {
                mmio: heapless::Vec::from_slice(&[
                    MmioWindow {
                        base: 0x40_1000_8000,
                        size: 0x1000,
                    },
                    MmioWindow {
                        base: 0x80_0000_0000,
                        size: 0x20_0000,
                    },
                ])
                .unwrap(),
                forwarded: 1,
                irqs: heapless::Vec::from_slice(&[36]).unwrap(),
                address: None,
            },
        },
    ]
}

/// QEMU virt's PCIe host bridge, as its driver is told it.
fn pci_host() -> PciHostInfo {
    let mut host = PciHostInfo {
        last_bus: 255,
        ..PciHostInfo::default()
    };
    for (space, pci_base, cpu_base, size) in [
        (PciSpace::Io, 0, 0x3eff_0000, 0x1_0000),
        (PciSpace::Memory, 0x1000_0000, 0x1000_0000, 0x2eff_0000),
        (
            PciSpace::Prefetchable,
            0x80_0000_0000,
            0x80_0000_0000,
            0x80_0000_0000,
        ),
    ] {
        host.apertures
            .push(PciAperture {
                space,
                pci_base,
                cpu_base,
                size,
            })
            .unwrap();
    }
    for (device, pins) in host.intx.iter_mut().enumerate() {
        for (pin, intid) in pins.iter_mut().enumerate() {
            *intid = 35 + ((device + pin) % 4) as u16;
        }
    }
    host
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in ["decode_message", "decode_call", "hostile_producer"] {
        std::fs::create_dir_all(corpus.join(target)).unwrap();
    }
    for (index, message) in samples().iter().enumerate() {
        let mut buffer = [0u8; 1024];
        let length = encode(index as u32, message, &mut buffer).unwrap();
        std::fs::write(
            corpus.join(format!(
                "decode_message/seed-v{}-{index:02}",
                warden_protocol::wire::VERSION
            )),
            &buffer[..length],
        )
        .unwrap();
        let mut registers = [0u64; MAX_REGISTERS];
        if let Ok(info) = encode_call(message, &mut registers) {
            let mut bytes = info.label.to_le_bytes().to_vec();
            bytes.extend_from_slice(&info.count.to_le_bytes());
            for register in &registers[..usize::from(info.count)] {
                bytes.extend_from_slice(&register.to_le_bytes());
            }
            std::fs::write(
                corpus.join(format!(
                    "decode_call/seed-v{}-{index:02}",
                    warden_protocol::wire::VERSION
                )),
                bytes,
            )
            .unwrap();
        }
    }
    // Ring scripts: (selector, word, value) steps; selector 0 pops.
    let scripts: [&[[u8; 6]]; 4] = [
        &[[1, 0, 1, 0, 0, 0], [1, 4, 3, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
        &[[1, 0, 200, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
        &[
            [1, 0, 2, 0, 0, 0],
            [1, 4, 255, 255, 0, 0],
            [1, 36, 8, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        &[
            [1, 1, 9, 0, 0, 0],
            [1, 2, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [1, 0, 5, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
    ];
    for (index, script) in scripts.iter().enumerate() {
        let bytes: Vec<u8> = script.iter().flatten().copied().collect();
        std::fs::write(
            corpus.join(format!("hostile_producer/seed-{index:02}")),
            bytes,
        )
        .unwrap();
    }
}
