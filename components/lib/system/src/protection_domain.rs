//! The `protection_domain` element and what it holds: `program_image`, `map`, `irq`, `setvar`,
//! `cspace`, a `virtual_machine` and child protection domains.

use super::*;

/// Map permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub execute: bool,
}

/// A `map` of a memory region into a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    /// The region's name.
    pub region: String,
    /// Where it appears in the PD.
    pub vaddr: u64,
    /// Permissions.
    pub permissions: Permissions,
    /// Cached (false for device registers).
    pub cached: bool,
    /// Symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// Symbol patched with the length of the region's `prefill_path` file.
    pub setvar_prefill_size: Option<String>,
    /// Where in the file.
    pub location: Location,
}

/// IRQ trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Level-triggered (the default).
    Level,
    /// Edge-triggered.
    Edge,
}

/// An `irq` of a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Irq {
    /// The hardware interrupt number.
    pub irq: u64,
    /// The PD's channel id for it.
    pub id: u64,
    /// Trigger.
    pub trigger: Trigger,
    /// Where in the file.
    pub location: Location,
}

/// A `setvar` naming a region's physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetVar {
    /// The symbol.
    pub symbol: String,
    /// The region whose physical address it receives.
    pub region: String,
}

/// A `setvar_id`: a symbol patched with a channel, IRQ or child id (on an `<irq>` or `<end>`
/// of the PD, or on a child `<protection_domain>`, whose id its parent learns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetVarId {
    /// The symbol.
    pub symbol: String,
    /// The id.
    pub id: u64,
    /// Where in the file.
    pub location: Location,
}

/// The kind of capability a `cspace` entry copies from another PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// `cap_tcb`: its thread control block.
    Tcb,
    /// `cap_sc`: its scheduling context.
    SchedulingContext,
    /// `cap_vspace`: its address space's root.
    VSpace,
}

impl CapKind {
    /// Every kind, in the schema's order.
    pub const ALL: [Self; 3] = [Self::Tcb, Self::SchedulingContext, Self::VSpace];

    /// Its element in a `cspace`.
    #[must_use]
    pub const fn element(self) -> &'static str {
        match self {
            Self::Tcb => "cap_tcb",
            Self::SchedulingContext => "cap_sc",
            Self::VSpace => "cap_vspace",
        }
    }
}

/// A `cspace` entry: a capability of another PD placed in a slot of this PD's CSpace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapMap {
    /// What kind.
    pub kind: CapKind,
    /// The PD whose capability it is (a name: checked once every PD is read).
    pub pd: String,
    /// The slot, 1–127 (0 is the Microkit's own CNode).
    pub slot: u64,
    /// Where in the file.
    pub location: Location,
}

/// Slots of a PD's user CSpace (`MICROKIT_MAX_USER_CAPS`): `cspace` entries use 1 to this less one.
pub const CAP_SLOTS: u64 = 128;

/// A protection domain (children are flattened into the system's list, with `parent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Its name.
    pub name: String,
    /// Priority 0–254.
    pub priority: u8,
    /// Budget in µs.
    pub budget: u64,
    /// Period in µs.
    pub period: u64,
    /// Passive: runs on its callers' budgets after `init`.
    pub passive: bool,
    /// Stack bytes.
    pub stack_size: u64,
    /// May make SMC calls.
    pub smc: bool,
    /// Uses the floating-point unit (default true).
    pub fpu: bool,
    /// CPU core.
    pub cpu: Option<u64>,
    /// The program's path.
    pub program_image: String,
    /// Maps.
    pub maps: Vec<Map>,
    /// IRQs.
    pub irqs: Vec<Irq>,
    /// `setvar` elements.
    pub setvars: Vec<SetVar>,
    /// `setvar_id`s of its IRQs, channel ends and children.
    pub setvar_ids: Vec<SetVarId>,
    /// Parent PD (index in [`System::protection_domains`]) and this PD's id under it.
    pub parent: Option<(usize, u64)>,
    /// Its domain's id, when the system declares `domains`.
    pub domain: Option<u64>,
    /// The virtual machine this PD runs (as its VMM).
    pub virtual_machine: Option<VirtualMachine>,
    /// Other PDs' capabilities placed in its CSpace (`cspace`).
    pub cap_maps: Vec<CapMap>,
    /// Where in the file.
    pub location: Location,
}

