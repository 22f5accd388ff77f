//! The demo driver PD binary: the handler lives in the library (`demo_driver::init`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

warden_microkit::protection_domain!(demo_driver::init);
