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
        if !(arguments.starts_with('{') && arguments.ends_with('}')) || arguments.contains('\n') {
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
        let deadline = Instant::now() + within;
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

/// QMP's lines, each read with a deadline.
struct Reader {
    lines: BufReader<UnixStream>,
}

impl Reader {
    fn line(&mut self, deadline: Instant) -> Result<String, String> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or("QEMU did not answer in time")?;
        self.lines
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|error| format!("{error}"))?;
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) => Err("QEMU closed the socket".into()),
            Ok(_) => {
                let line = line.trim_end().to_string();
                if line.starts_with('{') && line.ends_with('}') {
                    Ok(line)
                } else {
                    Err(format!("not a QMP line: {line}"))
                }
            }
            Err(error) => Err(format!("QEMU did not answer in time ({error})")),
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
    fn what_is_not_qmp_is_refused_by_name() {
        let socket = fake("not-qmp", "SSH-2.0-OpenSSH", vec![]);
        let error = execute(&socket, "query-pci", None, None).unwrap_err();
        assert!(error.starts_with("not a QMP line"), "{error}");
        let socket = fake("garbage", GREETING, vec![vec!["hello"]]);
        let error = execute(&socket, "query-pci", None, None).unwrap_err();
        assert!(error.starts_with("not a QMP line: hello"), "{error}");
        let nowhere = std::env::temp_dir().join("warden-qmp-nobody-listens");
        assert!(execute(&nowhere, "query-pci", None, None).is_err());
        // Names and arguments are checked before anything is sent: no second command can be
        // smuggled in.
        for command in ["device_add\"}", ""] {
            let error = execute(&nowhere, command, None, None).unwrap_err();
            assert!(error.contains("not a QMP command name"), "{error}");
        }
        for arguments in ["[1, 2]", "{\"a\": 1}\n{\"execute\": \"quit\"}"] {
            let error = execute(&nowhere, "device_add", Some(arguments), None).unwrap_err();
            assert!(error.contains("one JSON object"), "{error}");
        }
        let error = execute(&nowhere, "quit", None, Some(("BAD\"", Duration::ZERO))).unwrap_err();
        assert!(error.contains("not a QMP event name"), "{error}");
    }
}
