//! The serial demo client's binary (the logic is in the library's `serial` module).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(warden_demo_client::serial::init);
