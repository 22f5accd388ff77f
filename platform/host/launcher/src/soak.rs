//! `warden-host soak`: the fault-injection soak, the MINIX 3 experiment at Warden's scale.
//!
//! It runs a system (`warden-host run`, a child process) with the soak client in the client
//! PD's place (`--program client=soak_client`: blocks written and read back without pause, see
//! `warden_demo_client::soak`), and injects faults through the run's control socket into the
//! device manager's driver PDs, one at a time: `kill` (SIGKILL), `hang` (in a callback: the
//! driver unbinds and binds its first device and hangs in that probe), `panic` (in that probe),
//! `corrupt` (a slot of 0x1000 bytes on its ring to the manager, then a well-formed message)
//! and `flood` (10,000 notifications of the manager). Which PD and which fault are drawn at
//! random (`--seed`); a PD is chosen only once it has been healthy for [`HEALTHY_GAP`] (its
//! supervisor's record is clear by then: the soak measures recovery, not the restart policy's
//! quarantine, which its own tests cover).
//!
//! Everything it knows it reads from the run's log, as an operator would: the manager's lines
//! (bindings, faults, restarts, skipped slots) and the client's progress lines. A fault is
//! **recovered** when
//! 1. the manager has dealt with it — restarted the PD (kill, hang, panic) or skipped the bad
//!    slot (corrupt); a flood needs nothing;
//! 2. every device is bound again to a driver of the name it had before the first fault (the
//!    tree is whole: the bridge's children re-added and bound too);
//! 3. the client has verified a block after that (the data path works).
//!
//! The time from injection to (3) is the fault's recovery time. A fault not recovered within
//! `--recovery-timeout` ends the soak. The last line is exactly
//! `soak: F faults injected (K kills, H hangs, P panics, C corruptions, N floods), R recovered,
//! L requests lost, M data mismatches, recovery p50 X ms p99 Y ms` (L and M from the client's
//! last progress line), and the exit status is 0 only when R = F, L = 0 and M = 0.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::sdf;

/// A driver PD is given a fault only after this long without one (and recovered): longer
/// than the supervisor's `healthy_after`, so each fault is a first failure.
pub const HEALTHY_GAP: Duration = Duration::from_millis(1500);
/// How many rounds may find the drawn PD not running (the manager restarting it on its own)
/// before the soak gives up on the system settling.
pub const MAX_UNPROMPTED: usize = 20;

/// The faults, in the order of the last line.
const FAULTS: [&str; 5] = ["kill", "hang", "panic", "corrupt", "flood"];

/// Options of a soak.
#[derive(Clone, Debug)]
pub struct Options {
    /// The system description (QEMU virt's system.xml).
    pub file: PathBuf,
    /// The board's device tree blob.
    pub board: PathBuf,
    /// `--virtio` specs passed to the run (the disk the client soaks first).
    pub virtio: Vec<String>,
    /// Faults to inject.
    pub faults: usize,
    /// The random draw's seed.
    pub seed: u64,
    /// A fault not recovered within this long ends the soak.
    pub recovery_timeout: Duration,
    /// The PD whose children are the driver PDs.
    pub manager: String,
    /// The PD the soak client runs in.
    pub client: String,
    /// Copy every line of the run here.
    pub log: Option<PathBuf>,
    /// Print a line per fault.
    pub verbose: bool,
    /// Only these driver PDs (by name; empty: all).
    pub only_pds: Vec<String>,
    /// Only these faults (empty: all five).
    pub only_faults: Vec<String>,
}

/// What a soak found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Faults injected, of each kind ([`FAULTS`] order).
    pub injected: [usize; 5],
    /// Faults recovered.
    pub recovered: usize,
    /// Requests the client lost.
    pub lost: u64,
    /// Blocks the client read back different.
    pub mismatches: u64,
    /// Blocks the client verified.
    pub verified: u64,
    /// Recovery times, in injection order.
    pub recoveries: Vec<Duration>,
    /// Why the soak stopped early, if it did.
    pub stopped: Option<String>,
    /// The run's last lines, when it stopped early.
    pub recent: Vec<String>,
    /// Rounds in which the PD drawn was not running, because the manager was restarting it on
    /// its own (not a fault the soak injected; a deadline missed on a loaded machine, say):
    /// the soak waited for the tree to be whole again and drew again.
    pub unprompted: usize,
}

impl Outcome {
    /// All faults injected.
    #[must_use]
    pub fn faults(&self) -> usize {
        self.injected.iter().sum()
    }

