//! The PD processes: starting one (its environment, its output read line by line and prefixed with
//! its name), stopping and restarting it, what it is sent, and what its exit status says.

use super::*;

/// How long the launcher waits for a new start of a PD to take its channel handles.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes the launcher keeps for a PD that does not read what it is sent (thousands of frames);
/// more, and the PD is stopped as a fault.
pub(crate) const MAX_OUTBOX: usize = 64 * 1024;
/// Frames kept for a PD whose process has not connected yet.
const MAX_QUEUED: usize = 256;

pub(crate) struct Process {
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) incarnation: u32,
    pub(crate) connection: Option<UnixStream>,
    /// The number of the connection taken for this start ([`Claim::connection`]).
    pub(crate) connection_id: Option<u64>,
    pub(crate) queued: VecDeque<ToPd>,
    /// Bytes sent to the connection that its socket has not taken yet.
    pub(crate) outbox: Vec<u8>,
    /// `WARDEN_PD_MAPS` for the PD: `vaddr,size,perms,setvar;…`, map `n` backed by the
    /// descriptor of its `ToPd::Region(n)` frame.
    pub(crate) maps: String,
    /// `WARDEN_PD_SETVARS`: `symbol=value;…`.
    pub(crate) setvars: String,
}

impl Launcher {
    /// Is `claim` the current incarnation of its PD, from that PD's own process? Anything else
    /// (an old incarnation, or another process claiming the PD's identity) is ignored.
    pub(super) fn believes_frame(&self, claim: Claim) -> bool {
        self.believes(claim)
            && self
                .processes
                .get(claim.pd)
                .is_some_and(|process| process.connection_id == Some(claim.connection))
    }

    /// As [`Self::believes_frame`], for a new connection (not yet taken).
    pub(super) fn believes(&self, claim: Claim) -> bool {
        self.processes.get(claim.pd).is_some_and(|process| {
            process.incarnation == claim.incarnation
                && claim.peer.is_some()
                && process.child.as_ref().map(Child::id) == claim.peer
        })
    }

    pub(super) fn name(&self, pd: usize) -> &str {
        self.processes
            .get(pd)
            .map_or("?", |process| process.name.as_str())
    }

    /// Records what `pd` did in the trace, if there is one.
    pub(super) fn record(
        &mut self,
        pd: usize,
        event: &str,
        details: serde_json::Map<String, serde_json::Value>,
    ) {
        if let Some(trace) = &mut self.trace {
            if matches!(event, "fault" | "restart" | "stop") {
                trace.stopped(pd);
            }
            trace.event(pd, event, details);
        }
    }

    pub(super) fn spawn(&mut self, pd: usize) -> Result<(), LaunchError> {
        let socket = self.socket.clone();
        let Some(process) = self.processes.get_mut(pd) else {
            return Ok(());
        };
        process.incarnation += 1;
        process.connection = None;
        process.connection_id = None;
        let mut command = Command::new(&process.program);
        if let Some(board) = &self.board_dtb {
            command.env("WARDEN_BOARD_DTB", board);
        }
        command.env("WARDEN_SYSTEM_FILE", &self.system_file);
        if self.tracing {
            command.env("WARDEN_TRACE", "1");
        }
        // One pipe for the PD's standard output and error, so that its lines (a log record, then
        // the panic that follows it) reach the launcher in the order the PD wrote them.
        let (output, output_writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|error| LaunchError::Io("creating a PD's output pipe".into(), error.into()))?;
        let error_writer = output_writer
            .try_clone()
            .map_err(|error| LaunchError::Io("creating a PD's output pipe".into(), error))?;
        let child = command
            .env("WARDEN_HOST_SOCKET", &socket)
            .env("WARDEN_PD_INDEX", pd.to_string())
            .env("WARDEN_PD_INCARNATION", process.incarnation.to_string())
            .env("WARDEN_PD_MAPS", &process.maps)
            .env("WARDEN_PD_SETVARS", &process.setvars)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output_writer))
            .stderr(Stdio::from(error_writer))
            .spawn()
            .map_err(|error| {
                LaunchError::Io(format!("starting {}", process.program.display()), error)
            })?;
        // The command holds the pipe's write ends: dropped, the reader sees the end when the PD
        // ends.
        drop(command);
        let name = process.name.clone();
        let output = std::fs::File::from(output);
        std::thread::spawn(move || {
            // Bytes, not text: a line that is not UTF-8 is printed with replacement characters
            // (a reader that stopped at it would leave the PD blocked on a full pipe).
            let mut reader = BufReader::new(output);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(count) if count > 0) {
                let text = String::from_utf8_lossy(&line);
                crate::output::say(&format!("[{name}] {}", text.trim_end_matches(['\n', '\r'])));
                line.clear();
            }
        });
        process.child = Some(child);
        Ok(())
    }

    pub(super) fn kill(&mut self, pd: usize) {
        if let Some(process) = self.processes.get_mut(pd) {
            if let Some(mut child) = process.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            process.connection = None;
            process.queued.clear();
            process.outbox.clear();
        }
    }

    pub(super) fn shut_down(&mut self) {
        for pd in 0..self.processes.len() {
            self.kill(pd);
        }
    }
}

