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

/// The span names: one table gives the enum, its list and each name's text.
macro_rules! names {
    ($( $(#[$doc:meta])* $Variant:ident = $code:literal, $text:literal; )*) => {
        /// What the span is: the device manager's requests and the callbacks it sends.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Name {
            $( $(#[$doc])* $Variant = $code, )*
        }

        impl Name {
            /// Every name.
            pub const ALL: &[Self] = &[$( Self::$Variant, )*];

            /// How the trace names it.
            #[must_use]
            pub fn text(self) -> &'static str {
                match self {
                    $( Self::$Variant => $text, )*
                }
            }
        }
    };
}

names! {
    /// A request: a device added (the board's, or a bridge's child).
    AddDevice = 1, "add device";
    /// A request: a device removed.
    RemoveDevice = 2, "remove device";
    /// A request: a driver registered.
    RegisterDriver = 3, "register driver";
    /// A request: a driver unregistered.
    UnregisterDriver = 4, "unregister driver";
    /// A request: bind.
    Bind = 5, "bind";
    /// A request: unbind.
    Unbind = 6, "unbind";
    /// A request: probe a device.
    ProbeDevice = 7, "probe device";
    /// A request: rescan.
    Rescan = 8, "rescan";
    /// A request: suspend (a subtree or all).
    SuspendRequest = 9, "suspend";
    /// A request: resume (a subtree or all).
    ResumeRequest = 10, "resume";
    /// A request: shut the system down.
    ShutdownRequest = 11, "shutdown";
    /// The end of a request (named as it began).
    Request = 12, "request";
    /// A callback: probe.
    Probe = 32, "probe";
    /// A callback: remove.
    Remove = 33, "remove";
    /// A callback: suspend.
    Suspend = 34, "suspend";
    /// A callback: resume.
    Resume = 35, "resume";
    /// A callback: shutdown.
    Shutdown = 36, "shutdown";
    /// The end of a callback (named as it began).
    Callback = 37, "callback";
}

impl Name {
    /// The name with this code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|name| *name as u8 == code)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_by_its_code_and_has_a_text() {
        for &name in Name::ALL {
            assert_eq!(Name::from_code(name as u8), Some(name));
            assert!(!name.text().is_empty());
            assert_eq!(name.is_callback(), name as u8 >= Name::Probe as u8);
        }
        assert_eq!(Name::ALL.len(), 18);
        assert_eq!(Name::from_code(0), None);
        assert_eq!(Name::from_code(13), None);
    }
}
