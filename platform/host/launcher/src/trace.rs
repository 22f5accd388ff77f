//! The run's trace (`warden-host run --trace FILE`): what the PDs did, timestamped (monotonic
//! nanoseconds since the run started) when the launcher takes it.
//!
//! Two formats, by the file's name. `FILE.json` is Chrome's trace-event format, which Perfetto's
//! UI and `chrome://tracing` open: a track per PD (its notifications, calls, faults and restarts
//! as instants), the device manager's requests as slices on its request tracks (from arrival to
//! completion), every callback as a slice on its driver PD's track (from the manager sending it
//! to the driver's answer; named for its kind, with its device and driver), and a flow from each
//! request through the callbacks it caused. Concurrent slices get a track each (a lane), so
//! every track's slices follow one another. The file is written when the run ends; a slice still
//! open then ends there, marked unfinished. Any other name is JSON lines, one event a line, as
//! they happen.
//!
//! Names come from the launcher ([`warden_microkit::trace::Name::text`]) and the system description, never from a PD's
//! bytes, and the numbers are the PD's own account: a PD can draw false spans on its own marks,
//! but cannot write into the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use serde_json::{json, Map, Value};
use warden_microkit::trace::{Mark, Phase};

/// Events a Chrome trace keeps (about 100 MB of JSON); past them, new ones are counted only.
pub const MAX_EVENTS: usize = 1 << 20;
/// Spans open at once (begun, not yet ended), every PD together: a PD that begins spans and
/// never ends them cannot make the launcher's memory grow; past it, new ones are counted only.
pub const MAX_OPEN: usize = 4096;

/// A slice in progress.
struct Open {
    start: f64,
    name: String,
    tid: u64,
    lane: (usize, bool, usize),
    args: Map<String, Value>,
}

/// The trace being written.
pub struct Trace {
    out: BufWriter<File>,
    chrome: bool,
    started: Instant,
    names: Vec<String>,
    events: Vec<Value>,
    dropped: u64,
    /// Open slices by (marking PD, callback?, id).
    open: HashMap<(usize, bool, u64), Open>,
    /// Per (PD, request lanes?): which lanes are taken.
    lanes: HashMap<(usize, bool), Vec<bool>>,
    /// Lanes named so far (their metadata written).
    named: std::collections::HashSet<u64>,
    /// The last timestamp given, so that two events never share one and time never goes back.
    last: u64,
    /// Requests (marking PD, id) whose flow has started.
    flowing: std::collections::HashSet<(usize, u64)>,
}

fn escape_free(name: &str) -> String {
    name.chars()
        .filter(|character| !character.is_control())
        .collect()
}

fn handle(handle: Option<[u32; 2]>) -> Option<String> {
    handle.map(|[index, generation]| format!("{index}:{generation}"))
}

impl Trace {
    /// A trace into `file`, Chrome's format if `path` ends in `.json`; `names` are the PDs'.
    #[must_use]
    pub fn new(file: File, path: &std::path::Path, names: Vec<String>) -> Self {
        let chrome = path
            .extension()
            .is_some_and(|extension| extension == "json");
        let mut trace = Self {
            out: BufWriter::new(file),
            chrome,
            started: Instant::now(),
            names: names.iter().map(|name| escape_free(name)).collect(),
            events: Vec::new(),
            dropped: 0,
            open: HashMap::new(),
            lanes: HashMap::new(),
            named: std::collections::HashSet::new(),
            last: 0,
            flowing: std::collections::HashSet::new(),
        };
        if chrome {
            trace.push(
                json!({"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
                "args": {"name": "warden (host platform)"}}),
            );
            for pd in 0..names.len() {
                trace.name_lane(pd, false, 0);
            }
        }
        trace
    }

    /// Nanoseconds since the run started, rising strictly.
    fn now(&mut self) -> u64 {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last = now.max(self.last + 1);
        self.last
    }

