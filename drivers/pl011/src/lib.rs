//! PL011 UART driver PD: console output and line input (skeleton).
#![cfg_attr(not(test), no_std)]
