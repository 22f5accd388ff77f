//! The checks across elements, once every element is read: names, ids, priorities and the call
//! graph, maps.

use super::*;

impl Parser<'_, '_> {
    /// The checks across elements.
    pub(super) fn check(&self, system: &System) -> Result<(), SdfError> {
        // The count of PDs is checked as they are read (`protection_domain`).
        let pds = &system.protection_domains;
        for (index, pd) in pds.iter().enumerate() {
            if pd.name == "monitor" {
                return Err(self.error_at(pd.location, "the name 'monitor' is reserved".into()));
            }
            if pds.iter().take(index).any(|other| other.name == pd.name) {
                return Err(self.error_at(
                    pd.location,
                    format!("protection domain name '{}' is used twice", pd.name),
                ));
            }
        }
        for (index, region) in system.memory_regions.iter().enumerate() {
            let earlier = system.memory_regions.iter().take(index);
            if earlier.clone().any(|other| other.name == region.name) {
                return Err(self.error_at(
                    region.location,
                    format!("memory region name '{}' is used twice", region.name),
                ));
            }
            if let Some(start) = region.phys_addr {
                let end = start + region.size;
                for other in earlier {
                    if let Some(other_start) = other.phys_addr {
                        if start < other_start + other.size && other_start < end {
                            return Err(self.error_at(
                                region.location,
                                format!(
                                    "memory region '{}' overlaps '{}' in physical memory",
                                    region.name, other.name
                                ),
                            ));
                        }
                    }
                }
            }
        }
        let mut vm_names: Vec<&str> = Vec::new();
        for pd in pds {
            if let Some(vm) = &pd.virtual_machine {
                if vm_names.contains(&vm.name.as_str()) {
                    return Err(self.error_at(
                        vm.location,
                        format!("virtual machine name '{}' is used twice", vm.name),
                    ));
                }
                vm_names.push(&vm.name);
            }
            for cap_map in &pd.cap_maps {
                if !pds.iter().any(|other| other.name == cap_map.pd) {
                    return Err(self.error_at(
                        cap_map.location,
                        format!("no protection domain named '{}'", cap_map.pd),
                    ));
                }
            }
        }
        self.check_ids(system)?;
        self.check_maps(system)?;
        for channel in &system.channels {
            for (caller, callee) in [
                (&channel.ends[0], &channel.ends[1]),
                (&channel.ends[1], &channel.ends[0]),
            ] {
                let (Some(from), Some(to)) = (pds.get(caller.pd), pds.get(callee.pd)) else {
                    continue;
                };
                // Strictly increasing priorities along every call also make the call graph
                // acyclic: a cycle would need a PD of higher priority than itself.
                if caller.pp && from.priority >= to.priority {
                    return Err(self.error_at(
                        channel.location,
                        format!(
                            "'{}' (priority {}) may only call a protection domain of strictly higher priority, and '{}' has priority {}",
                            from.name, from.priority, to.name, to.priority
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Channel and IRQ ids share one namespace per PD; IRQ numbers are unique system-wide.
    pub(super) fn check_ids(&self, system: &System) -> Result<(), SdfError> {
        let pds = &system.protection_domains;
        let mut used: Vec<Vec<u64>> = vec![Vec::new(); pds.len()];
        let mut irq_numbers: Vec<u64> = Vec::new();
        for (index, pd) in pds.iter().enumerate() {
            for irq in &pd.irqs {
                if irq_numbers.contains(&irq.irq) {
                    return Err(
                        self.error_at(irq.location, format!("irq {} is claimed twice", irq.irq))
                    );
                }
                irq_numbers.push(irq.irq);
                if let Some(ids) = used.get_mut(index) {
                    if ids.contains(&irq.id) {
                        return Err(self.error_at(
                            irq.location,
                            format!("id {} is used twice in '{}'", irq.id, pd.name),
                        ));
                    }
                    ids.push(irq.id);
                }
            }
        }
        for channel in &system.channels {
            for end in &channel.ends {
                let name = pds.get(end.pd).map_or("", |pd| pd.name.as_str());
                if let Some(ids) = used.get_mut(end.pd) {
                    if ids.contains(&end.id) {
                        return Err(self.error_at(
                            channel.location,
                            format!("id {} is used twice in '{name}'", end.id),
                        ));
                    }
                    ids.push(end.id);
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_maps(&self, system: &System) -> Result<(), SdfError> {
        for pd in &system.protection_domains {
            let limit = map_limit(pd.stack_size);
            self.check_address_space(
                system,
                &pd.maps,
                limit,
                &format!("'{}'", pd.name),
                &format!("where the stack of '{}' begins (the IPC buffer and the stack are at the top of the user address space)", pd.name),
            )?;
            if let Some(vm) = &pd.virtual_machine {
                self.check_address_space(
                    system,
                    &vm.maps,
                    VM_MAP_LIMIT,
                    &format!("virtual machine '{}'", vm.name),
                    "the top of the user address space",
                )?;
            }
            for setvar in &pd.setvars {
                let known = system
                    .memory_regions
                    .iter()
                    .any(|region| region.name == setvar.region);
                if !known {
                    return Err(self.error_at(
                        pd.location,
                        format!(
                            "setvar '{}' names no memory region '{}'",
                            setvar.symbol, setvar.region
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// One address space's maps (`space` names it in errors): each names a region, is aligned
    /// to its page size, ends at or below `limit` (`what_limit` says what is there) and overlaps
    /// no other.
    fn check_address_space(
        &self,
        system: &System,
        maps: &[Map],
        limit: u64,
        space: &str,
        what_limit: &str,
    ) -> Result<(), SdfError> {
        let mut placed: Vec<(u64, u64, &str)> = Vec::new();
        for map in maps {
            let region = system.region(&map.region).ok_or_else(|| {
                self.error_at(
                    map.location,
                    format!("no memory region named '{}'", map.region),
                )
            })?;
            if map.setvar_prefill_size.is_some() && region.prefill.is_none() {
                return Err(self.error_at(
                    map.location,
                    format!(
                        "'setvar_prefill_size' used for MR without a `prefill_path` @ '{}'",
                        region.name
                    ),
                ));
            }
            if map.vaddr % region.page_size != 0 {
                return Err(self.error_at(
                    map.location,
                    format!(
                        "vaddr 0x{:x} is not aligned to the page size 0x{:x} of '{}'",
                        map.vaddr, region.page_size, region.name
                    ),
                ));
            }
            let end = map
                .vaddr
                .checked_add(region.size)
                .filter(|&end| end <= limit)
                .ok_or_else(|| {
                    self.error_at(
                        map.location,
                        format!(
                            "the map of '{}' at 0x{:x} (0x{:x} bytes) runs past 0x{limit:x}, {what_limit}",
                            region.name, map.vaddr, region.size
                        ),
                    )
                })?;
            if let Some((_, _, other)) = placed
                .iter()
                .find(|(start, stop, _)| map.vaddr < *stop && *start < end)
            {
                return Err(self.error_at(
                    map.location,
                    format!(
                        "the map of '{}' at 0x{:x} overlaps the map of '{other}' in {space}",
                        region.name, map.vaddr
                    ),
                ));
            }
            placed.push((map.vaddr, end, region.name.as_str()));
        }
        Ok(())
    }
}