/// However the run ends (a panic included), no PD process outlives it.
impl Drop for Launcher {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Launcher {
    /// Sends a frame to the PD, or queues it until its process connects. Sending never blocks
    /// the launcher: what the PD's socket does not take now waits in the PD's outbox, and a PD
    /// that lets [`MAX_OUTBOX`] bytes pile up there (it does not read its socket) is stopped as
    /// a fault.
    pub(super) fn send(&mut self, pd: usize, frame: ToPd) {
        let Some(process) = self.processes.get_mut(pd) else {
            return;
        };
        if process.connection.is_none() {
            // Interrupts and faults are not kept: the kernel signals them again from its state
            // when the process connects (`Kernel::connected`). The rest (injections,
            // cancellations) waits; at most a few do, and the bound is a backstop.
            let rebuilt = matches!(frame, ToPd::Irq(_) | ToPd::Fault(..));
            if !rebuilt && process.queued.len() < MAX_QUEUED {
                process.queued.push_back(frame);
            }
            return;
        }
        process.outbox.extend_from_slice(&framed(&frame.encode()));
        self.flush(pd);
    }

    /// Writes what the PD's socket takes of its outbox, without waiting.
    pub(super) fn flush(&mut self, pd: usize) {
        let Some(process) = self.processes.get_mut(pd) else {
            return;
        };
        let Some(stream) = &process.connection else {
            return;
        };
        while !process.outbox.is_empty() {
            match rustix::net::send(
                stream,
                &process.outbox,
                rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(written) => {
                    process.outbox.drain(..written.min(process.outbox.len()));
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    // The process is gone; the reaper sees it.
                    process.connection = None;
                    process.outbox.clear();
                    return;
                }
            }
        }
        if process.outbox.len() > MAX_OUTBOX {
            process.outbox.clear();
            process.connection = None;
            self.abusive.push((
                pd,
                format!("left {MAX_OUTBOX} bytes the kernel sent it unread"),
            ));
        }
    }

    /// Writes every PD's outbox as far as its socket takes it.
    pub(super) fn flush_all(&mut self) {
        for pd in 0..self.processes.len() {
            if self
                .processes
                .get(pd)
                .is_some_and(|process| !process.outbox.is_empty())
            {
                self.flush(pd);
            }
        }
    }

