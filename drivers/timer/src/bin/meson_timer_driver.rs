//! The Meson timer's PD (Odroid C4).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(timer_driver::meson_init);
