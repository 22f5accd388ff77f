//! The Meson UART: the driver's logic (`meson_uart_driver::device`) against the host platform's
//! model of the device, through the register trait, as the driver PD reaches it on the host;
//! and the model's own rules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::Absent;
use meson_uart_driver::device::{
    baud_register, control, offset, reg5, status, MesonUart as Driver, ProbeError, TxStuck,
    FIFO_DEPTH, SPIN_LIMIT,
};
use warden_host_devices::{Device, MesonUart, ModelRegisters, NoDma, SharedOutput};
use warden_registers::{Registers, Width};

type Window = ModelRegisters<MesonUart>;

/// A model UART as the boot firmware leaves it, its window and what it transmits.
fn uart() -> (Window, SharedOutput) {
    let output = SharedOutput::default();
    (
        ModelRegisters::new(MesonUart::new(Box::new(output.clone()))),
        output,
    )
}

fn probed(window: &Window) -> Driver<&Window> {
    Driver::probe(window).unwrap()
}

// --- the driver against the model -------------------------------------------------------------

#[test]
fn probe_programs_8n1_two_wire_at_115200_from_the_crystal() {
    let (window, _) = uart();
    let _uart = probed(&window);
    assert_eq!(
        window.read32(offset::CONTROL),
        control::TX_EN | control::RX_EN | control::TWO_WIRE_EN | control::RX_INT_EN
    );
    // 24 MHz / 3 / 115200 = 69.4, rounded to 69, minus one.
    assert_eq!(window.read32(offset::REG5), (1 << 24) | (1 << 23) | 68);
    assert_eq!(window.read32(offset::MISC), 1 | (32 << 8));
}

#[test]
fn baud_register_rounds_to_nearest_like_meson_uart_c() {
    let divisor = |baud| baud_register(baud).map(|value| value & reg5::BAUD_MASK);
    assert_eq!(divisor(115_200), Some(68));
    // 8 MHz / 9600 = 833.3.
    assert_eq!(divisor(9_600), Some(832));
    // 8 MHz / 1.5 MHz = 5.33.
    assert_eq!(divisor(1_500_000), Some(4));
    assert_eq!(divisor(8_000_000), Some(0));
    assert_eq!(baud_register(0), None);
    assert_eq!(baud_register(20_000_000), None);
}

#[test]
fn probe_recovers_a_device_left_with_errors_and_stale_receive_data() {
    let (window, output) = uart();
    // A crashed driver left stale received bytes, every error latched, bytes its held
    // transmitter never sent, then 7 data bits, odd parity, two stop bits, flow control, the
    // transmit interrupt on and the receive FIFO held in reset.
    window.model().push_input(b"stale");
    window.model().latch_errors(status::ERRORS);
    window.model().hold_transmitter(true);
    for &byte in b"old" {
        window.write32(offset::WFIFO, u32::from(byte));
    }
    window.write32(
        offset::CONTROL,
        (0b01 << 20)
            | control::PARITY_EN
            | control::PARITY_TYPE
            | (0b01 << 16)
            | control::TX_EN
            | control::TX_INT_EN
            | control::RX_RST
            | 0x0123,
    );
    window.write32(offset::MISC, 0xffff);
    let mut uart = probed(&window);
    window.model().hold_transmitter(false);
    assert_eq!(
        window.read32(offset::CONTROL),
        control::TX_EN | control::RX_EN | control::TWO_WIRE_EN | control::RX_INT_EN | 0x0123
    );
    assert_eq!(window.read32(offset::STATUS) & status::ERRORS, 0);
    assert_ne!(window.read32(offset::STATUS) & status::RX_EMPTY, 0);
    assert!(
        output.contents().is_empty(),
        "the stale output was reset away"
    );
    assert!(!window.irq_level());
    assert_eq!(uart.read_byte(), None);
    window.model().push_input(b"new");
    assert_eq!(uart.read_byte(), Some(b'n'));
    uart.write_bytes(b"ok").unwrap();
    assert_eq!(output.contents(), b"ok");
}

#[test]
fn probe_refuses_a_window_too_small_or_reading_all_ones() {
    assert_eq!(
        Driver::probe(Absent(0x10)).unwrap_err(),
        ProbeError::WindowTooSmall { size: 0x10 }
    );
    assert_eq!(
        Driver::probe(Absent(0x1000)).unwrap_err(),
        ProbeError::NoDevice { status: u32::MAX }
    );
}

#[test]
fn probe_refuses_unreachable_baud_rates_without_touching_the_device() {
    let (window, _) = uart();
    window.write32(offset::CONTROL, control::TX_EN);
    for baud_rate in [0, 20_000_000] {
        assert_eq!(
            Driver::probe_with_baud_rate(&window, baud_rate).unwrap_err(),
            ProbeError::InvalidBaudRate { baud_rate }
        );
    }
    assert_eq!(window.read32(offset::CONTROL), control::TX_EN);
}