    /// Did the system survive as it must (every fault recovered, nothing lost or corrupted)?
    #[must_use]
    pub fn passed(&self) -> bool {
        self.stopped.is_none()
            && self.recovered == self.faults()
            && self.lost == 0
            && self.mismatches == 0
    }

    /// The recovery time at percentile `percent` (nearest rank), in milliseconds.
    #[must_use]
    pub fn percentile_ms(&self, percent: usize) -> u128 {
        let mut times = self.recoveries.clone();
        times.sort();
        if times.is_empty() {
            return 0;
        }
        let rank = (percent * times.len()).div_ceil(100).max(1);
        times.get(rank - 1).map_or(0, Duration::as_millis)
    }

    /// The soak's last line.
    #[must_use]
    pub fn summary(&self) -> String {
        let [kills, hangs, panics, corruptions, floods] = self.injected;
        format!(
            "soak: {} faults injected ({kills} kills, {hangs} hangs, {panics} panics, {corruptions} corruptions, {floods} floods), {} recovered, {} requests lost, {} data mismatches, recovery p50 {} ms p99 {} ms",
            self.faults(),
            self.recovered,
            self.lost,
            self.mismatches,
            self.percentile_ms(50),
            self.percentile_ms(99)
        )
    }
}

/// The client's counters, from its progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    verified: u64,
    mismatches: u64,
    lost: u64,
}

/// What the log has told so far.
#[derive(Debug, Default)]
struct Seen {
    /// Device index → the name of the driver it is bound to. By index, not by handle: a
    /// device's entry is reused only after it was removed, and the log may give the new
    /// handle's binding without a line for the old one's removal.
    bound: BTreeMap<String, String>,
    /// The manager finished its bring-up.
    bring_up: bool,
    progress: Option<Progress>,
    /// Per driver PD id: restarts and skipped slots seen, in order.
    restarts: BTreeMap<u32, usize>,
    skipped: BTreeMap<u32, usize>,
    quarantined: Vec<u32>,
    /// The manager's lines so far (a clock for the maps below).
    lines: u64,
    /// Per driver PD: the names of its drivers.
    drivers_of: BTreeMap<u32, Vec<String>>,
    /// Per device index: the line that last bound it, or removed it.
    changed_at: BTreeMap<String, u64>,
}

