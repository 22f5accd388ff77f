//! Property tests of the codec: every message round-trips through both transports, and no byte
//! string makes a decoder panic (what decodes re-encodes to the same bytes).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use proptest::prelude::*;
use warden_protocol::message::is_call;
use warden_protocol::ppc::{decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::{
    decode, encode, fuzzing, EventKind, FailureKind, Message, PdPhase, PowerTarget, Status,
};
use warden_vocabulary::{
    Answer, BusId, CallbackId, Compatible, DeviceId, DeviceState, DriverId, MatchData, MatchEntry,
    MatchTable, MmioWindow, Outcome, PdId, Resources,
};

fn device() -> impl Strategy<Value = DeviceId> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(index, generation)| DeviceId::from_parts(index, generation))
}

fn driver() -> impl Strategy<Value = DriverId> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(index, generation)| DriverId::from_parts(index, generation))
}

fn bus() -> impl Strategy<Value = BusId> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(index, generation)| BusId::from_parts(index, generation))
}

fn callback() -> impl Strategy<Value = CallbackId> {
    (any::<u32>(), any::<u64>())
        .prop_map(|(operation, sequence)| CallbackId::from_parts(operation, sequence))
}

fn text<const N: usize>() -> impl Strategy<Value = heapless::String<N>> {
    proptest::string::string_regex(&format!("[ -~]{{1,{N}}}"))
        .unwrap()
        .prop_map(|s| heapless::String::try_from(s.as_str()).unwrap())
}

fn match_data() -> impl Strategy<Value = MatchData> {
    (
        proptest::collection::vec(text::<40>(), 0..=4),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(names, bus_id)| MatchData {
            compatible: names.into_iter().collect(),
            bus_id,
        })
}

fn resources() -> impl Strategy<Value = Resources> {
    let irq = 0..=warden_vocabulary::MAX_INTID;
    (
        proptest::collection::vec(
            (any::<u64>(), 1..=u64::MAX),
            0..=warden_vocabulary::MAX_MMIO,
        ),
        proptest::collection::vec(irq, 0..=warden_vocabulary::MAX_IRQS),
        proptest::option::of(any::<u64>()),
        any::<u8>(),
    )
        .prop_map(|(windows, irqs, address, forwarded)| Resources {
            address,
            forwarded: forwarded % (windows.len() as u8 + 1),
            mmio: windows
                .into_iter()
                .map(|(address, size)| {
                    let size = size.min(u64::MAX - address).max(1);
                    let address = address.min(u64::MAX - (size - 1));
                    MmioWindow {
                        base: address,
                        size,
                    }
                })
                .collect(),
            irqs: irqs.into_iter().collect(),
        })
}

fn pci_host() -> impl Strategy<Value = warden_vocabulary::PciHostInfo> {
    use warden_vocabulary::{PciAperture, PciHostInfo, PciSpace};
    let aperture =
        (1..=3u32, any::<u64>(), any::<u64>(), 1..=u64::MAX).prop_map(|(space, pci, cpu, size)| {
            PciAperture {
                space: PciSpace::from_code(space).unwrap(),
                pci_base: pci.min(u64::MAX - (size - 1)),
                cpu_base: cpu.min(u64::MAX - (size - 1)),
                size,
            }
        });
    (
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(aperture, 0..=warden_vocabulary::MAX_PCI_APERTURES),
        proptest::collection::vec(0..=1019u16, 128),
    )
        .prop_map(|(a, b, apertures, intx)| {
            let mut host = PciHostInfo {
                first_bus: a.min(b),
                last_bus: a.max(b),
                apertures: apertures.into_iter().collect(),
                ..PciHostInfo::default()
            };
            for (slot, intid) in host.intx.iter_mut().flatten().zip(intx) {
                *slot = intid;
            }
            host
        })
}

fn status() -> impl Strategy<Value = Status> {
    (0..=13u16).prop_map(|code| Status::from_code(code).unwrap())
}

fn status_and_detail() -> impl Strategy<Value = (Status, u16)> {
    (status(), any::<u16>()).prop_map(|(status, detail)| {
        let detailed = matches!(status, Status::Failed | Status::NotPermitted);
        (status, if detailed { detail } else { 0 })
    })
}

