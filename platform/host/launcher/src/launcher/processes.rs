//! The PD processes: starting one (its environment, its output read line by line and prefixed with
//! its name), stopping and restarting it, what it is sent, and what its exit status says.

use super::*;

pub(crate) struct Process {
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) incarnation: u32,
    pub(crate) connection: Option<UnixStream>,
    pub(crate) queued: VecDeque<ToPd>,
    /// `WARDEN_PD_MAPS` for the PD: `path,vaddr,size,perms,setvar;…`.
    pub(crate) maps: String,
    /// `WARDEN_PD_SETVARS`: `symbol=value;…`.
    pub(crate) setvars: String,
}

impl Launcher {
    /// Is `claim` the current incarnation of its PD, from that PD's own process? Anything else
    /// (an old incarnation, or another process claiming the PD's identity) is ignored.
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

    /// The PD's name as a JSON string (quoted and escaped) for the trace.
    pub(super) fn json_name(&self, pd: usize) -> String {
        let mut json = String::from("\"");
        for character in self.name(pd).chars() {
            match character {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                control if control.is_control() => {
                    json.push_str(&format!("\\u{:04x}", u32::from(control)));
                }
                other => json.push(other),
            }
        }
        json.push('"');
        json
    }

    pub(super) fn record(&mut self, line: &str) {
        if let Some(trace) = &mut self.trace {
            let _ = writeln!(trace, "{line}");
        }
    }

    pub(super) fn spawn(&mut self, pd: usize) -> Result<(), LaunchError> {
        let socket = self.socket.clone();
        let Some(process) = self.processes.get_mut(pd) else {
            return Ok(());
        };
        process.incarnation += 1;
        process.connection = None;
        let mut command = Command::new(&process.program);
        if let Some(board) = &self.board_dtb {
            command.env("WARDEN_BOARD_DTB", board);
        }
        command.env("WARDEN_SYSTEM_FILE", &self.system_file);
        let mut child = command
            .env("WARDEN_HOST_SOCKET", &socket)
            .env("WARDEN_PD_INDEX", pd.to_string())
            .env("WARDEN_PD_INCARNATION", process.incarnation.to_string())
            .env("WARDEN_PD_MAPS", &process.maps)
            .env("WARDEN_PD_SETVARS", &process.setvars)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                LaunchError::Io(format!("starting {}", process.program.display()), error)
            })?;
        for stream in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let name = process.name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    crate::output::say(&format!("[{name}] {line}"));
                }
            });
        }
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
    pub(super) fn send(&mut self, pd: usize, frame: ToPd) {
        let Some(process) = self.processes.get_mut(pd) else {
            return;
        };
        match &mut process.connection {
            Some(stream) => {
                if write_frame(stream, &frame.encode()).is_err() {
                    process.connection = None;
                }
            }
            None => process.queued.push_back(frame),
        }
    }

    /// The fault of a PD whose process is gone: recorded, and delivered to its parent.
    pub(super) fn faulted(&mut self, kernel: &mut Kernel, pd: usize, kind: FaultKind) {
        self.record(&format!(
            "{{\"event\":\"fault\",\"pd\":{},\"kind\":\"{kind:?}\",\"label\":{}}}",
            self.json_name(pd),
            kind as u64
        ));
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
