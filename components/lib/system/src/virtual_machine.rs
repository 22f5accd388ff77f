//! The `virtual_machine` element of a protection domain (its VMM): a guest with its own vCPUs and
//! its own guest-physical address space, scheduled as a thread of its own.

use super::*;

/// A vCPU of a virtual machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcpu {
    /// Its id, in its VMM's id space (shared with the VMM's child PDs: 0–61).
    pub id: u64,
    /// CPU core.
    pub cpu: Option<u64>,
    /// Symbol patched with `id` in the VMM (`setvar_id`).
    pub setvar_id: Option<String>,
    /// Where in the file.
    pub location: Location,
}

/// A virtual machine, run by the protection domain that holds it (its VMM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualMachine {
    /// Its name (unique in the system).
    pub name: String,
    /// Priority 0–254.
    pub priority: u8,
    /// Budget in µs.
    pub budget: u64,
    /// Period in µs.
    pub period: u64,
    /// Its vCPUs, at least one.
    pub vcpus: Vec<Vcpu>,
    /// Maps into the guest-physical address space (no `setvar_*`: a guest has no program image).
    pub maps: Vec<Map>,
    /// Where in the file.
    pub location: Location,
}

/// A guest-physical map must end at or below this: a guest has no stack or IPC buffer, so it
/// may use the whole user address space ([`USER_TOP`] inclusive).
pub const VM_MAP_LIMIT: u64 = USER_TOP + 1;

impl Parser<'_, '_> {
    pub(super) fn virtual_machine(&self, node: Node) -> Result<VirtualMachine, SdfError> {
        self.attributes(node, &["name", "budget", "period", "priority"])?;
        let name = self.required(node, "name")?.to_string();
        let (priority, budget, period) =
            self.scheduling(node, &format!("virtual machine '{name}'"))?;
        let mut vm = VirtualMachine {
            name,
            priority,
            budget,
            period,
            vcpus: Vec::new(),
            maps: Vec::new(),
            location: self.location(node),
        };
        for element in self.elements(node)? {
            match element.tag_name().name() {
                "vcpu" => {
                    let vcpu = self.vcpu(element, &vm)?;
                    vm.vcpus.push(vcpu);
                }
                "map" => {
                    self.attributes(element, &["mr", "vaddr", "perms", "cached"])?;
                    let map = self.map(element)?;
                    if map.vaddr >= VM_MAP_LIMIT {
                        return Err(self.error(
                            element,
                            format!(
                                "vaddr 0x{:x} of a map in virtual machine '{}' must be below 0x{VM_MAP_LIMIT:x}",
                                map.vaddr, vm.name
                            ),
                        ));
                    }
                    vm.maps.push(map);
                }
                other => {
                    return Err(self.error(
                        element,
                        format!("unknown element <{other}> in <virtual_machine>"),
                    ))
                }
            }
        }
        if vm.vcpus.is_empty() {
            return Err(self.error(node, format!("virtual machine '{}' has no <vcpu>", vm.name)));
        }
        Ok(vm)
    }

    fn vcpu(&self, node: Node, vm: &VirtualMachine) -> Result<Vcpu, SdfError> {
        self.attributes(node, &["id", "setvar_id", "cpu"])?;
        let id = self.required_number(node, "id")?;
        if id > MAX_ID {
            return Err(self.error(node, format!("vcpu id {id} is above {MAX_ID}")));
        }
        if vm.vcpus.iter().any(|vcpu| vcpu.id == id) {
            return Err(self.error(
                node,
                format!(
                    "vcpu id {id} is used twice in virtual machine '{}'",
                    vm.name
                ),
            ));
        }
        let cpu = self.optional_number(node, "cpu")?;
        if let (Some(cpu), Some(cores)) = (cpu, self.target.cores) {
            if cpu >= cores {
                return Err(self.error(
                    node,
                    format!(
                        "cpu {cpu} of a vcpu of '{}': the target has {cores} core(s), numbered from 0",
                        vm.name
                    ),
                ));
            }
        }
        Ok(Vcpu {
            id,
            cpu,
            setvar_id: node.attribute("setvar_id").map(str::to_string),
            location: self.location(node),
        })
    }
}
