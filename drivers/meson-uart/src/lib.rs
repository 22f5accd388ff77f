//! Amlogic Meson (Odroid C4) UART driver.
//!
//! [`device`] holds the register block of the UART of the Amlogic Meson GX, G12 and SM1 SoCs
//! (the S905X3 of the Odroid C4 among them) and the driver logic generic over
//! [`warden_registers::Registers`]. Amlogic publishes no register manual for it beyond the SoC
//! datasheets, so the register layout follows Linux's `drivers/tty/serial/meson_uart.c`, which
//! is what the hardware is known to work with; where this driver goes beyond it, [`device`]
//! says so.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;