fn power_target() -> impl Strategy<Value = PowerTarget> {
    prop_oneof![
        Just(PowerTarget::All),
        device().prop_map(PowerTarget::Device)
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Ok),
        Just(Answer::NotMine),
        Just(Answer::Defer),
        any::<u16>().prop_map(Answer::Failed)
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let callbacks = prop_oneof![
        (callback(), device()).prop_map(|(callback, device)| Message::Remove { callback, device }),
        (callback(), device()).prop_map(|(callback, device)| Message::Suspend { callback, device }),
        (callback(), device()).prop_map(|(callback, device)| Message::Resume { callback, device }),
        (callback(), device())
            .prop_map(|(callback, device)| Message::Shutdown { callback, device }),
        any::<u64>().prop_map(|sequence| Message::Ping { sequence }),
        (callback(), device(), driver(), match_data(), resources()).prop_map(
            |(callback, device, driver, match_data, resources)| Message::Probe {
                callback,
                device,
                driver,
                match_data,
                resources
            }
        ),
    ];
    let entry = prop_oneof![
        text::<40>().prop_map(MatchEntry::Compatible),
        any::<u32>().prop_map(MatchEntry::BusId)
    ];
    let from_drivers = prop_oneof![
        (
            text::<32>(),
            bus(),
            proptest::collection::vec(entry, 1..=8),
            any::<u32>()
        )
            .prop_map(|(name, bus, entries, deadline_ms)| Message::Register {
                name,
                bus,
                match_table: MatchTable {
                    entries: entries.into_iter().collect(),
                },
                deadline_ms,
            }),
        (callback(), answer())
            .prop_map(|(callback, answer)| Message::CallbackDone { callback, answer }),
        (callback(), device(), bus(), match_data(), resources()).prop_map(
            |(callback, parent, bus, match_data, resources)| Message::AddChild {
                callback,
                parent,
                bus,
                match_data,
                resources
            }
        ),
        (callback(), device())
            .prop_map(|(callback, child)| Message::RemoveChild { callback, child }),
        any::<u64>().prop_map(|sequence| Message::Alive { sequence }),
        device().prop_map(|device| Message::QueryPciHost { device }),
        (device(), pci_host()).prop_map(|(device, host)| Message::PciHost { device, host }),
    ];
    let from_clients = prop_oneof![
        (device(), driver()).prop_map(|(device, driver)| Message::Bind { device, driver }),
        device().prop_map(|device| Message::Unbind { device }),
        device().prop_map(|device| Message::RemoveDevice { device }),
        Just(Message::Rescan {}),
        power_target().prop_map(|target| Message::SuspendDevice { target }),
        power_target().prop_map(|target| Message::ResumeDevice { target }),
        device().prop_map(|device| Message::QueryDevice { device }),
        any::<u64>().prop_map(|cursor| Message::QueryTree { cursor }),
        any::<u64>().prop_map(|mask| Message::Subscribe {
            mask: mask & EventKind::MASK
        }),
        Just(Message::NextEvent {}),
        any::<u64>().prop_map(|cursor| Message::QueryTrace { cursor }),
        Just(Message::ShutdownSystem {}),
        driver().prop_map(|driver| Message::QueryDriver { driver }),
        any::<u32>().prop_map(|pd| Message::RetryPd { pd: PdId(pd) }),
        any::<u32>().prop_map(|pd| Message::QueryPd { pd: PdId(pd) }),
    ];
    let outcome = prop_oneof![
        Just(Outcome::Done),
        (device(), proptest::option::of(driver()))
            .prop_map(|(device, driver)| Outcome::Device { device, driver }),
        (driver(), any::<u32>()).prop_map(|(driver, bound)| Outcome::Driver { driver, bound }),
    ];
    let kind = prop_oneof![
        Just(EventKind::DeviceAdded),
        Just(EventKind::DeviceRemoved),
        Just(EventKind::Bound),
        Just(EventKind::Unbound),
        Just(EventKind::Suspended),
        Just(EventKind::Resumed),
        Just(EventKind::Faulted),
        Just(EventKind::ShutDown),
        Just(EventKind::Quarantined),
        Just(EventKind::Completed),
    ];
    let state = prop_oneof![
        Just(DeviceState::Active),
        Just(DeviceState::Suspended),
        Just(DeviceState::ShutDown)
    ];
    let to_clients = prop_oneof![
        (status_and_detail(), outcome).prop_map(|((status, detail), outcome)| {
            Message::Completion {
                status,
                detail,
                outcome,
            }
        }),
        (
            kind,
            proptest::option::of(device()),
            proptest::option::of(driver()),
            proptest::option::of(any::<u32>()),
            any::<u32>(),
            status_and_detail(),
            any::<u32>(),
        )
            .prop_map(
                |(kind, device, driver, pd, request, (status, detail), lost)| {
                    // Only a completion carries a request number and a status.
                    let completed = kind == EventKind::Completed;
                    Message::Event {
                        kind,
                        device,
                        driver,
                        pd: pd.map(PdId),
                        request: if completed { request } else { 0 },
                        status: if completed { status } else { Status::Ok },
                        detail: if completed { detail } else { 0 },
                        lost,
                    }
                }
            ),
        any::<u32>().prop_map(|request| Message::Accepted { request }),
        (
            any::<[u64; 4]>(),
            any::<bool>(),
            any::<[u32; 3]>(),
            proptest::option::of(device()),
            proptest::option::of(driver()),
        )
            .prop_map(
                |([sequence, at_ns, id, request], begin, [name, pd, status], device, driver)| {
                    Message::TraceRecord {
                        sequence,
                        at_ns,
                        begin: u32::from(begin),
                        name,
                        id,
                        pd,
                        device,
                        driver,
                        request,
                        status,
                    }
                }
            ),
        (
            device(),
            proptest::option::of(device()),
            proptest::option::of(driver()),
            state,
            match_data(),
            resources(),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(
                |(device, parent, driver, state, match_data, resources, last_pd)| {
                    Message::DeviceInfo {
                        device,
                        parent,
                        driver,
                        state,
                        match_data,
                        resources,
                        last_pd: last_pd.map(PdId),
                    }
                }
            ),
        (
            any::<u32>(),
            prop_oneof![
                Just(PdPhase::Starting),
                Just(PdPhase::Running),
                Just(PdPhase::Waiting),
                Just(PdPhase::Quarantined)
            ],
            any::<[u32; 4]>(),
            prop_oneof![
                Just(FailureKind::None),
                Just(FailureKind::Fault),
                Just(FailureKind::Overdue),
                Just(FailureKind::Silent),
                Just(FailureKind::NeverRegistered),
                Just(FailureKind::Stopped)
            ],
            any::<u32>(),
        )
            .prop_map(
                |(
                    pd,
                    phase,
                    [restart_in_ms, consecutive_failures, failures, restarts],
                    last_failure,
                    failure_detail,
                )| {
                    Message::PdInfo {
                        pd: PdId(pd),
                        phase,
                        restart_in_ms,
                        consecutive_failures,
                        failures,
                        restarts,
                        last_failure,
                        failure_detail,
                    }
                }
            ),
        (driver(), any::<u32>(), any::<u32>(), text::<32>()).prop_map(
            |(driver, pd, bound, name)| Message::DriverInfo {
                driver,
                pd: PdId(pd),
                bound,
                name
            }
        ),
    ];
    prop_oneof![callbacks, from_drivers, from_clients, to_clients]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips_on_a_queue(message in message(), request_id in any::<u32>()) {
        let mut buffer = [0u8; 1024];
        let length = encode(request_id, &message, &mut buffer).unwrap();
        let (decoded_id, decoded) = decode(&buffer[..length]).unwrap();
        prop_assert_eq!(decoded_id, request_id);
        prop_assert_eq!(&decoded, &message);
        // Any truncation is an error, not a panic or a different message.
        prop_assert!(decode(&buffer[..length - 1]).is_err());
    }

    #[test]
    fn every_call_round_trips_in_message_registers(message in message()) {
        let mut registers = [0u64; MAX_REGISTERS];
        match encode_call(&message, &mut registers) {
            Ok(info) => {
                prop_assert!(is_call(message.opcode()));
                let decoded = decode_call(info, &registers[..usize::from(info.count)]).unwrap();
                prop_assert_eq!(decoded, message);
            }
            Err(_) => prop_assert!(!is_call(message.opcode())),
        }
    }

    #[test]
    fn any_bytes_decode_to_a_message_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::decode_message(&bytes);
        fuzzing::decode_call_registers(&bytes);
        fuzzing::hostile_producer(&bytes);
    }

    #[test]
    fn a_valid_header_with_any_body_is_safe(opcode in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..520)) {
        // Random bodies under a well-formed header reach the body decoders.
        let mut bytes = std::vec::Vec::new();
        bytes.extend_from_slice(&warden_protocol::wire::MAGIC.to_le_bytes());
        bytes.extend_from_slice(&warden_protocol::wire::VERSION.to_le_bytes());
        bytes.extend_from_slice(&opcode.to_le_bytes());
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        fuzzing::decode_message(&bytes);
    }
}