    fn push(&mut self, event: Value) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }

    fn name(&self, pd: usize) -> &str {
        self.names.get(pd).map_or("?", String::as_str)
    }

    /// The track of `pd`'s lane `lane` (lane 0 of the callbacks is the PD's own track).
    fn tid(pd: usize, requests: bool, lane: usize) -> u64 {
        let base = (pd as u64 + 1) * 1000;
        if requests {
            base + 500 + lane as u64
        } else {
            base + lane as u64
        }
    }

    fn name_lane(&mut self, pd: usize, requests: bool, lane: usize) {
        let tid = Self::tid(pd, requests, lane);
        if !self.named.insert(tid) {
            return;
        }
        let name = match (requests, lane) {
            (false, 0) => self.name(pd).to_string(),
            (false, lane) => format!("{} (callbacks, lane {})", self.name(pd), lane + 1),
            (true, lane) => format!("{} requests (lane {})", self.name(pd), lane + 1),
        };
        self.push(
            json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid,
            "args": {"name": name}}),
        );
        self.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid,
            "args": {"sort_index": tid}}),
        );
    }

    fn take_lane(&mut self, pd: usize, requests: bool) -> usize {
        let lanes = self.lanes.entry((pd, requests)).or_default();
        let lane = match lanes.iter().position(|taken| !taken) {
            Some(lane) => lane,
            None => {
                lanes.push(false);
                lanes.len() - 1
            }
        };
        if let Some(taken) = lanes.get_mut(lane) {
            *taken = true;
        }
        self.name_lane(pd, requests, lane);
        lane
    }

    fn free_lane(&mut self, (pd, requests, lane): (usize, bool, usize)) {
        if let Some(taken) = self
            .lanes
            .get_mut(&(pd, requests))
            .and_then(|lanes| lanes.get_mut(lane))
        {
            *taken = false;
        }
    }

    /// Something `pd` did, with its details: `notify`, `ppcall`, `refused`, `fault`, `restart`.
    pub fn event(&mut self, pd: usize, event: &str, details: Map<String, Value>) {
        let ns = self.now();
        if self.chrome {
            self.push(json!({"ph": "i", "s": "t", "name": event, "pid": 1,
                "tid": Self::tid(pd, false, 0), "ts": ns as f64 / 1000.0, "args": details}));
        } else {
            let mut line = Map::new();
            line.insert("event".into(), event.into());
            line.insert("pd".into(), self.name(pd).into());
            line.extend(details);
            line.insert("ts_ns".into(), ns.into());
            let _ = writeln!(self.out, "{}", Value::Object(line));
            let _ = self.out.flush();
        }
    }

    /// A span's mark from `pd`; `child` is the PD its child id names (a callback's driver).
    pub fn mark(&mut self, pd: usize, mark: Mark, child: Option<usize>) {
        let ns = self.now();
        let us = ns as f64 / 1000.0;
        let callback = mark.name.is_callback();
        if !self.chrome {
            let mut details = Map::new();
            details.insert(
                "phase".into(),
                (if mark.phase == Phase::Begin {
                    "begin"
                } else {
                    "end"
                })
                .into(),
            );
            details.insert("name".into(), mark.name.text().into());
            details.insert("id".into(), mark.id.into());
            self.event(pd, "mark", details);
            return;
        }
        let key = (pd, callback, mark.id);
        match mark.phase {
            Phase::Begin if self.open.len() >= MAX_OPEN && !self.open.contains_key(&key) => {
                self.dropped += 1;
            }
            Phase::Begin => {
                let owner = if callback { child.unwrap_or(pd) } else { pd };
                let lane = self.take_lane(owner, !callback);
                let tid = Self::tid(owner, !callback, lane);
                let mut args = Map::new();
                if let Some(device) = handle(mark.device) {
                    args.insert("device".into(), device.into());
                }
                if let Some(driver) = handle(mark.driver) {
                    args.insert("driver".into(), driver.into());
                }
                let name = if callback {
                    args.insert("pd".into(), self.name(owner).into());
                    if let Some(request) = mark.request {
                        args.insert("request".into(), request.into());
                        // The request's flow passes through this callback.
                        self.push(json!({"ph": "t", "name": "request", "cat": "flow",
                            "id": request, "pid": 1, "tid": tid, "ts": us}));
                        let source = self
                            .open
                            .get(&(pd, false, request))
                            .map(|source| (source.tid, source.start));
                        if let Some((source_tid, source_start)) = source {
                            if self.flowing.insert((pd, request)) {
                                self.push(json!({"ph": "s", "name": "request", "cat": "flow",
                                    "id": request, "pid": 1, "tid": source_tid,
                                    "ts": source_start}));
                            }
                        }
                    }
                    mark.name.text().to_string()
                } else {
                    args.insert("request".into(), mark.id.into());
                    match handle(mark.device) {
                        Some(device) => format!("{} {device}", mark.name.text()),
                        None => mark.name.text().to_string(),
                    }
                };
                if let Some(stale) = self.open.insert(
                    key,
                    Open {
                        start: us,
                        name,
                        tid,
                        lane: (owner, !callback, lane),
                        args,
                    },
                ) {
                    // The same id begun twice: the first ends here.
                    self.close(stale, us, "begun again");
                }
            }
            Phase::End => {
                let Some(mut open) = self.open.remove(&key) else {
                    return;
                };
                open.args.insert("status".into(), mark.status.into());
                if !callback {
                    if let Some(driver) = handle(mark.driver) {
                        open.args.insert("driver".into(), driver.into());
                    }
                    // The flow, if any callback joined it, ends at the completion.
                    let id = mark.id;
                    if self.flowing.remove(&(pd, id)) {
                        self.push(json!({"ph": "f", "bp": "e", "name": "request",
                            "cat": "flow", "id": id, "pid": 1, "tid": open.tid, "ts": us}));
                    }
                }
                self.close(open, us, "");
            }
        }
    }

    fn close(&mut self, open: Open, end: f64, why: &str) {
        let mut args = open.args;
        if !why.is_empty() {
            args.insert("unfinished".into(), why.into());
        }
        self.push(
            json!({"ph": "X", "name": open.name, "pid": 1, "tid": open.tid,
            "ts": open.start, "dur": (end - open.start).max(0.0), "args": args}),
        );
        self.free_lane(open.lane);
    }

    /// `pd` stopped (faulted, killed or restarted): the callbacks running in it end now.
    pub fn stopped(&mut self, pd: usize) {
        let us = self.now() as f64 / 1000.0;
        let ended: Vec<_> = self
            .open
            .iter()
            .filter(|((_, callback, _), open)| *callback && open.lane.0 == pd)
            .map(|(key, _)| *key)
            .collect();
        for key in ended {
            if let Some(open) = self.open.remove(&key) {
                self.close(open, us, "its PD stopped");
            }
        }
    }

    /// Ends the trace: slices still open end now, and a Chrome trace is written, in time
    /// order.
    pub fn finish(&mut self) {
        if !self.chrome {
            let _ = self.out.flush();
            return;
        }
        let us = self.now() as f64 / 1000.0;
        let open: Vec<_> = self.open.drain().map(|(_, open)| open).collect();
        for open in open {
            self.close(open, us, "the run ended");
        }
        let events = std::mem::take(&mut self.events);
        let mut events: Vec<Value> = events;
        events.sort_by(|a, b| {
            let ts = |event: &Value| event.get("ts").and_then(Value::as_f64).unwrap_or(-1.0);
            ts(a).total_cmp(&ts(b))
        });
        let trace = json!({
            "traceEvents": events,
            "displayTimeUnit": "ns",
            "otherData": {"dropped": self.dropped},
        });
        let _ = serde_json::to_writer(&mut self.out, &trace);
        let _ = self.out.flush();
    }
}

