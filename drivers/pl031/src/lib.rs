//! PL031 real-time clock driver PD (skeleton).
#![cfg_attr(not(test), no_std)]