    /// A start of `pd` connected: it gets its channel handles, `init`, what waited for it, and
    /// what the kernel must tell it again.
    pub(super) fn connect(&mut self, kernel: &mut Kernel, claim: Claim, stream: UnixStream) {
        let pd = claim.pd;
        if self
            .processes
            .get(pd)
            .is_some_and(|process| process.connection_id.is_some())
        {
            // One connection a start: a second would be handed the handles again and take the
            // answers meant for the first. Shut down, so its thread ends at once.
            crate::output::say(&format!(
                "warden-host: refused a second connection from '{}'",
                self.name(pd)
            ));
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        // The socket is empty and the handles are small frames (one per map and per channel
        // handle): the timeout only keeps
        // a PD that never reads from holding the launcher.
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        if let Err(error) = self.handles.hand_over(pd, &stream) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            self.abusive.push((
                pd,
                format!("could not be handed its regions and channels ({error})"),
            ));
            return;
        }
        let Some(process) = self.processes.get_mut(pd) else {
            return;
        };
        let queued: Vec<ToPd> = process.queued.drain(..).collect();
        process.connection = Some(stream);
        process.connection_id = Some(claim.connection);
        process.outbox.clear();
        for frame in queued {
            self.send(pd, frame);
        }
        let again = kernel.connected(pd);
        self.perform(kernel, again);
    }

    /// Stops every PD found breaking the kernel socket's rules, as a fault with the reason.
    pub(super) fn stop_abusive(&mut self, kernel: &mut Kernel) {
        for (pd, reason) in std::mem::take(&mut self.abusive) {
            let running = self
                .processes
                .get(pd)
                .is_some_and(|process| process.child.is_some());
            if !running {
                continue;
            }
            eprintln!(
                "warden-host: '{}' {reason}: stopped as a fault (Cap)",
                self.name(pd)
            );
            self.kill(pd);
            self.faulted(kernel, pd, FaultKind::Cap);
        }
    }

    /// The fault of a PD whose process is gone: recorded, and delivered to its parent.
    pub(super) fn faulted(&mut self, kernel: &mut Kernel, pd: usize, kind: FaultKind) {
        let mut details = serde_json::Map::new();
        details.insert("kind".into(), format!("{kind:?}").into());
        details.insert("label".into(), (kind as u64).into());
        self.record(pd, "fault", details);
        let actions = kernel.fault(pd, kind);
        self.perform(kernel, actions);
    }

    /// Looks for PD processes that ended by themselves: each is a fault.
    pub(super) fn reap(&mut self, kernel: &mut Kernel) {
        for pd in 0..self.processes.len() {
            let exited = self
                .processes
                .get_mut(pd)
                .and_then(|process| process.child.as_mut())
                .and_then(|child| child.try_wait().ok().flatten());
            let Some(status) = exited else { continue };
            if let Some(process) = self.processes.get_mut(pd) {
                process.child = None;
                process.connection = None;
            }
            let kind = match status.signal() {
                Some(11 | 7) => FaultKind::VmFault,
                Some(_) => FaultKind::UserException,
                None if status.code() == Some(101) => FaultKind::UserException,
                None => FaultKind::UnknownSyscall,
            };
            let name = self.name(pd).to_string();
            eprintln!("warden-host: '{name}' faulted: {status} ({kind:?})");
            self.faulted(kernel, pd, kind);
        }
    }
}

/// Marks every descriptor the launcher inherited (beyond standard input, output and error)
/// close-on-exec, so that no PD inherits what the launcher's own parent left open (a build
/// tool's jobserver pipe, say): a PD holds its standard streams, its socket and its channel
/// handles, and nothing else. Called first thing in `run`, before any thread starts.
#[allow(
    unsafe_code,
    reason = "a descriptor known only by its number is borrowed to set its close-on-exec flag"
)]
pub(super) fn keep_inherited_descriptors_from_pds() {
    let numbers: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in numbers {
        // The listing's own descriptor is closed by now: only numbers still open are touched.
        if std::fs::read_link(format!("/proc/self/fd/{fd}")).is_err() {
            continue;
        }
        // SAFETY: `fd` is open in this process (just checked, with no other thread running that
        // could close it), and it is borrowed only for two fcntl calls, which read and set its
        // flags and cannot close it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(borrowed) {
            let _ = rustix::io::fcntl_setfd(borrowed, flags | rustix::io::FdFlags::CLOEXEC);
        }
    }
}