impl Parser<'_, '_> {
    pub(super) fn protection_domain(
        &self,
        node: Node,
        parent: Option<usize>,
        system: &mut System,
    ) -> Result<(), SdfError> {
        let mut allowed = vec![
            "name",
            "priority",
            "budget",
            "period",
            "passive",
            "stack_size",
            "smc",
            "cpu",
            "domain",
            "fpu",
        ];
        if parent.is_some() {
            allowed.extend(["id", "setvar_id"]);
        }
        self.attributes(node, &allowed)?;
        let name = self.required(node, "name")?.to_string();
        // Counted as they are read, so a file of thousands (or thousands deep) is refused at
        // the first one too many, not after a walk of them all.
        if system.protection_domains.len() >= MAX_PROTECTION_DOMAINS {
            return Err(self.error(
                node,
                format!(
                    "'{name}' would be protection domain {}: at most {MAX_PROTECTION_DOMAINS} are allowed (children count)",
                    system.protection_domains.len() + 1
                ),
            ));
        }
        let (priority, budget, period) = self.scheduling(node, &format!("'{name}'"))?;
        let stack_size = self
            .optional_number(node, "stack_size")?
            .unwrap_or(DEFAULT_STACK);
        if !(MIN_STACK..=MAX_STACK).contains(&stack_size) || stack_size % SMALL_PAGE != 0 {
            return Err(self.error(
                node,
                format!(
                    "stack_size 0x{stack_size:x} of '{name}' must be a multiple of 0x1000 from 0x{MIN_STACK:x} to 0x{MAX_STACK:x}"
                ),
            ));
        }
        let child_id = match parent {
            Some(_) => {
                let id = self.required_number(node, "id")?;
                if id > MAX_ID {
                    return Err(
                        self.error(node, format!("child id {id} of '{name}' is above {MAX_ID}"))
                    );
                }
                Some(id)
            }
            None => None,
        };
        let mut pd = ProtectionDomain {
            name: name.clone(),
            priority,
            budget,
            period,
            passive: self.boolean(node, "passive", false)?,
            stack_size,
            smc: self.boolean(node, "smc", false)?,
            fpu: self.boolean(node, "fpu", true)?,
            cpu: match (self.optional_number(node, "cpu")?, self.target.cores) {
                (Some(cpu), Some(cores)) if cpu >= cores => {
                    return Err(self.error(
                        node,
                        format!(
                            "cpu {cpu} of '{name}': the target has {cores} core(s), numbered from 0"
                        ),
                    ))
                }
                (cpu, _) => cpu,
            },
            program_image: String::new(),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            setvar_ids: Vec::new(),
            parent: parent.zip(child_id),
            domain: self.domain_of(node, &name, system)?,
            virtual_machine: None,
            cap_maps: Vec::new(),
            location: self.location(node),
        };
        let index = system.protection_domains.len();
        let mut children = Vec::new();
        let mut program_image = None;
        let mut seen_cspace = false;
        for element in self.elements(node)? {
            match element.tag_name().name() {
                "program_image" => {
                    self.attributes(element, &["path", "path_for_symbols"])?;
                    if program_image.is_some() {
                        return Err(self.error(
                            element,
                            format!("'{name}' has more than one <program_image>"),
                        ));
                    }
                    program_image = Some(self.required(element, "path")?.to_string());
                }
                "map" => {
                    let map = self.map(element)?;
                    pd.maps.push(map);
                }
                "irq" => {
                    let irq = self.irq(element)?;
                    if let Some(symbol) = element.attribute("setvar_id") {
                        pd.setvar_ids.push(SetVarId {
                            symbol: symbol.to_string(),
                            id: irq.id,
                            location: irq.location,
                        });
                    }
                    pd.irqs.push(irq);
                }
                "setvar" => {
                    self.attributes(element, &["symbol", "region_paddr"])?;
                    pd.setvars.push(SetVar {
                        symbol: self.required(element, "symbol")?.to_string(),
                        region: self.required(element, "region_paddr")?.to_string(),
                    });
                }
                "protection_domain" => children.push(element),
                "virtual_machine" => {
                    if pd.virtual_machine.is_some() {
                        return Err(self.error(
                            element,
                            format!("'{name}' has more than one <virtual_machine>"),
                        ));
                    }
                    let vm = self.virtual_machine(element)?;
                    // `setvar_id` on a vcpu: the VMM learns the vcpu's id.
                    for vcpu in &vm.vcpus {
                        if let Some(symbol) = &vcpu.setvar_id {
                            pd.setvar_ids.push(SetVarId {
                                symbol: symbol.clone(),
                                id: vcpu.id,
                                location: vcpu.location,
                            });
                        }
                    }
                    pd.virtual_machine = Some(vm);
                }
                "cspace" => {
                    if seen_cspace {
                        return Err(
                            self.error(element, format!("'{name}' has more than one <cspace>"))
                        );
                    }
                    seen_cspace = true;
                    pd.cap_maps = self.cspace(element)?;
                }
                "ioport" => return Err(self.error(
                    element,
                    "I/O ports (<ioport>) are only available on x86; Warden's targets are aarch64",
                )),
                other => {
                    return Err(self.error(
                        element,
                        format!("unknown element <{other}> in <protection_domain>"),
                    ))
                }
            }
        }
        pd.program_image = program_image
            .ok_or_else(|| self.error(node, format!("'{name}' has no <program_image>")))?;
        system.protection_domains.push(pd);
        let mut child_ids: Vec<u64> = Vec::new();
        for child in children {
            let before = system.protection_domains.len();
            self.protection_domain(child, Some(index), system)?;
            let id = system
                .protection_domains
                .get(before)
                .and_then(|child| child.parent)
                .map_or(0, |(_, id)| id);
            if child_ids.contains(&id) {
                return Err(self.error(child, format!("child id {id} is used twice in '{name}'")));
            }
            let vm = system
                .protection_domains
                .get(index)
                .and_then(|pd| pd.virtual_machine.as_ref());
            if let Some(vm) = vm.filter(|vm| vm.vcpus.iter().any(|vcpu| vcpu.id == id)) {
                return Err(self.error(
                    child,
                    format!(
                        "child id {id} of '{name}' is also the id of a vcpu of its virtual machine '{}'",
                        vm.name
                    ),
                ));
            }
            child_ids.push(id);
            // `setvar_id` on a child: its parent learns the child's id.
            if let (Some(symbol), Some(parent)) = (
                child.attribute("setvar_id"),
                system.protection_domains.get_mut(index),
            ) {
                parent.setvar_ids.push(SetVarId {
                    symbol: symbol.to_string(),
                    id,
                    location: self.location(child),
                });
            }
        }
        Ok(())
    }