impl Seen {
    fn bound_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for driver in self.bound.values() {
            *counts.entry(driver.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Takes in one line of the run.
    fn line(&mut self, line: &str) {
        // `[pd] LEVEL: text` (warnings and errors name their level; information does not).
        let Some((_, text)) = line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
        else {
            return;
        };
        let text = ["WARN: ", "ERROR: ", "INFO: ", "DEBUG: "]
            .iter()
            .find_map(|level| text.strip_prefix(level))
            .unwrap_or(text);
        if let Some(text) = text.strip_prefix("manager: ") {
            self.manager(text);
        } else if let Some(text) = text.strip_prefix("soak-client: ") {
            if let Some(progress) = parse_progress(text) {
                self.progress = Some(progress);
            }
        }
    }

    /// The devices bound now to a driver of `pd`'s.
    fn bound_to(&self, pd: u32) -> Vec<String> {
        let names = self.drivers_of.get(&pd).cloned().unwrap_or_default();
        self.bound
            .iter()
            .filter(|(_, name)| names.contains(name))
            .map(|(index, _)| index.clone())
            .collect()
    }

    /// Has each of `devices` been bound again (or removed) since line `line`?
    fn rebound_since(&self, line: u64, devices: &[String]) -> bool {
        devices
            .iter()
            .all(|index| self.changed_at.get(index).is_some_and(|&at| at > line))
    }

    fn manager(&mut self, text: &str) {
        self.lines += 1;
        if text.starts_with("bring-up done") {
            self.bring_up = true;
        } else if let Some(rest) = text.strip_prefix("device ") {
            let handle = rest.split(' ').next().unwrap_or_default();
            let id = handle.split(':').next().unwrap_or_default().to_string();
            if let Some(name) = rest
                .split_once(") bound to driver '")
                .and_then(|(_, name)| name.strip_suffix('\''))
            {
                self.changed_at.insert(id.clone(), self.lines);
                self.bound.insert(id, name.to_string());
            } else if rest.ends_with(") removed") {
                self.changed_at.insert(id.clone(), self.lines);
                self.bound.remove(&id);
            } else if rest.contains(") unbound from '") {
                self.bound.remove(&id);
            }
        } else if let Some(rest) = text.strip_prefix("restarting driver PD ") {
            if let Some(pd) = leading_number(rest) {
                *self.restarts.entry(pd).or_insert(0) += 1;
            }
        } else if let Some(rest) = text.strip_prefix("driver PD ") {
            let Some(pd) = leading_number(rest) else {
                return;
            };
            // A skipped slot is a peer-caused line: rate-limited, it may come as part of the
            // summary ("… N more like this") instead.
            if let Some(name) = rest
                .split_once(" registers '")
                .and_then(|(_, name)| name.split_once('\''))
                .map(|(name, _)| name.to_string())
            {
                let names = self.drivers_of.entry(pd).or_default();
                if !names.contains(&name) {
                    names.push(name);
                }
            } else if rest.contains(" wrote a slot of ") || rest.contains(" more like this") {
                *self.skipped.entry(pd).or_insert(0) += 1;
            } else if rest.contains("quarantined") {
                self.quarantined.push(pd);
            }
        }
    }
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `V verified, M mismatches, L lost, …` of a progress line.
fn parse_progress(text: &str) -> Option<Progress> {
    let mut progress = Progress::default();
    let mut found = 0;
    for part in text.split(", ") {
        let (number, what) = part.split_once(' ')?;
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match what {
            "verified" => progress.verified = number,
            "mismatches" => progress.mismatches = number,
            "lost" => progress.lost = number,
            _ => continue,
        }
        found += 1;
    }
    (found == 3).then_some(progress)
}

/// A small deterministic generator (xorshift64*): the draw is reproducible from `--seed`.
struct Draw(u64);

impl Draw {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (value % bound as u64) as usize
    }
}

/// The running system: its process, its lines, and what they said.
struct Run {
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Seen,
    log: Option<std::fs::File>,
    recent: VecDeque<String>,
    control: PathBuf,
    work: PathBuf,
}

impl Run {
    /// Takes in the lines that arrive until `deadline`, or until `done` holds; `Err` when the
    /// run ended.
    fn until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Seen, Instant) -> bool,
    ) -> Result<bool, String> {
        loop {
            if done(&self.seen, Instant::now()) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            match self.lines.recv_timeout(deadline - now) {
                Ok((at, line)) => {
                    self.take(&line);
                    if done(&self.seen, at) {
                        return Ok(true);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(false),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|status| status.to_string());
                    return Err(format!(
                        "the system stopped ({})",
                        status.unwrap_or_else(|error| error.to_string())
                    ));
                }
            }
        }
    }

    fn take(&mut self, line: &str) {
        if let Some(log) = self.log.as_mut() {
            let _ = writeln!(log, "{line}");
        }
        if self.recent.len() == 200 {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_string());
        self.seen.line(line);
    }

    fn inject(&self, fault: &str, pd: &str) -> Result<(), String> {
        let answer = crate::launcher::control(&self.control, &format!("inject {fault} {pd}"))
            .map_err(|error| format!("the control socket: {error}"))?;
        if answer.starts_with("ok") {
            Ok(())
        } else {
            Err(format!("inject {fault} {pd}: {answer}"))
        }
    }