#[test]
fn write_bytes_fills_the_fifo_and_everything_reaches_the_wire() {
    let (window, output) = uart();
    let mut uart = probed(&window);
    let text: Vec<u8> = (0..200u8).map(|index| b'a' + index % 26).collect();
    window.model().hold_transmitter(true);
    uart.write_bytes(&text[..FIFO_DEPTH]).unwrap();
    window.model().hold_transmitter(false);
    uart.write_bytes(&text[FIFO_DEPTH..]).unwrap();
    assert_eq!(output.contents(), text);
    assert_eq!(window.read32(offset::STATUS) & status::TX_FIFO_WERR, 0);
}

#[test]
fn write_bytes_reports_a_stuck_transmitter_instead_of_hanging() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().hold_transmitter(true);
    let before = window.model().register_reads();
    assert_eq!(
        uart.write_bytes(&[b'#'; FIFO_DEPTH + 10]),
        Err(TxStuck {
            written: FIFO_DEPTH
        })
    );
    let reads = window.model().register_reads() - before;
    assert!(reads <= u64::from(SPIN_LIMIT) + 2 * FIFO_DEPTH as u64 + 10);
    assert_eq!(
        window.read32(offset::STATUS) & status::TX_FIFO_WERR,
        0,
        "the driver never wrote into a full FIFO"
    );
}

#[test]
fn formatted_output_goes_through_write_bytes() {
    use core::fmt::Write as _;
    let (window, output) = uart();
    let mut uart = probed(&window);
    write!(uart, "c{}", 4).unwrap();
    assert_eq!(output.contents(), b"c4");
}

#[test]
fn read_byte_returns_received_bytes_in_order_then_none() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().push_input(b"ab");
    assert_eq!(uart.read_byte(), Some(b'a'));
    assert_eq!(uart.read_byte(), Some(b'b'));
    assert_eq!(uart.read_byte(), None);
}

#[test]
fn read_byte_drops_a_byte_flagged_with_an_error_and_clears_the_error() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window.model().receive_with_errors(0, status::FRAME_ERR);
    window.model().push_input(b"x");
    assert_eq!(uart.read_byte(), Some(b'x'));
    assert_eq!(uart.receive_errors(), 1);
    assert_eq!(window.read32(offset::STATUS) & status::ERRORS, 0);
    assert_eq!(window.read32(offset::CONTROL) & control::CLEAR_ERR, 0);
}

#[test]
fn receive_interrupt_is_raised_by_one_byte_and_lowered_by_draining() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    assert!(!window.irq_level());
    window.model().push_input(b"z");
    assert!(window.irq_level());
    let cause = uart.handle_interrupt();
    assert!(cause.data_received());
    assert_eq!(cause.errors(), 0);
    assert!(window.irq_level());
    assert_eq!(uart.read_byte(), Some(b'z'));
    assert!(!window.irq_level());
    assert!(uart.handle_interrupt().is_spurious());
}

#[test]
fn handle_interrupt_reports_and_clears_errors() {
    let (window, _) = uart();
    let mut uart = probed(&window);
    window
        .model()
        .latch_errors(status::PARITY_ERR | status::TX_FIFO_WERR);
    let cause = uart.handle_interrupt();
    assert_eq!(cause.errors(), status::PARITY_ERR | status::TX_FIFO_WERR);
    assert!(!cause.data_received());
    assert!(!cause.is_spurious());
    assert_eq!(window.read32(offset::STATUS) & status::ERRORS, 0);
    assert_eq!(window.read32(offset::CONTROL) & control::CLEAR_ERR, 0);
}

// --- the model's own rules -------------------------------------------------------------------

#[test]
fn receive_reset_empties_the_fifo_and_holds_input_back() {
    let mut uart = MesonUart::new(Box::new(SharedOutput::default()));
    let dma = &mut NoDma;
    let register = |offset: usize| offset as u64;
    uart.push_input(b"stale");
    let control = uart.read(register(offset::CONTROL), Width::U32, dma);
    uart.write(
        register(offset::CONTROL),
        Width::U32,
        control | control::RX_RST,
        dma,
    );
    uart.push_input(b"new");
    assert_ne!(
        uart.read(register(offset::STATUS), Width::U32, dma) & status::RX_EMPTY,
        0
    );
    uart.write(register(offset::CONTROL), Width::U32, control, dma);
    assert_eq!(
        uart.read(register(offset::RFIFO), Width::U32, dma),
        u32::from(b'n')
    );
    // Outside the window, or not at a register: nothing happens, zero reads.
    assert_eq!(uart.read(0x18, Width::U32, dma), 0);
    assert_eq!(uart.read(0x05, Width::U8, dma), 0);
}

#[test]
fn a_held_transmitter_fills_its_fifo_and_latches_a_write_to_it_full() {
    let (window, output) = uart();
    window.model().hold_transmitter(true);
    for byte in 0..=FIFO_DEPTH as u32 {
        window.write32(offset::WFIFO, byte);
    }
    let status = window.read32(offset::STATUS);
    assert_eq!(
        status & (status::TX_FULL | status::TX_BUSY | status::TX_FIFO_WERR),
        status::TX_FULL | status::TX_BUSY | status::TX_FIFO_WERR
    );
    window.model().hold_transmitter(false);
    assert_eq!(output.contents().len(), FIFO_DEPTH);
    assert_eq!(window.model().transmitted(), FIFO_DEPTH as u64);
}
