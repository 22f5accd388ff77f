//! Marks a PD sets in the launcher's trace (`warden-host run --trace`): the start and end of
//! something it does (a request it serves, a callback it sent and its answer) and the flow that
//! ties them. On the host platform a mark is a frame to the launcher, which timestamps it on
//! arrival and draws it from these numbers alone — names come from [`Name`], never from the PD,
//! so a PD cannot write into the trace file; with tracing off, and on seL4 (where the device
//! manager keeps its own ring), a mark costs nothing.

/// Which end of a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// It starts.
    Begin,
    /// It ends.
    End,
}

/// What the span is: the device manager's requests and the callbacks it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Name {
    /// A request: a device added (the board's, or a bridge's child).
    AddDevice = 1,
    /// A request: a device removed.
    RemoveDevice = 2,
    /// A request: a driver registered.
    RegisterDriver = 3,
    /// A request: a driver unregistered.
    UnregisterDriver = 4,
    /// A request: bind.
    Bind = 5,
    /// A request: unbind.
    Unbind = 6,
    /// A request: probe a device.
    ProbeDevice = 7,
    /// A request: rescan.
    Rescan = 8,
    /// A request: suspend (a subtree or all).
    SuspendRequest = 9,
    /// A request: resume (a subtree or all).
    ResumeRequest = 10,
    /// A request: shut the system down.
    ShutdownRequest = 11,
    /// The end of a request (named as it began).
    Request = 12,
    /// A callback: probe.
    Probe = 32,
    /// A callback: remove.
    Remove = 33,
    /// A callback: suspend.
    Suspend = 34,
    /// A callback: resume.
    Resume = 35,
    /// A callback: shutdown.
    Shutdown = 36,
    /// The end of a callback (named as it began).
    Callback = 37,
}

impl Name {
    /// Every name.
    pub const ALL: [Self; 18] = [
        Self::AddDevice,
        Self::RemoveDevice,
        Self::RegisterDriver,
        Self::UnregisterDriver,
        Self::Bind,
        Self::Unbind,
        Self::ProbeDevice,
        Self::Rescan,
        Self::SuspendRequest,
        Self::ResumeRequest,
        Self::ShutdownRequest,
        Self::Request,
        Self::Probe,
        Self::Remove,
        Self::Suspend,
        Self::Resume,
        Self::Shutdown,
        Self::Callback,
    ];

    /// The name with this code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|name| *name as u8 == code)
    }

    /// How the trace names it.
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Self::AddDevice => "add device",
            Self::RemoveDevice => "remove device",
            Self::RegisterDriver => "register driver",
            Self::UnregisterDriver => "unregister driver",
            Self::Bind => "bind",
            Self::Unbind => "unbind",
            Self::ProbeDevice => "probe device",
            Self::Rescan => "rescan",
            Self::SuspendRequest => "suspend",
            Self::ResumeRequest => "resume",
            Self::ShutdownRequest => "shutdown",
            Self::Request => "request",
            Self::Probe => "probe",
            Self::Remove => "remove",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Shutdown => "shutdown",
            Self::Callback => "callback",
        }
    }

    /// A callback (drawn on the driver PD's track), not a request.
    #[must_use]
    pub fn is_callback(self) -> bool {
        self as u8 >= 32
    }
}

/// One mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Start or end.
    pub phase: Phase,
    /// What.
    pub name: Name,
    /// Which one: a request's number, a callback's sequence number (its end quotes it).
    pub id: u64,
    /// For a callback: the child (driver PD) it runs in; 0 for the marking PD itself.
    pub child: u8,
    /// The device concerned: its handle's index and generation.
    pub device: Option<[u32; 2]>,
    /// The driver concerned, likewise.
    pub driver: Option<[u32; 2]>,
    /// For a callback: the request it serves, which the trace draws as a flow.
    pub request: Option<u64>,
    /// At the end: the outcome's status code (0 is Ok).
    pub status: u16,
}

impl Mark {
    /// A mark of `name` `id`, with nothing else said.
    #[must_use]
    pub const fn new(phase: Phase, name: Name, id: u64) -> Self {
        Self {
            phase,
            name,
            id,
            child: 0,
            device: None,
            driver: None,
            request: None,
            status: 0,
        }
    }
}

/// Sets `mark` in the trace (if the launcher traces; nothing on seL4).
pub fn mark(mark: Mark) {
    #[cfg(not(target_os = "none"))]
    crate::host::trace_mark(mark);
    #[cfg(target_os = "none")]
    let _ = mark;
}
