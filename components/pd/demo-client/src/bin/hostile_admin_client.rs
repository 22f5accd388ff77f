//! The hostile administrative client's binary, for sim-test: it runs in the shell's place (the
//! logic is in the library's `admin_hostile` module).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(warden_demo_client::admin_hostile::init);