#[test]
fn typed_errors_name_the_problem() {
    use warden_protocol::DecodeError;
    let mut buffer = [0u8; 1024];
    let message = Message::Unbind {
        device: DeviceId::from_parts(1, 2),
    };
    let length = encode(5, &message, &mut buffer).unwrap();
    let mut bad = buffer;
    bad[0] ^= 1;
    assert!(matches!(
        decode(&bad[..length]),
        Err(DecodeError::BadMagic(_))
    ));
    let mut bad = buffer;
    bad[4] = 9;
    assert_eq!(decode(&bad[..length]), Err(DecodeError::BadVersion(9)));
    let mut bad = buffer;
    bad[6] = 0x77;
    assert_eq!(
        decode(&bad[..length]),
        Err(DecodeError::UnknownOpcode(0x0277))
    );
    assert!(matches!(
        decode(&buffer[..length + 1]),
        Err(DecodeError::BadLength { .. })
    ));
    assert!(matches!(
        decode(&buffer[..3]),
        Err(DecodeError::TooShort { .. })
    ));
    // A probe whose interrupt is not a GIC INTID a device can have.
    let probe = Message::Probe {
        callback: CallbackId::from_parts(1, 2),
        device: DeviceId::from_parts(0, 0),
        driver: DriverId::from_parts(0, 0),
        match_data: MatchData::default(),
        resources: Resources {
            mmio: heapless::Vec::new(),
            irqs: heapless::Vec::from_slice(&[1020]).unwrap(),
            address: None,
            forwarded: 0,
        },
    };
    let length = encode(1, &probe, &mut buffer).unwrap();
    assert_eq!(
        decode(&buffer[..length]),
        Err(DecodeError::InterruptOutOfRange(1020))
    );
    // A compatible string with bytes after its NUL.
    let named = Message::DeviceInfo {
        device: DeviceId::from_parts(0, 0),
        parent: None,
        driver: None,
        state: DeviceState::Active,
        match_data: MatchData {
            compatible: heapless::Vec::from_slice(&[Compatible::try_from("arm,pl011").unwrap()])
                .unwrap(),
            bus_id: None,
        },
        resources: Resources::default(),
        last_pd: None,
    };
    let length = encode(1, &named, &mut buffer).unwrap();
    let resources = core::mem::size_of::<warden_protocol::wire::ResourcesWire>();
    let last_pd = core::mem::size_of::<warden_protocol::wire::OptionalPdWire>();
    let string_at = length - last_pd - resources - 160 + 12;
    buffer[string_at] = b'x';
    assert_eq!(decode(&buffer[..length]), Err(DecodeError::BadString));
    // A subscription to a kind of event that does not exist names the first unknown kind.
    let subscribe = Message::Subscribe {
        mask: EventKind::MASK | 1 << 12 | 1 << 40,
    };
    let length = encode(1, &subscribe, &mut buffer).unwrap();
    assert_eq!(
        decode(&buffer[..length]),
        Err(DecodeError::UnknownEventKind(12))
    );
    let bit_zero = Message::Subscribe { mask: 1 };
    let length = encode(1, &bit_zero, &mut buffer).unwrap();
    assert_eq!(
        decode(&buffer[..length]),
        Err(DecodeError::UnknownEventKind(0))
    );
    // Only a completion carries a request number and a status.
    let forged = Message::Event {
        kind: EventKind::Bound,
        device: Some(DeviceId::from_parts(0, 0)),
        driver: None,
        pd: None,
        request: 7,
        status: Status::Ok,
        detail: 0,
        lost: 0,
    };
    let length = encode(1, &forged, &mut buffer).unwrap();
    assert_eq!(decode(&buffer[..length]), Err(DecodeError::ReservedNotZero));
}

