//! The `domains` element: seL4's domain scheduler, a fixed cyclic schedule of time slices, each
//! given to one domain; a PD runs only in its domain's slices. When a system declares domains,
//! every PD names its own (`domain="…"`).

use super::*;

/// Most domains (`KernelNumDomains` of the 2.3.0 SDK's configurations for Warden's boards):
/// ids 0–15.
pub const MAX_DOMAINS: u64 = 16;

/// Entries in the schedule, end markers included, must stay below this
/// (`KernelNumDomainSchedules`), and so must the shift plus the entries.
pub const MAX_DOMAIN_SCHEDULE: u64 = 100;

/// A domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Its name.
    pub name: String,
    /// Its id: given, or the lowest one free, in the order the domains are declared.
    pub id: u64,
}

/// How long a slice of the schedule lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duration {
    /// Microseconds.
    Microseconds(u64),
    /// Timer ticks.
    Ticks(u64),
    /// `schedule_end_marker`: the schedule ends here.
    EndMarker,
}

/// A slice of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleEntry {
    /// The domain's id (0 for an end marker).
    pub domain: u64,
    /// How long.
    pub duration: Duration,
}

/// The domains and their schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domains {
    /// The domains, in the order declared.
    pub domains: Vec<Domain>,
    /// The entry the schedule starts at (`start_index`, default 0).
    pub start_index: u64,
    /// Where in the kernel's schedule table it goes (`index_shift`).
    pub index_shift: Option<u64>,
    /// The schedule.
    pub schedule: Vec<ScheduleEntry>,
    /// Where in the file.
    pub location: Location,
}

impl Domains {
    /// The id of the domain named `name`.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<u64> {
        self.domains
            .iter()
            .find(|domain| domain.name == name)
            .map(|domain| domain.id)
    }
}

impl Parser<'_, '_> {
    pub(super) fn domains(&self, node: Node) -> Result<Domains, SdfError> {
        self.attributes(node, &[])?;
        if let Some(cores) = self.target.cores.filter(|&cores| cores > 1) {
            return Err(self.error(
                node,
                format!("the domain scheduler is not supported in multicore builds of seL4 (the target has {cores} cores)"),
            ));
        }
        let mut named: Vec<(String, Option<u64>, Node)> = Vec::new();
        let mut schedule_node = None;
        for element in self.elements(node)? {
            match element.tag_name().name() {
                "domain" => {
                    self.attributes(element, &["name", "id"])?;
                    let name = self.required(element, "name")?.to_string();
                    let id = self.optional_number(element, "id")?;
                    if let Some(id) = id.filter(|&id| id >= MAX_DOMAINS) {
                        return Err(self.error(
                            element,
                            format!("domain id {id} of '{name}' must be below {MAX_DOMAINS} (KernelNumDomains)"),
                        ));
                    }
                    if named.iter().any(|(other, _, _)| *other == name) {
                        return Err(
                            self.error(element, format!("domain name '{name}' is used twice"))
                        );
                    }
                    if let Some((other, _, _)) = named
                        .iter()
                        .find(|(_, other, _)| id.is_some() && *other == id)
                    {
                        return Err(self.error(
                            element,
                            format!(
                                "domain id {} of '{name}' is also the id of '{other}'",
                                id.unwrap_or_default()
                            ),
                        ));
                    }
                    // Refused as they are read: a file of a million domains stops here, after
                    // 16 comparisons each.
                    if named.len() as u64 >= MAX_DOMAINS {
                        return Err(self.error(
                            element,
                            format!("domain '{name}': more than {MAX_DOMAINS} domains (KernelNumDomains)"),
                        ));
                    }
                    named.push((name, id, element));
                }
                "domain_schedule" => {
                    if schedule_node.is_some() {
                        return Err(
                            self.error(element, "<domains> has more than one <domain_schedule>")
                        );
                    }
                    schedule_node = Some(element);
                }
                other => {
                    return Err(
                        self.error(element, format!("unknown element <{other}> in <domains>"))
                    )
                }
            }
        }
        let schedule_node =
            schedule_node.ok_or_else(|| self.error(node, "<domains> has no <domain_schedule>"))?;
        // Ids not given: the lowest free, in the order declared.
        let mut domains: Vec<Domain> = Vec::new();
        for (name, id, element) in &named {
            let id = match id {
                Some(id) => *id,
                None => (0..MAX_DOMAINS)
                    .find(|candidate| {
                        !named.iter().any(|(_, given, _)| *given == Some(*candidate))
                            && !domains.iter().any(|domain| domain.id == *candidate)
                    })
                    .ok_or_else(|| {
                        self.error(
                            *element,
                            format!("domain '{name}': more than {MAX_DOMAINS} domains (KernelNumDomains)"),
                        )
                    })?,
            };
            domains.push(Domain {
                name: name.clone(),
                id,
            });
        }
        self.domain_schedule(schedule_node, domains, self.location(node))
    }

