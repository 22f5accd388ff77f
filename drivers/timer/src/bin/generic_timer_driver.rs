//! The ARM generic timer's PD (QEMU virt).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(timer_driver::generic_init);
