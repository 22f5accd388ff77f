//! A client of QEMU's monitor protocol (QMP) on a Unix socket: what a script needs to plug a
//! card into `make qemu`'s machine and take it out while the system runs
//! (`warden-host qmp SOCKET device_add '{"driver":"virtio-blk-pci","bus":"slot1",…}'`).
//!
//! QMP is JSON, one object per line: QEMU greets, the client leaves negotiation with
//! `qmp_capabilities`, then each command is answered with `{"return": …}` or `{"error": …}`;
//! events (`{"event": …}`) may come in between at any time. This client sends one command, prints
//! the events and the answer as they come, and can wait for an event after it (`DEVICE_DELETED`,
//! which QEMU sends once a `device_del`'s ejection is complete). It reads with a deadline: a
//! socket that is not QEMU's, or a QEMU that does not answer, is an error, never a hang.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long QEMU may take to greet or to answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// What happened: the lines QEMU sent after the command (its events and its answer), and
/// whether the answer was a success.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Each line as QEMU sent it.
    pub lines: Vec<String>,
    /// `{"return": …}` (not `{"error": …}`).
    pub ok: bool,
}

/// Runs `command` with `arguments` (a JSON object, or none) on the QMP socket `socket`; then,
/// with `wait`, waits up to `wait_for` for the event of that name.
///
/// # Errors
/// The socket cannot be reached, it does not greet as QMP does, a line is not a JSON object, a
/// name or the arguments are malformed, or an answer (or the awaited event) does not come in
/// time.
pub fn execute(
    socket: &Path,
    command: &str,
    arguments: Option<&str>,
    wait: Option<(&str, Duration)>,
) -> Result<Outcome, String> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !name_ok(command) {
        return Err(format!("'{command}' is not a QMP command name"));
    }
    if let Some((event, _)) = wait {
        if !name_ok(event) {
            return Err(format!("'{event}' is not a QMP event name"));
        }
    }
    let arguments = arguments.map(str::trim);
    if let Some(arguments) = arguments {
        if !one_object(arguments) {
            return Err(format!(
                "the arguments must be one JSON object on one line, not '{arguments}'"
            ));
        }
    }
    let stream = UnixStream::connect(socket).map_err(|error| format!("{error}"))?;
    let mut writer = stream.try_clone().map_err(|error| format!("{error}"))?;
    let mut reader = Reader {
        lines: BufReader::new(stream),
    };
    let greeting = reader.line(Instant::now() + ANSWER_DEADLINE)?;
    if !greeting.contains("\"QMP\"") {
        return Err(format!("not a QMP greeting: {greeting}"));
    }
    writeln!(writer, "{{\"execute\": \"qmp_capabilities\"}}")
        .map_err(|error| format!("{error}"))?;
    let (_, negotiated) = reader.answer()?;
    if !negotiated {
        return Err("QEMU refused qmp_capabilities".into());
    }
    match arguments {
        Some(arguments) => writeln!(
            writer,
            "{{\"execute\": \"{command}\", \"arguments\": {arguments}}}"
        ),
        None => writeln!(writer, "{{\"execute\": \"{command}\"}}"),
    }
    .map_err(|error| format!("{error}"))?;
    let (mut lines, ok) = reader.answer()?;
    if let (true, Some((event, within))) = (ok, wait) {
        let pattern = format!("\"event\": \"{event}\"");
        let compact = format!("\"event\":\"{event}\"");
        let deadline = Instant::now()
            .checked_add(within)
            .ok_or_else(|| format!("cannot wait {} s", within.as_secs()))?;
        let seen = |line: &String| line.contains(&pattern) || line.contains(&compact);
        while !lines.iter().any(seen) {
            match reader.line(deadline) {
                Ok(line) => lines.push(line),
                Err(_) => return Err(format!("no {event} event within {} s", within.as_secs())),
            }
        }
    }
    Ok(Outcome { lines, ok })
}