#[test]
fn every_message_fits_one_ring_slot() {
    use warden_protocol::message::{body_length, opcode};
    let header = core::mem::size_of::<warden_protocol::wire::Header>();
    let opcodes = [
        opcode::PROBE,
        opcode::REMOVE,
        opcode::SUSPEND,
        opcode::RESUME,
        opcode::SHUTDOWN,
        opcode::REGISTER,
        opcode::CALLBACK_DONE,
        opcode::ADD_CHILD,
        opcode::REMOVE_CHILD,
        opcode::ALIVE,
        opcode::BIND,
        opcode::UNBIND,
        opcode::REMOVE_DEVICE,
        opcode::RESCAN,
        opcode::SUSPEND_DEVICE,
        opcode::RESUME_DEVICE,
        opcode::QUERY_DEVICE,
        opcode::QUERY_TREE,
        opcode::SUBSCRIBE,
        opcode::COMPLETION,
        opcode::EVENT,
        opcode::DEVICE_INFO,
        opcode::QUERY_DRIVER,
        opcode::DRIVER_INFO,
        opcode::PING,
        opcode::RETRY_PD,
        opcode::QUERY_PD,
        opcode::PD_INFO,
        opcode::NEXT_EVENT,
        opcode::SHUTDOWN_SYSTEM,
        opcode::ACCEPTED,
        opcode::QUERY_TRACE,
        opcode::TRACE_RECORD,
    ];
    for code in opcodes {
        let length = header + body_length(code).unwrap();
        assert!(
            length <= warden_protocol::ring::SLOT_BYTES,
            "opcode {code:#06x}: {length} bytes"
        );
    }
}