    fn domain_schedule(
        &self,
        node: Node,
        domains: Vec<Domain>,
        location: Location,
    ) -> Result<Domains, SdfError> {
        self.attributes(node, &["index_shift", "start_index"])?;
        let start_index = self.optional_number(node, "start_index")?.unwrap_or(0);
        let index_shift = self.optional_number(node, "index_shift")?;
        let mut domains = Domains {
            domains,
            start_index,
            index_shift,
            schedule: Vec::new(),
            location,
        };
        for element in self.elements(node)? {
            let entry = match element.tag_name().name() {
                "schedule_entry" => self.schedule_entry(element, &domains)?,
                "schedule_end_marker" => {
                    self.attributes(element, &[])?;
                    ScheduleEntry {
                        domain: 0,
                        duration: Duration::EndMarker,
                    }
                }
                other => {
                    return Err(self.error(
                        element,
                        format!("unknown element <{other}> in <domain_schedule>"),
                    ))
                }
            };
            // Counted as they are read: a file of a million entries stops at the hundredth.
            if domains.schedule.len() as u64 + 1 >= MAX_DOMAIN_SCHEDULE {
                return Err(self.error(
                    element,
                    format!("the schedule has {MAX_DOMAIN_SCHEDULE} entries or more: at most {} (KernelNumDomainSchedules is {MAX_DOMAIN_SCHEDULE})", MAX_DOMAIN_SCHEDULE - 1),
                ));
            }
            domains.schedule.push(entry);
        }
        let length = domains.schedule.len() as u64;
        if start_index >= length {
            return Err(self.error(
                node,
                format!(
                    "start_index {start_index} is not below the length of the schedule ({length})"
                ),
            ));
        }
        if let Some(shift) = index_shift {
            if shift.saturating_add(length) >= MAX_DOMAIN_SCHEDULE {
                return Err(self.error(
                    node,
                    format!("index_shift {shift} plus the schedule's {length} entries reaches KernelNumDomainSchedules ({MAX_DOMAIN_SCHEDULE})"),
                ));
            }
        }
        Ok(domains)
    }

    fn schedule_entry(&self, node: Node, domains: &Domains) -> Result<ScheduleEntry, SdfError> {
        self.attributes(node, &["domain", "duration"])?;
        let name = self.required(node, "domain")?;
        let text = self.required(node, "duration")?;
        let domain = domains.id(name).ok_or_else(|| {
            self.error(
                node,
                format!("the schedule names domain '{name}', which is not declared"),
            )
        })?;
        let (value, unit) = text.split_once(' ').ok_or_else(|| {
            self.error(
                node,
                format!("duration '{text}' must be a value and a unit, e.g. '1000 us'"),
            )
        })?;
        let value = self.number(node, "duration", value)?;
        if value == 0 {
            return Err(self.error(node, format!("duration '{text}' must not be zero")));
        }
        let duration = match unit {
            "us" => Duration::Microseconds(value),
            "ticks" => Duration::Ticks(value),
            _ => {
                return Err(self.error(
                    node,
                    format!("duration '{text}' must be in 'us' or 'ticks'"),
                ))
            }
        };
        Ok(ScheduleEntry { domain, duration })
    }
}
