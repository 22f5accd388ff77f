//! What a system description gives each child of a PD: the device memory its maps reach (the
//! `phys_addr` regions, as physical windows) and the interrupts it receives. The device manager
//! takes its driver PDs' authority from this (embedded at build time on seL4, read at start-up
//! on the host platform), so the grants a system description makes are the ones enforced.

use warden_vocabulary::{Grant, MmioWindow};

use crate::System;

/// Why a grant could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantError(pub String);

impl std::fmt::Display for GrantError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The index of the PD whose program image is `image` (its file name), if there is exactly one.
#[must_use]
pub fn find_by_program(system: &System, image: &str) -> Option<usize> {
    let mut found = system
        .protection_domains
        .iter()
        .enumerate()
        .filter(|(_, pd)| {
            std::path::Path::new(&pd.program_image)
                .file_name()
                .is_some_and(|name| name == image)
        })
        .map(|(index, _)| index);
    let first = found.next();
    found.next().is_none().then_some(first).flatten()
}

/// The grant of every child of PD `parent`: its child id and what it is given.
///
/// # Errors
/// A child is given more device windows or interrupts than a [`Grant`] holds.
pub fn child_grants(system: &System, parent: usize) -> Result<Vec<(u64, Grant)>, GrantError> {
    let mut grants = Vec::new();
    for pd in &system.protection_domains {
        let Some((owner, id)) = pd.parent else {
            continue;
        };
        if owner != parent {
            continue;
        }
        let mut grant = Grant::default();
        for map in &pd.maps {
            let Some(region) = system.region(&map.region) else {
                continue;
            };
            let Some(base) = region.phys_addr else {
                continue;
            };
            grant
                .windows
                .push(MmioWindow {
                    base,
                    size: region.size,
                })
                .map_err(|_| {
                    GrantError(format!(
                        "'{}' maps more device regions than a grant holds ({})",
                        pd.name,
                        warden_vocabulary::MAX_GRANT_WINDOWS
                    ))
                })?;
        }
        for irq in &pd.irqs {
            let intid = u32::try_from(irq.irq).unwrap_or(u32::MAX);
            grant.irqs.push(intid).map_err(|_| {
                GrantError(format!(
                    "'{}' has more interrupts than a grant holds ({})",
                    pd.name,
                    warden_vocabulary::MAX_GRANT_IRQS
                ))
            })?;
        }
        grants.push((id, grant));
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_given_its_device_maps_and_interrupts() {
        let text = r#"<system>
            <memory_region name="uart" size="0x1000" phys_addr="0x9000000" />
            <memory_region name="ring" size="0x1000" />
            <protection_domain name="manager" priority="200">
                <program_image path="device_manager.elf" />
                <protection_domain name="uart_driver" id="1" priority="150">
                    <program_image path="pl011_driver.elf" />
                    <map mr="uart" vaddr="0x2000000" perms="rw" cached="false" />
                    <map mr="ring" vaddr="0x3000000" perms="rw" />
                    <irq irq="33" id="1" />
                </protection_domain>
                <protection_domain name="nothing" id="2" priority="150">
                    <program_image path="other.elf" />
                </protection_domain>
            </protection_domain>
        </system>"#;
        let system = crate::parse("test.xml", text).unwrap();
        let manager = find_by_program(&system, "device_manager.elf").unwrap();
        let grants = child_grants(&system, manager).unwrap();
        assert_eq!(grants.len(), 2);
        let (id, uart) = &grants[0];
        assert_eq!(*id, 1);
        assert_eq!(
            uart.windows.as_slice(),
            [MmioWindow {
                base: 0x900_0000,
                size: 0x1000
            }],
            "the device region only, not the ring"
        );
        assert_eq!(uart.irqs.as_slice(), [33]);
        assert!(grants[1].1.is_empty());
        assert_eq!(find_by_program(&system, "missing.elf"), None);
    }
}
