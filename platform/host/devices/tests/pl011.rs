//! The PL011: the driver's logic (`pl011_driver::device`) against the host platform's model of
//! the device, through the register trait, as the driver PD reaches it on the host; and the
//! model's own rules, register by register.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::Absent;
use pl011_driver::device::{
    control, flag, interrupt, line_control, offset, LineSettings, Pl011 as Driver, ProbeError,
    TxStuck, FIFO_DEPTH, SPIN_LIMIT,
};
use warden_host_devices::{Device, ModelRegisters, NoDma, Pl011, Pl031, SharedOutput};
use warden_registers::{Registers, Width};

type Window = ModelRegisters<Pl011>;

/// A model UART, its window and what it transmits.
fn uart() -> (Window, SharedOutput) {
    let output = SharedOutput::default();
    (
        ModelRegisters::new(Pl011::new(Box::new(output.clone()))),
        output,
    )
}

fn probed(window: &Window) -> Driver<&Window> {
    Driver::probe(window).unwrap()
}

// --- the driver against the model -------------------------------------------------------------

#[test]
fn probe_programs_8n1_at_115200_with_fifos_and_receive_interrupts() {
    let (window, _) = uart();
    let _uart = probed(&window);
    assert_eq!(
        window.read32(offset::CR),
        control::UARTEN | control::TXE | control::RXE
    );
    assert_eq!(
        window.read32(offset::LCR_H),
        line_control::WLEN_8 | line_control::FEN
    );
    // 24 MHz / (16 * 115200) = 13.02: IBRD 13, FBRD round(0.02 * 64) = 1.
    assert_eq!(
        (window.read32(offset::IBRD), window.read32(offset::FBRD)),
        (13, 1)
    );
    assert_eq!(window.read32(offset::IMSC), interrupt::RX | interrupt::RT);
    assert_eq!(window.read32(offset::RIS), 0);
}

#[test]
fn probe_refuses_a_device_that_is_not_a_pl011_without_touching_it() {
    // A PL031 where the PL011 should be.
    let rtc = ModelRegisters::new(Pl031::new(Box::new(|| 1_000)));
    rtc.write32(0x010, 1);
    let error = Driver::probe(&rtc).unwrap_err();
    let ProbeError::NotPl011 { found } = error else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(found.part_number(), 0x031);
    assert_eq!(found.designer(), b'A');
    assert_eq!(rtc.read32(0x010), 1, "its registers were left alone");
}

#[test]
fn probe_refuses_a_window_that_reads_all_ones() {
    assert!(matches!(
        Driver::probe(Absent(0)),
        Err(ProbeError::NotPl011 { .. })
    ));
}

#[test]
fn probe_refuses_unreachable_baud_rates() {
    let (window, _) = uart();
    window.write32(offset::CR, control::RXE);
    for baud_rate in [0, 24_000_000] {
        let settings = LineSettings {
            reference_clock_hz: 24_000_000,
            baud_rate,
        };
        assert_eq!(
            Driver::probe_with_settings(&window, settings).unwrap_err(),
            ProbeError::InvalidBaudRate {
                reference_clock_hz: 24_000_000,
                baud_rate
            }
        );
    }
    assert_eq!(window.read32(offset::CR), control::RXE);
}

#[test]
fn divisors_match_the_trm_example() {
    // TRM 3.3.6: 4 MHz at 230400 baud gives IBRD 1, FBRD 5.
    let settings = LineSettings {
        reference_clock_hz: 4_000_000,
        baud_rate: 230_400,
    };
    assert_eq!(settings.divisors(), Some((1, 5)));
}

#[test]
fn probe_recovers_a_device_left_in_a_bad_state() {
    let (window, output) = uart();
    // A crashed driver left it 7-bit without FIFOs, odd masks, stale received data (one with
    // a framing error), then disabled it.
    window.write32(offset::CR, control::UARTEN | control::TXE | control::RXE);
    window.write32(offset::LCR_H, 0b10 << 5 | line_control::FEN);
    window.write32(offset::IMSC, interrupt::TX | interrupt::OE | 0b1111);
    {
        let mut model = window.model();
        model.receive(b"x");
        model.receive_with_errors(b'y', 0x100);
        model.receive(b"z");
        model.line_idle();
    }
    window.write32(offset::CR, control::RXE);
    let mut uart = probed(&window);
    assert_eq!(
        window.read32(offset::CR),
        control::UARTEN | control::TXE | control::RXE
    );
    assert_eq!(
        window.read32(offset::LCR_H),
        line_control::WLEN_8 | line_control::FEN
    );
    assert_eq!(window.read32(offset::IMSC), interrupt::RX | interrupt::RT);
    assert_eq!(window.read32(offset::RIS), 0);
    assert_eq!(window.read32(offset::RSR_ECR), 0);
    assert!(!window.irq_level());
    assert_eq!(uart.read_byte(), None, "the stale input is gone");
    uart.write_bytes(b"ok").unwrap();
    assert_eq!(output.contents(), b"ok");
}