    /// `priority` (0–254, default 0), `budget` (µs, default 1000) and `period` (default: the
    /// budget, and not below it) of a PD or a virtual machine (`what` names it in errors).
    pub(super) fn scheduling(&self, node: Node, what: &str) -> Result<(u8, u64, u64), SdfError> {
        let priority = self.optional_number(node, "priority")?.unwrap_or(0);
        let priority = u8::try_from(priority)
            .ok()
            .filter(|&priority| u64::from(priority) <= MAX_PRIORITY)
            .ok_or_else(|| {
                self.error(
                    node,
                    format!("priority {priority} of {what} is above {MAX_PRIORITY}"),
                )
            })?;
        let budget = self
            .optional_number(node, "budget")?
            .unwrap_or(DEFAULT_BUDGET);
        let period = self.optional_number(node, "period")?.unwrap_or(budget);
        if budget > period {
            return Err(self.error(
                node,
                format!("budget ({budget}) of {what} is greater than its period ({period})"),
            ));
        }
        Ok((priority, budget, period))
    }

    /// The PD's `domain`: required, and declared, when the system declares domains before it (as
    /// the microkit tool reads them); refused when it does not.
    fn domain_of(&self, node: Node, name: &str, system: &System) -> Result<Option<u64>, SdfError> {
        let declared = system
            .domains
            .as_ref()
            .filter(|domains| !domains.domains.is_empty());
        match (declared, node.attribute("domain")) {
            (Some(domains), _) => {
                let domain = self.required(node, "domain")?;
                domains.id(domain).map(Some).ok_or_else(|| {
                    self.error(
                        node,
                        format!("domain '{domain}' of '{name}' is not declared in <domains>"),
                    )
                })
            }
            (None, Some(domain)) => Err(self.error(
                node,
                format!("'{name}' names domain '{domain}', but no <domains> with a schedule comes before it"),
            )),
            (None, None) => Ok(None),
        }
    }

