//! Amlogic Meson (Odroid C4) UART driver (skeleton).
#![cfg_attr(not(test), no_std)]
