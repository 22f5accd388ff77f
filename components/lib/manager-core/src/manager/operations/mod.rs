//! The operations: each request (or piece of internal work) is one task, stepped by the daemon;
//! each task's stages are beside its step function, one module per operation.

use crate::manager::*;

mod add;
mod attach;
mod power;
mod probe;
mod register;
mod rescan;
mod teardown;
mod unregister;

pub(crate) use attach::*;
pub(crate) use power::*;
pub(crate) use probe::*;
pub(crate) use teardown::*;
pub(crate) use unregister::*;

#[allow(
    clippy::large_enum_variant,
    reason = "tasks live in the operation table, one per slot; boxing would need an allocator"
)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Task {
    /// Placeholder while the task is being stepped.
    Running,
    /// The device's data is in the store from the moment it is accepted.
    Add {
        parent: Option<DeviceId>,
        bus: BusId,
        data: DeviceData,
    },
    Probe(ProbeTask),
    Attach(AttachTask),
    Teardown(TeardownTask),
    Unregister(UnregisterTask),
    Power(PowerTask),
    Rescan,
}

#[allow(
    clippy::large_enum_variant,
    reason = "a Step lives for one call on the stack; boxing would need an allocator"
)]
pub(crate) enum Step {
    Blocked,
    Become(Task),
    Done(Result<Outcome, Error>),
}