#[test]
fn write_bytes_waits_for_fifo_space_and_everything_reaches_the_wire() {
    let (window, output) = uart();
    let mut uart = probed(&window);
    let text: Vec<u8> = (0..100u8).map(|index| b'a' + index % 26).collect();
    window.model().hold_transmitter(true);
    // Held: the FIFO fills and the driver, finding it full, gives up at its depth.
    assert!(uart.write_bytes(&text[..FIFO_DEPTH]).is_ok());
    window.model().hold_transmitter(false);
    uart.write_bytes(&text[FIFO_DEPTH..]).unwrap();
    assert_eq!(output.contents(), text);
}

#[test]
fn write_bytes_reports_a_stuck_transmitter_instead_of_hanging() {
    let (window, output) = uart();
    let mut uart = probed(&window);
    window.model().hold_transmitter(true);
    let before = window.model().register_reads();
    assert_eq!(
        uart.write_bytes(&[b'#'; 40]),
        Err(TxStuck {
            written: FIFO_DEPTH
        })
    );
    let reads = window.model().register_reads() - before;
    assert!(reads <= u64::from(SPIN_LIMIT) + 2 * FIFO_DEPTH as u64 + 100);
    assert!(output.contents().is_empty());
    assert_eq!(
        window.model().dropped_tx(),
        0,
        "nothing written into a full FIFO"
    );
}

#[test]
fn formatted_output_goes_through_write_bytes() {
    use core::fmt::Write as _;
    let (window, output) = uart();
    let mut uart = probed(&window);
    write!(uart, "{}+{}", 2, 3).unwrap();
    assert_eq!(output.contents(), b"2+3");
}

#[test]
fn read_byte_returns_received_bytes_in_order_then_none() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().push_input(b"hi");
    assert_eq!(uart.read_byte(), Some(b'h'));
    assert_eq!(uart.read_byte(), Some(b'i'));
    assert_eq!(uart.read_byte(), None);
}

#[test]
fn read_byte_drops_and_counts_characters_received_with_errors() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    {
        let mut model = window.model();
        model.receive(b"a");
        model.receive_with_errors(0x55, 0x200);
        model.receive(b"b");
    }
    assert_eq!(uart.read_byte(), Some(b'a'));
    assert_eq!(uart.read_byte(), Some(b'b'));
    assert_eq!(uart.receive_errors(), 1);
}

#[test]
fn receive_timeout_interrupt_is_reported_and_cleared() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().receive(b"ls");
    // Two bytes stay below the half-full trigger: only the timeout raises the line.
    assert!(!window.irq_level());
    window.model().line_idle();
    assert!(window.irq_level());
    let cause = uart.handle_interrupt();
    assert!(cause.data_received());
    assert!(!cause.receive_error());
    assert_eq!(cause.bits(), interrupt::RT);
    assert!(!window.irq_level());
    assert_eq!(uart.read_byte(), Some(b'l'));
    assert_eq!(uart.read_byte(), Some(b's'));
}

#[test]
fn receive_interrupt_at_the_trigger_level_stays_until_the_fifo_is_drained() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().receive(&[b'q'; 20]);
    assert!(window.irq_level());
    let cause = uart.handle_interrupt();
    assert_eq!(cause.bits(), interrupt::RX);
    // The level is still above the trigger, so the device raises it again at once.
    assert!(window.irq_level());
    while uart.read_byte().is_some() {}
    assert!(!window.irq_level());
}

#[test]
fn masked_interrupts_are_not_reported() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    // A transmitted byte raises TX, which the driver does not unmask.
    uart.write_bytes(b"!").unwrap();
    assert_eq!(window.read32(offset::RIS), interrupt::TX);
    let cause = uart.handle_interrupt();
    assert!(cause.is_spurious());
    assert!(!cause.transmit_space());
    // Left pending in RIS for whoever unmasks them.
    assert_eq!(window.read32(offset::RIS), interrupt::TX);
}