    fn stop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            // Keep reading: a full pipe would block its shutdown.
            while let Ok((_, line)) = self.lines.try_recv() {
                self.take(&line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn forward(stream: impl Read + Send + 'static, lines: std::sync::mpsc::Sender<(Instant, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if lines.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
}

/// The driver PDs of `manager` in `file`: (id, name).
fn driver_pds(file: &Path, manager: &str) -> Result<Vec<(u32, String)>, String> {
    let system = sdf::parse_file(file).map_err(|error| error.to_string())?;
    let manager_index = system
        .protection_domains
        .iter()
        .position(|pd| pd.name == manager)
        .ok_or_else(|| format!("{}: no protection domain '{manager}'", file.display()))?;
    let drivers: Vec<(u32, String)> = system
        .protection_domains
        .iter()
        .filter_map(|pd| match pd.parent {
            Some((parent, id)) if parent == manager_index => {
                Some((u32::try_from(id).ok()?, pd.name.clone()))
            }
            _ => None,
        })
        .collect();
    if drivers.is_empty() {
        return Err(format!(
            "'{manager}' has no child PDs to inject faults into"
        ));
    }
    Ok(drivers)
}

/// Runs a soak; `Err` when it could not start.
///
/// # Errors
/// The system description cannot be read, the run does not start or never brings up its
/// devices and the client's data path.
pub fn soak(options: &Options) -> Result<Outcome, String> {
    let drivers = driver_pds(&options.file, &options.manager)?;
    let work = std::env::temp_dir().join(format!("warden-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|error| format!("{}: {error}", work.display()))?;
    let control = work.join("control.sock");
    let exe = std::env::current_exe().map_err(|error| format!("locating warden-host: {error}"))?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(&options.file)
        .arg("--board")
        .arg(&options.board)
        .arg("--control")
        .arg(&control)
        .arg("--program")
        .arg(format!("{}=soak_client", options.client));
    for spec in &options.virtio {
        command.arg("--virtio").arg(spec);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("starting warden-host run: {error}"))?;
    let (sender, lines) = channel();
    if let Some(stdout) = child.stdout.take() {
        forward(stdout, sender.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        forward(stderr, sender);
    }
    let log = match &options.log {
        Some(path) => Some(
            std::fs::File::create(path).map_err(|error| format!("{}: {error}", path.display()))?,
        ),
        None => None,
    };
    let mut run = Run {
        child,
        lines,
        seen: Seen::default(),
        log,
        recent: VecDeque::new(),
        control,
        work,
    };
    let outcome = soak_run(&mut run, options, &drivers);
    run.stop();
    if let Err(error) = &outcome {
        let recent: Vec<&str> = run.recent.iter().map(String::as_str).collect();
        // The reason again after the lines, so that a log cut to its tail still shows it.
        return Err(format!(
            "{error}\n--- the run's last lines:\n{}\n--- the soak stopped: {error}",
            recent.join("\n")
        ));
    }
    outcome.map(|mut outcome| {
        if outcome.stopped.is_some() {
            outcome.recent = run.recent.iter().cloned().collect();
        }
        outcome
    })
}

fn soak_run(
    run: &mut Run,
    options: &Options,
    drivers: &[(u32, String)],
) -> Result<Outcome, String> {
    let drivers: Vec<(u32, String)> = drivers
        .iter()
        .filter(|(_, name)| options.only_pds.is_empty() || options.only_pds.contains(name))
        .cloned()
        .collect();
    if drivers.is_empty() {
        return Err(format!("no driver PD named {:?}", options.only_pds));
    }
    if let Some(unknown) = options
        .only_faults
        .iter()
        .find(|only| !FAULTS.contains(&only.as_str()))
    {
        return Err(format!(
            "'{unknown}' is not a fault: use kill, hang, panic, corrupt or flood"
        ));
    }
    let kinds: Vec<usize> = (0..FAULTS.len())
        .filter(|&kind| {
            FAULTS.get(kind).is_some_and(|fault| {
                options.only_faults.is_empty()
                    || options.only_faults.iter().any(|only| only == fault)
            })
        })
        .collect();
    // Bring-up: the tree loaded and bound, the client's data path verifying.
    let ready = run.until(Instant::now() + Duration::from_secs(30), |seen, _| {
        seen.bring_up && seen.progress.is_some_and(|progress| progress.verified > 0)
    })?;
    if !ready {
        return Err(
            "the system did not bring up its devices and the client's data path within 30 s".into(),
        );
    }
    // Settled: no binding changes for half a second.
    let mut baseline = run.seen.bound_counts();
    loop {
        run.until(Instant::now() + Duration::from_millis(500), |_, _| false)?;
        let now = run.seen.bound_counts();
        if now == baseline {
            break;
        }
        baseline = now;
    }
    let total: usize = baseline.values().sum();
    crate::output::say(&format!(
        "soak: baseline: {total} devices bound ({}); {} driver PDs ({}); seed {}",
        baseline
            .iter()
            .map(|(name, count)| format!("{count} {name}"))
            .collect::<Vec<_>>()
            .join(", "),
        drivers.len(),
        drivers
            .iter()
            .map(|(id, name)| format!("{name} = PD {id}"))
            .collect::<Vec<_>>()
            .join(", "),
        options.seed
    ));
    let mut draw = Draw(options.seed | 1);
    let mut outcome = Outcome::default();
    let start = Instant::now();
    // Each driver PD with the time it was last whole (recovered, or started).
    let mut targets: Vec<(u32, &str, Instant)> = drivers
        .iter()
        .map(|(pd, name)| (*pd, name.as_str(), start))
        .collect();
    let mut number = 0;
    while number < options.faults {
        number += 1;
        if crate::output::closed() {
            return Err("standard output closed: soak stopped".into());
        }
        // A PD that has been healthy long enough.
        let soonest = targets.iter().map(|target| target.2).min().unwrap_or(start) + HEALTHY_GAP;
        run.until(soonest, |_, _| false)?;
        let eligible: Vec<usize> = (0..targets.len())
            .filter(|&index| {
                targets
                    .get(index)
                    .is_some_and(|target| target.2.elapsed() >= HEALTHY_GAP)
            })
            .collect();
        let Some(target) = eligible
            .get(draw.below(eligible.len().max(1)))
            .and_then(|&index| targets.get_mut(index))
        else {
            continue;
        };
        let Some(&kind) = kinds.get(draw.below(kinds.len().max(1))) else {
            continue;
        };
        let (Some(fault), Some(count)) =
            (FAULTS.get(kind).copied(), outcome.injected.get_mut(kind))
        else {
            continue;
        };
        let (pd, name) = (target.0, target.1);
        // A PD whose process is gone (the manager restarting it on its own) is not a target this
        // round: the soak waits for the tree to be whole again, counts the restart as one the
        // manager made unprompted, and draws again, so that the manager's own restart is never
        // taken for the recovery of an injected fault.
        let restarts = run.seen.restarts.get(&pd).copied().unwrap_or(0);
        let skipped = run.seen.skipped.get(&pd).copied().unwrap_or(0);
        let injected_at = Instant::now();
        match run.inject(fault, name) {
            Ok(()) => {}
            Err(error) if error.ends_with("is not running") => {
                outcome.unprompted += 1;
                if outcome.unprompted > MAX_UNPROMPTED {
                    return Err(format!(
                        "{error}: the manager restarted driver PDs on its own {} times; the system is not settling",
                        outcome.unprompted
                    ));
                }
                let whole = run.until(injected_at + options.recovery_timeout, |seen, _| {
                    seen.bound_counts() == baseline
                })?;
                if !whole {
                    return Err(format!(
                        "{error}, and the tree was not whole again within {} ms (quarantined: {:?}); bound now {:?}, before {:?}",
                        options.recovery_timeout.as_millis(),
                        run.seen.quarantined,
                        run.seen.bound_counts(),
                        baseline
                    ));
                }
                target.2 = Instant::now();
                number -= 1;
                continue;
            }
            Err(error) => return Err(error),
        }
        *count += 1;
        // 1: the manager dealt with it.
        // The devices the PD's drivers had: after a kill, hang or panic each is bound again
        // (or removed) since the injection, so a tree that only counts as whole midway through
        // the teardown is not taken for recovered.
        let had = run.seen.bound_to(pd);
        let injected_line = run.seen.lines;
        let handled = |seen: &Seen| match fault {
            "kill" | "hang" | "panic" => {
                seen.restarts.get(&pd).copied().unwrap_or(0) > restarts
                    && seen.rebound_since(injected_line, &had)
            }
            "corrupt" => seen.skipped.get(&pd).copied().unwrap_or(0) > skipped,
            _ => true,
        };
        // 2 and 3: the tree whole again, then a block verified.
        let mut whole_at: Option<u64> = None;
        let mut recovered_at = None;
        let deadline = injected_at + options.recovery_timeout;
        let done = run.until(deadline, |seen, at| {
            if !handled(seen) {
                return false;
            }
            let verified = seen.progress.map_or(0, |progress| progress.verified);
            match whole_at {
                None => {
                    if seen.bound_counts() == baseline {
                        whole_at = Some(verified);
                    }
                    false
                }
                Some(before) if verified > before => {
                    recovered_at = Some(at);
                    true
                }
                Some(_) => {
                    if seen.bound_counts() != baseline {
                        whole_at = None;
                    }
                    false
                }
            }
        })?;
        if let Some(progress) = run.seen.progress {
            outcome.lost = progress.lost;
            outcome.mismatches = progress.mismatches;
            outcome.verified = progress.verified;
        }
        match (done, recovered_at) {
            (true, Some(at)) => {
                let took = at.saturating_duration_since(injected_at);
                outcome.recovered += 1;
                outcome.recoveries.push(took);
                target.2 = Instant::now();
                if options.verbose {
                    crate::output::say(&format!(
                        "soak: fault {number}: {fault} into {name} (PD {pd}) recovered in {} ms",
                        took.as_millis()
                    ));
                }
            }
            _ => {
                let quarantined = run.seen.quarantined.contains(&pd);
                outcome.stopped = Some(format!(
                    "fault {number} ({fault} into {name}, PD {pd}) not recovered within {} ms: {}; bound now {:?}, before {:?}",
                    options.recovery_timeout.as_millis(),
                    if quarantined {
                        "the PD was quarantined"
                    } else if !handled(&run.seen) {
                        "the manager never dealt with it"
                    } else {
                        "the tree or the data path did not come back"
                    },
                    run.seen.bound_counts(),
                    baseline
                ));
                break;
            }
        }
        if number % 50 == 0 && number < options.faults {
            crate::output::say(&format!(
                "soak: {number} faults so far, {} recovered, {} blocks verified, {} s",
                outcome.recovered,
                outcome.verified,
                start.elapsed().as_secs()
            ));
        }
    }
    // The client's counters once a request the last faults left unanswered would have been
    // counted lost (the client's LOST_AFTER is 5 s).
    run.until(Instant::now() + Duration::from_secs(6), |_, _| false)?;
    if let Some(progress) = run.seen.progress {
        outcome.lost = progress.lost;
        outcome.mismatches = progress.mismatches;
        outcome.verified = progress.verified;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_read_as_an_operator_reads_it() {
        let mut seen = Seen::default();
        for line in [
            "[device_manager] manager: driver PD 4 registers 'virtio-blk' on the virtio bus: driver 2:0",
            "[device_manager] manager: device 47:0 (virtio,device2) bound to driver 'virtio-blk'",
            "[device_manager] manager: device 34:0 (virtio,mmio) bound to driver 'virtio-mmio'",
            "[device_manager] manager: bring-up done; device tree (48 devices, 36 bound):",
            "[client] soak-client: 12 verified, 0 mismatches, 1 lost, 3 resubmitted, 0 errors, oldest outstanding 4 ms",
            "[device_manager] WARN: manager: driver PD 4 wrote a slot of 4096 bytes; skipped (1 so far)",
            "[device_manager] manager: restarting driver PD 3 (failure 2 in a row)",
            "[device_manager] manager: device 47:0 (virtio,device2) unbound from 'virtio-blk'",
        ] {
            seen.line(line);
        }
        assert!(seen.bring_up);
        assert_eq!(
            seen.progress,
            Some(Progress {
                verified: 12,
                mismatches: 0,
                lost: 1
            })
        );
        assert_eq!(seen.skipped.get(&4), Some(&1));
        assert_eq!(
            seen.drivers_of.get(&4),
            Some(&vec!["virtio-blk".to_string()])
        );
        assert!(seen.bound_to(4).is_empty(), "47 was unbound last");
        let before = seen.lines;
        assert!(!seen.rebound_since(before, &["47".to_string()]));
        seen.line(
            "[device_manager] manager: device 47:1 (virtio,device2) bound to driver 'virtio-blk'",
        );
        assert_eq!(seen.bound_to(4), vec!["47".to_string()]);
        assert!(seen.rebound_since(before, &["47".to_string()]));
        seen.line(
            "[device_manager] manager: device 47:1 (virtio,device2) unbound from 'virtio-blk'",
        );
        assert_eq!(seen.restarts.get(&3), Some(&1));
        assert_eq!(
            seen.bound_counts(),
            BTreeMap::from([("virtio-mmio".to_string(), 1)])
        );
        seen.line("[device_manager] manager: device 34:0 (virtio,mmio) removed");
        assert!(seen.bound.is_empty());
        assert_eq!(parse_progress("garbage, 3 verified"), None);
    }

    #[test]
    fn the_summary_is_the_documented_line() {
        let outcome = Outcome {
            injected: [3, 1, 1, 0, 2],
            recovered: 7,
            recoveries: [5, 9, 1, 30, 2, 2, 700]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            ..Outcome::default()
        };
        assert_eq!(
            outcome.summary(),
            "soak: 7 faults injected (3 kills, 1 hangs, 1 panics, 0 corruptions, 2 floods), 7 recovered, 0 requests lost, 0 data mismatches, recovery p50 5 ms p99 700 ms"
        );
        assert!(outcome.passed());
        let lost = Outcome {
            lost: 1,
            ..outcome.clone()
        };
        assert!(!lost.passed());
        let short = Outcome {
            recovered: 6,
            ..outcome
        };
        assert!(!short.passed());
    }
}