    fn cspace(&self, node: Node) -> Result<Vec<CapMap>, SdfError> {
        self.attributes(node, &[])?;
        let mut cap_maps = Vec::new();
        for element in self.elements(node)? {
            let tag = element.tag_name().name();
            let Some(kind) = CapKind::ALL.into_iter().find(|kind| kind.element() == tag) else {
                let message = match tag.strip_prefix("cap_") {
                    Some(kind) => {
                        format!(
                            "cap type '{kind}' is not supported (cap_tcb, cap_sc, cap_vspace are)"
                        )
                    }
                    None => format!("unknown element <{tag}> in <cspace>"),
                };
                return Err(self.error(element, message));
            };
            self.attributes(element, &["slot", "pd"])?;
            let pd = self.required(element, "pd")?.to_string();
            let slot = self.required_number(element, "slot")?;
            if slot == 0 {
                return Err(self.error(element, "slot 0 is reserved for the Microkit's CNode"));
            }
            if slot >= CAP_SLOTS {
                return Err(self.error(
                    element,
                    format!(
                        "slot {slot} is beyond the {CAP_SLOTS} slots of a CSpace (1 to {})",
                        CAP_SLOTS - 1
                    ),
                ));
            }
            if let Some(other) = cap_maps.iter().find(|map: &&CapMap| map.slot == slot) {
                return Err(self.error(
                    element,
                    format!("slot {slot} is used twice (line {})", other.location.line),
                ));
            }
            cap_maps.push(CapMap {
                kind,
                pd,
                slot,
                location: self.location(element),
            });
        }
        Ok(cap_maps)
    }

    pub(super) fn check_symbols(&self, pd: &ProtectionDomain) -> Result<(), SdfError> {
        let mut symbols: Vec<&str> = Vec::new();
        let from_maps = pd.maps.iter().flat_map(|map| {
            [
                &map.setvar_vaddr,
                &map.setvar_size,
                &map.setvar_prefill_size,
            ]
            .into_iter()
            .flatten()
            .map(move |symbol| (symbol.as_str(), map.location))
        });
        let from_setvars = pd
            .setvars
            .iter()
            .map(|setvar| (setvar.symbol.as_str(), pd.location));
        let from_ids = pd
            .setvar_ids
            .iter()
            .map(|setvar| (setvar.symbol.as_str(), setvar.location));
        for (symbol, location) in from_maps.chain(from_setvars).chain(from_ids) {
            if symbols.contains(&symbol) {
                return Err(self.error_at(
                    location,
                    format!("symbol '{symbol}' is set twice in '{}'", pd.name),
                ));
            }
            symbols.push(symbol);
        }
        Ok(())
    }

    pub(super) fn map(&self, node: Node) -> Result<Map, SdfError> {
        self.attributes(
            node,
            &[
                "mr",
                "vaddr",
                "perms",
                "cached",
                "setvar_vaddr",
                "setvar_size",
                "setvar_prefill_size",
            ],
        )?;
        let permissions = match node.attribute("perms") {
            None => Permissions {
                read: true,
                write: true,
                execute: false,
            },
            Some(text) => {
                // Empty is valid, as for the tool: a map with no access.
                let valid = text.chars().all(|c| matches!(c, 'r' | 'w' | 'x'));
                if !valid {
                    return Err(self.error(
                        node,
                        format!("perms '{text}' must be a combination of 'r', 'w' and 'x'"),
                    ));
                }
                Permissions {
                    read: text.contains('r'),
                    write: text.contains('w'),
                    execute: text.contains('x'),
                }
            }
        };
        if permissions.write && !permissions.read && !permissions.execute {
            return Err(self.error(node, "write-only maps are not allowed"));
        }
        Ok(Map {
            region: self.required(node, "mr")?.to_string(),
            vaddr: self.required_number(node, "vaddr")?,
            permissions,
            cached: self.boolean(node, "cached", true)?,
            setvar_vaddr: node.attribute("setvar_vaddr").map(str::to_string),
            setvar_size: node.attribute("setvar_size").map(str::to_string),
            setvar_prefill_size: node.attribute("setvar_prefill_size").map(str::to_string),
            location: self.location(node),
        })
    }

    pub(super) fn irq(&self, node: Node) -> Result<Irq, SdfError> {
        if node.attribute("irq").is_none() {
            // x86's kinds, told apart as the microkit tool tells them.
            let kind = if node.attribute("pin").is_some() {
                Some("I/O APIC")
            } else if node.attribute("pcidev").is_some() {
                Some("MSI")
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(self.error(
                    node,
                    format!("x86 {kind} interrupts are not supported on ARM: Warden's targets are aarch64"),
                ));
            }
        }
        self.attributes(node, &["irq", "id", "setvar_id", "trigger"])?;
        let id = self.required_number(node, "id")?;
        if id > MAX_ID {
            return Err(self.error(node, format!("irq id {id} is above {MAX_ID}")));
        }
        let trigger = match node.attribute("trigger") {
            None | Some("level") => Trigger::Level,
            Some("edge") => Trigger::Edge,
            Some(other) => {
                return Err(self.error(
                    node,
                    format!("trigger must be 'level' or 'edge', not '{other}'"),
                ))
            }
        };
        Ok(Irq {
            irq: self.required_number(node, "irq")?,
            id,
            trigger,
            location: self.location(node),
        })
    }
}