#[test]
fn uart_and_line_editor_together_echo_input_and_yield_a_line() {
    use warden_driver::console::{LineEditor, LineEvent};
    let (window, output) = uart();
    let mut uart = probed(&window);
    let mut editor = LineEditor::new();
    window.model().push_input(b"hep\x7flp\r\n");
    assert!(uart.handle_interrupt().data_received());
    let mut lines = Vec::new();
    while let Some(byte) = uart.read_byte() {
        let outcome = editor.feed(byte);
        let echo = outcome.echo;
        if let Some(LineEvent::Line(line)) = outcome.event {
            lines.push(line.to_owned());
        }
        uart.write_bytes(echo.as_bytes()).unwrap();
    }
    assert_eq!(lines, ["help"]);
    assert_eq!(output.contents(), b"hep\x08 \x08lp\r\n");
}

// --- the model's own rules -------------------------------------------------------------------

fn read(uart: &mut Pl011, register: usize) -> u32 {
    uart.read(register as u64, Width::U32, &mut NoDma)
}

fn write(uart: &mut Pl011, register: usize, value: u32) {
    uart.write(register as u64, Width::U32, value, &mut NoDma);
}

fn model() -> (Pl011, SharedOutput) {
    let output = SharedOutput::default();
    (Pl011::new(Box::new(output.clone())), output)
}

fn enable(uart: &mut Pl011) {
    write(
        uart,
        offset::LCR_H,
        line_control::FEN | line_control::WLEN_8,
    );
    write(
        uart,
        offset::CR,
        control::UARTEN | control::TXE | control::RXE,
    );
}

#[test]
fn registers_have_their_reset_values_and_identify_the_pl011() {
    let (mut uart, _) = model();
    assert_eq!(read(&mut uart, offset::CR), 0x300);
    assert_eq!(read(&mut uart, offset::FR), flag::TXFE | flag::RXFE);
    assert_eq!(read(&mut uart, offset::IFLS), 0x12);
    assert_eq!(read(&mut uart, offset::LCR_H), 0);
    assert_eq!(read(&mut uart, offset::IMSC), 0);
    assert_eq!(read(&mut uart, offset::RIS), 0);
    let ids: Vec<u32> = (0..8)
        .map(|index| read(&mut uart, 0xfe0 + 4 * index))
        .collect();
    assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(uart.kind(), "pl011");
    assert_eq!(uart.size(), 0x1000);
    assert!(!uart.irq_level());
}

#[test]
fn invalid_accesses_read_zero_and_change_nothing() {
    let (mut uart, output) = model();
    enable(&mut uart);
    assert_eq!(uart.read(0x1000, Width::U32, &mut NoDma), 0);
    assert_eq!(uart.read(0x19, Width::U8, &mut NoDma), 0);
    assert_eq!(uart.read(0x100, Width::U32, &mut NoDma), 0);
    uart.write(0x1, Width::U8, u32::from(b'x'), &mut NoDma);
    uart.write(0xffe, Width::U32, 1, &mut NoDma);
    write(&mut uart, offset::FR, 0);
    assert!(output.contents().is_empty());
    // A byte-wide access at a register's address is fine.
    assert_eq!(uart.read(offset::CR as u64, Width::U8, &mut NoDma), 0x01);
    assert_eq!(uart.read(offset::CR as u64, Width::U16, &mut NoDma), 0x301);
}

#[test]
fn transmits_only_while_uart_and_transmitter_are_enabled() {
    let (mut uart, output) = model();
    write(&mut uart, offset::DR, u32::from(b'a'));
    assert_eq!(uart.dropped_tx(), 1);
    enable(&mut uart);
    uart.write(offset::DR as u64, Width::U8, u32::from(b'h'), &mut NoDma);
    write(&mut uart, offset::DR, 0x100 | u32::from(b'i'));
    write(&mut uart, offset::CR, control::UARTEN | control::RXE);
    write(&mut uart, offset::DR, u32::from(b'!'));
    assert_eq!(output.contents(), b"hi");
    assert_eq!(uart.dropped_tx(), 2);
    assert_eq!(uart.transmitted(), 2);
    assert_eq!(
        read(&mut uart, offset::FR) & (flag::TXFF | flag::TXFE),
        flag::TXFE
    );
}