/// Whether `text` is one JSON object on one line: it opens with `{`, and the brace that closes
/// it (outside strings) is its last character, so no second command follows it.
fn one_object(text: &str) -> bool {
    if !text.starts_with('{') || text.contains(['\n', '\r']) {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = match depth.checked_sub(1) {
                    Some(depth) => depth,
                    None => return false,
                };
                if depth == 0 {
                    return at + 1 == text.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// The longest line read from QEMU (its answers to these commands are far shorter).
const MAX_LINE: u64 = 1 << 20;

/// QMP's lines, each read with a deadline.
struct Reader {
    lines: BufReader<UnixStream>,
}

impl Reader {
    fn line(&mut self, deadline: Instant) -> Result<String, String> {
        let mut bytes = Vec::new();
        // What has come is taken a buffer at a time, the deadline looked at before each wait:
        // a peer that trickles bytes without ending its line is given up on in time, and the
        // line is bounded.
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or("QEMU did not answer in time")?;
            self.lines
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|error| format!("{error}"))?;
            let available = match self.lines.fill_buf() {
                Ok([]) => return Err("QEMU closed the socket".into()),
                Ok(available) => available,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(format!("QEMU did not answer in time ({error})")),
            };
            let (taken, ended) = match available.iter().position(|byte| *byte == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            bytes.extend_from_slice(available.get(..taken).unwrap_or_default());
            self.lines.consume(taken);
            if ended {
                break;
            }
            if bytes.len() as u64 > MAX_LINE {
                return Err(format!("a line from QEMU longer than {MAX_LINE} bytes"));
            }
        }
        let line = String::from_utf8_lossy(&bytes).into_owned();
        let line = line.trim_end().to_string();
        if line.starts_with('{') && line.ends_with('}') {
            Ok(line)
        } else {
            Err(format!("not a QMP line: {line}"))
        }
    }

    /// Lines up to and with the answer to the command sent; whether it is a success.
    fn answer(&mut self) -> Result<(Vec<String>, bool), String> {
        let deadline = Instant::now() + ANSWER_DEADLINE;
        let mut lines = Vec::new();
        loop {
            let line = self.line(deadline)?;
            let ok = line.starts_with("{\"return\"");
            let error = line.starts_with("{\"error\"");
            lines.push(line);
            if ok || error {
                return Ok((lines, ok));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A QEMU that greets and answers what `script` says, line by line, to each line it reads.
    fn fake(
        name: &str,
        greeting: &'static str,
        script: Vec<Vec<&'static str>>,
    ) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("warden-qmp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writeln!(writer, "{greeting}").unwrap();
            for answers in script {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                for answer in answers {
                    writeln!(writer, "{answer}").unwrap();
                }
            }
            // Keep the socket open a moment, as QEMU does.
            std::thread::sleep(Duration::from_secs(2));
        });
        path
    }

    const GREETING: &str = r#"{"QMP": {"version": {}, "capabilities": ["oob"]}}"#;

    #[test]
    fn a_command_is_answered_and_the_awaited_event_comes() {
        let socket = fake(
            "ok",
            GREETING,
            vec![
                vec![r#"{"return": {}}"#],
                vec![
                    r#"{"return": {}}"#,
                    r#"{"event": "DEVICE_DELETED", "data": {"device": "card1"}}"#,
                ],
            ],
        );
        let outcome = execute(
            &socket,
            "device_del",
            Some(r#"{"id": "card1"}"#),
            Some(("DEVICE_DELETED", Duration::from_secs(2))),
        )
        .unwrap();
        assert!(outcome.ok);
        assert_eq!(outcome.lines.len(), 2);
        assert!(outcome.lines[1].contains("card1"));
    }

    #[test]
    fn an_error_answer_is_not_ok_and_nothing_hangs() {
        let socket = fake(
            "error",
            GREETING,
            vec![
                vec![r#"{"return": {}}"#],
                vec![r#"{"error": {"class": "GenericError", "desc": "Bus 'slot9' not found"}}"#],
            ],
        );
        let outcome = execute(&socket, "device_add", Some(r#"{"bus": "slot9"}"#), None).unwrap();
        assert!(!outcome.ok);
        assert!(outcome.lines[0].contains("slot9"));
        // A QEMU that answers the command but never sends the event: an error in time.
        let socket = fake(
            "silent",
            GREETING,
            vec![vec![r#"{"return": {}}"#], vec![r#"{"return": {}}"#]],
        );
        let started = Instant::now();
        let error = execute(
            &socket,
            "device_del",
            Some(r#"{"id": "x"}"#),
            Some(("DEVICE_DELETED", Duration::from_millis(300))),
        )
        .unwrap_err();
        assert!(error.contains("no DEVICE_DELETED event"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn one_object_is_one_object() {
        assert!(one_object(
            r#"{"driver": "virtio-blk-pci", "bus": "slot1"}"#
        ));
        assert!(one_object(r#"{"a": {"b": [1, "}"]}, "c": "\"}"}"#));
        assert!(!one_object(r#"{"a": 1}}"#));
        assert!(!one_object(r#"{"a": 1"#));
        assert!(!one_object(r#"{"a": 1} "#));
    }

    #[test]
    fn a_peer_that_trickles_without_a_newline_is_given_up_on_in_time() {
        let path = std::env::temp_dir().join(format!("warden-qmp-{}-trickle", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            for _ in 0..100 {
                if stream.write_all(b"{").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let started = Instant::now();
        let error = execute(&path, "query-pci", None, None).unwrap_err();
        assert!(error.contains("in time"), "{error}");
        assert!(started.elapsed() < ANSWER_DEADLINE + Duration::from_secs(2));
    }

    #[test]
    fn what_is_not_qmp_is_refused_by_name() {
        let socket = fake("not-qmp", "SSH-2.0-OpenSSH", vec![]);
        let error = execute(&socket, "query-pci", None, None).unwrap_err();
        assert!(error.starts_with("not a QMP line"), "{error}");
        let socket = fake("garbage", GREETING, vec![vec!["hello"]]);
        let error = execute(&socket, "query-pci", None, None).unwrap_err();
        assert!(error.starts_with("not a QMP line: hello"), "{error}");
        let nowhere = std::env::temp_dir().join("warden-qmp-nobody-listens");
        assert!(execute(&nowhere, "query-pci", None, None).is_err());
        // Names and arguments are checked before anything is sent: the arguments are one
        // object, so no second command follows them.
        for command in ["device_add\"}", ""] {
            let error = execute(&nowhere, command, None, None).unwrap_err();
            assert!(error.contains("not a QMP command name"), "{error}");
        }
        for arguments in [
            "[1, 2]",
            "{\"a\": 1}\n{\"execute\": \"quit\"}",
            "{\"id\": \"x\"}}{\"execute\": \"quit\"}",
            "{\"id\": \"x\"} {\"execute\": \"quit\"}",
            "{\"id\": \"}\"",
        ] {
            let error = execute(&nowhere, "device_add", Some(arguments), None).unwrap_err();
            assert!(error.contains("one JSON object"), "{error}");
        }
        let error = execute(&nowhere, "quit", None, Some(("BAD\"", Duration::ZERO))).unwrap_err();
        assert!(error.contains("not a QMP event name"), "{error}");
    }
}