/// How far apart two timestamps may be and still count as one (in µs): the trace's times are
/// decimal microseconds, and a slice's start plus its duration is one rounding away from its end.
const TIME_SLACK: f64 = 0.001;

/// What [`check`] found in a Chrome trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Slices.
    pub slices: usize,
    /// Tracks with slices or instants.
    pub tracks: usize,
    /// Probe slices.
    pub probes: usize,
    /// Flows (requests joined to their callbacks).
    pub flows: usize,
    /// Flow steps into callbacks.
    pub steps: usize,
}

/// Checks a Chrome trace as Warden writes it: every slice ends (a complete event with a
/// duration), timestamps rise on each track (its events in time order, its slices one after
/// another), every probe slice names its device and driver, and every flow starts in a request's
/// slice and passes through callback slices on driver tracks.
///
/// # Errors
/// The first thing that is not so.
pub fn check(text: &str) -> Result<Checked, String> {
    let trace: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let events = trace
        .get("traceEvents")
        .and_then(Value::as_array)
        .ok_or("no traceEvents array")?;
    let mut checked = Checked::default();
    let mut last: HashMap<u64, f64> = HashMap::new();
    let mut slices: HashMap<u64, Vec<(f64, f64, String)>> = HashMap::new();
    let mut flows: HashMap<u64, Vec<(String, u64, f64)>> = HashMap::new();
    for event in events {
        let ph = event
            .get("ph")
            .and_then(Value::as_str)
            .ok_or("an event without a phase")?;
        if ph == "M" {
            continue;
        }
        let tid = event
            .get("tid")
            .and_then(Value::as_u64)
            .ok_or("an event without a track")?;
        let ts = event
            .get("ts")
            .and_then(Value::as_f64)
            .ok_or("an event without a timestamp")?;
        let name = event
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if last.get(&tid).is_some_and(|previous| ts < *previous) {
            return Err(format!(
                "track {tid}: '{name}' at {ts} comes after a later event"
            ));
        }
        last.insert(tid, ts);
        match ph {
            "X" => {
                let dur = event
                    .get("dur")
                    .and_then(Value::as_f64)
                    .ok_or(format!("slice '{name}' has no end"))?;
                if dur < 0.0 {
                    return Err(format!("slice '{name}' ends before it starts"));
                }
                if name == "probe"
                    && (event
                        .pointer("/args/device")
                        .and_then(Value::as_str)
                        .is_none()
                        || event
                            .pointer("/args/driver")
                            .and_then(Value::as_str)
                            .is_none())
                {
                    return Err(format!("a probe slice at {ts} names no device or driver"));
                }
                checked.probes += usize::from(name == "probe");
                checked.slices += 1;
                slices.entry(tid).or_default().push((ts, ts + dur, name));
            }
            "B" | "E" => return Err(format!("slice '{name}': a begin or end without its pair")),
            "s" | "t" | "f" => {
                let id = event
                    .get("id")
                    .and_then(Value::as_u64)
                    .ok_or("a flow without an id")?;
                flows.entry(id).or_default().push((ph.to_string(), tid, ts));
            }
            _ => {}
        }
    }
    for (tid, list) in &mut slices {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in list.windows(2) {
            if let [(_, end, first), (start, _, second)] = pair {
                if *start < end - TIME_SLACK {
                    return Err(format!(
                        "track {tid}: slice '{second}' starts before '{first}' ends"
                    ));
                }
            }
        }
    }
    let within = |tid: u64, ts: f64| {
        slices.get(&tid).is_some_and(|list| {
            list.iter()
                .any(|(start, end, _)| *start <= ts + TIME_SLACK && ts <= *end + TIME_SLACK)
        })
    };
    for (id, steps) in &flows {
        let starts = steps.iter().filter(|(ph, ..)| ph == "s").count();
        let passes = steps.iter().filter(|(ph, ..)| ph == "t").count();
        if starts == 0 || passes == 0 {
            return Err(format!("flow {id} does not join a request to a callback"));
        }
        for (ph, tid, ts) in steps {
            if !within(*tid, *ts) {
                return Err(format!(
                    "flow {id}: its '{ph}' at {ts} is in no slice of track {tid}"
                ));
            }
            if ph == "t" && tid % 1000 >= 500 {
                return Err(format!(
                    "flow {id}: a step on a request track, not a callback's"
                ));
            }
        }
        checked.flows += 1;
        checked.steps += passes;
    }
    checked.tracks = last.len();
    Ok(checked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use warden_microkit::trace::Name;

    /// A bind that probes, as the manager marks it: request 7 from PD 0 whose probe runs in
    /// its child 1 (PD 1); a second probe of the same PD at the same time gets a lane.
    fn written(test: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("warden-trace-{test}-{}.json", std::process::id()));
        let file = File::create(&path).unwrap();
        let mut trace = Trace::new(file, &path, vec!["manager".into(), "driver".into()]);
        trace.mark(
            0,
            Mark {
                device: Some([3, 0]),
                ..Mark::new(Phase::Begin, Name::Bind, 7)
            },
            None,
        );
        for id in [1, 2] {
            let probe = Mark {
                child: 1,
                device: Some([3, 0]),
                driver: Some([0, 1]),
                request: Some(7),
                ..Mark::new(Phase::Begin, Name::Probe, id)
            };
            trace.mark(0, probe, Some(1));
        }
        trace.event(1, "notify", Map::new());
        trace.mark(0, Mark::new(Phase::End, Name::Callback, 1), Some(1));
        trace.mark(0, Mark::new(Phase::End, Name::Request, 7), None);
        // Probe 2 never ends: its PD stops.
        trace.stopped(1);
        trace.finish();
        drop(trace);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        text
    }

    #[test]
    fn a_written_trace_passes_its_check() {
        let text = written("passes");
        assert_eq!(
            check(&text),
            Ok(Checked {
                slices: 3,
                tracks: 3,
                probes: 2,
                flows: 1,
                steps: 2
            })
        );
        assert!(text.contains("\"unfinished\":\"its PD stopped\""), "{text}");
        assert!(
            text.contains("\"name\":\"driver (callbacks, lane 2)\""),
            "{text}"
        );
    }

    /// Each broken property is caught.
    /// A PD that begins spans and never ends them is held to [`MAX_OPEN`]; the rest are
    /// counted, and the trace is still whole.
    #[test]
    fn spans_never_ended_are_bounded() {
        let path =
            std::env::temp_dir().join(format!("warden-trace-open-{}.json", std::process::id()));
        let file = File::create(&path).unwrap();
        let mut trace = Trace::new(file, &path, vec!["hostile".into()]);
        for id in 0..(MAX_OPEN as u64 + 100) {
            trace.mark(0, Mark::new(Phase::Begin, Name::Bind, id), None);
        }
        assert_eq!(trace.open.len(), MAX_OPEN);
        assert_eq!(trace.dropped, 100);
        trace.finish();
        drop(trace);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let checked = check(&text).unwrap();
        assert_eq!(checked.slices, MAX_OPEN);
        assert!(text.contains("\"dropped\":100"));
    }

    #[test]
    fn broken_traces_fail_their_check() {
        let text = written("fails");
        let mut trace: Value = serde_json::from_str(&text).unwrap();
        let events = trace["traceEvents"].as_array().unwrap().clone();
        let with = |events: Vec<Value>| {
            let mut broken = trace.clone();
            broken["traceEvents"] = Value::Array(events);
            check(&broken.to_string())
        };
        let slice = |name: &str| {
            events
                .iter()
                .position(|event| event["ph"] == "X" && event["name"] == name)
                .unwrap()
        };
        // A slice without its end.
        let mut broken = events.clone();
        broken[slice("bind 3:0")]
            .as_object_mut()
            .unwrap()
            .remove("dur");
        assert!(with(broken).unwrap_err().contains("has no end"));
        // A probe that does not say which driver.
        let mut broken = events.clone();
        broken[slice("probe")]["args"]
            .as_object_mut()
            .unwrap()
            .remove("driver");
        assert!(with(broken)
            .unwrap_err()
            .contains("names no device or driver"));
        // Two slices overlapping on one track.
        let mut broken = events.clone();
        let twin = broken[slice("probe")].clone();
        // The same probe again, from its start: it overlaps itself.
        broken.push(twin);
        broken.sort_by(|a, b| {
            let ts = |event: &Value| event["ts"].as_f64().unwrap_or(-1.0);
            ts(a).total_cmp(&ts(b))
        });
        assert!(with(broken).unwrap_err().contains("starts before"));
        // Out of time order on a track.
        let mut broken = events.clone();
        broken.reverse();
        assert!(with(broken)
            .unwrap_err()
            .contains("comes after a later event"));
        // A flow that joins nothing.
        let broken: Vec<Value> = events
            .iter()
            .filter(|event| event["ph"] != "t")
            .cloned()
            .collect();
        assert!(with(broken).unwrap_err().contains("does not join"));
        trace["traceEvents"] = json!("not events");
        assert!(check(&trace.to_string()).is_err());
        assert!(check("{").unwrap_err().starts_with("not JSON"));
    }
}