#[test]
fn rx_fifo_holds_32_bytes_and_refills_from_the_backlog() {
    let (mut uart, _) = model();
    let input: Vec<u8> = (0..40).collect();
    uart.push_input(&input);
    // Reception is disabled after reset: nothing reaches the FIFO.
    assert_eq!(read(&mut uart, offset::FR) & flag::RXFE, flag::RXFE);
    assert_eq!(read(&mut uart, offset::DR), 0);
    enable(&mut uart);
    assert_eq!(
        read(&mut uart, offset::FR) & (flag::RXFE | flag::RXFF),
        flag::RXFF
    );
    let mut received = Vec::new();
    while read(&mut uart, offset::FR) & flag::RXFE == 0 {
        received.push(read(&mut uart, offset::DR) as u8);
    }
    assert_eq!(received, input);
    assert_eq!(uart.pending_input(), 0);
}

#[test]
fn with_fifos_disabled_the_receiver_holds_one_byte() {
    let (mut uart, _) = model();
    write(
        &mut uart,
        offset::CR,
        control::UARTEN | control::TXE | control::RXE,
    );
    uart.push_input(b"ab");
    assert_eq!(read(&mut uart, offset::FR) & flag::RXFF, flag::RXFF);
    write(&mut uart, offset::LCR_H, line_control::FEN);
    assert_eq!(uart.pending_input(), 2);
    write(&mut uart, offset::LCR_H, 0);
    assert_eq!(read(&mut uart, offset::DR), u32::from(b'a'));
    assert_eq!(read(&mut uart, offset::DR), u32::from(b'b'));
    assert_eq!(read(&mut uart, offset::DR), 0);
}

#[test]
fn console_input_raises_the_timeout_until_the_fifo_is_drained() {
    let (mut uart, _) = model();
    enable(&mut uart);
    write(&mut uart, offset::IMSC, interrupt::RX | interrupt::RT);
    assert!(!uart.irq_level());
    uart.push_input(b"xy");
    assert!(uart.irq_level());
    assert_eq!(read(&mut uart, offset::MIS), interrupt::RT);
    read(&mut uart, offset::DR);
    assert!(uart.irq_level(), "data remains");
    read(&mut uart, offset::DR);
    assert!(!uart.irq_level());
    assert_eq!(read(&mut uart, offset::RIS), 0);
}

#[test]
fn tx_interrupt_is_set_by_a_transmitted_byte_and_cleared_by_icr() {
    let (mut uart, _) = model();
    enable(&mut uart);
    write(&mut uart, offset::IMSC, interrupt::TX);
    write(&mut uart, offset::DR, u32::from(b'z'));
    assert_eq!(read(&mut uart, offset::RIS), interrupt::TX);
    assert!(uart.irq_level());
    write(&mut uart, offset::ICR, interrupt::TX);
    assert!(!uart.irq_level());
    write(&mut uart, offset::DR, u32::from(b'z'));
    assert!(uart.irq_level());
    write(&mut uart, offset::IMSC, 0);
    assert!(!uart.irq_level());
    assert_eq!(read(&mut uart, offset::RIS), interrupt::TX);
    assert_eq!(read(&mut uart, offset::MIS), 0);
}

#[test]
fn a_held_transmitter_fills_its_fifo_then_drops_writes() {
    let (mut uart, output) = model();
    enable(&mut uart);
    uart.hold_transmitter(true);
    for byte in 0..FIFO_DEPTH as u32 + 2 {
        write(&mut uart, offset::DR, byte);
    }
    assert_eq!(
        read(&mut uart, offset::FR) & (flag::TXFF | flag::BUSY | flag::TXFE),
        flag::TXFF | flag::BUSY
    );
    assert_eq!(uart.dropped_tx(), 2);
    uart.hold_transmitter(false);
    assert_eq!(output.contents().len(), FIFO_DEPTH);
    assert_eq!(read(&mut uart, offset::FR) & flag::TXFE, flag::TXFE);
}

#[test]
fn stored_registers_read_back_masked_to_their_width() {
    let (mut uart, _) = model();
    write(&mut uart, offset::IBRD, 0xffff_ffff);
    write(&mut uart, offset::FBRD, 0xffff_ffff);
    write(&mut uart, offset::IFLS, 0xffff_ffff);
    write(&mut uart, offset::DMACR, 0xffff_ffff);
    assert_eq!(read(&mut uart, offset::IBRD), 0xffff);
    assert_eq!(read(&mut uart, offset::FBRD), 0x3f);
    assert_eq!(read(&mut uart, offset::IFLS), 0x3f);
    assert_eq!(read(&mut uart, offset::DMACR), 0x7);
}
