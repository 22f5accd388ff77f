//! The PCI host bridge driver PD's binary (the logic is in the library).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(pci_host_driver::init);
