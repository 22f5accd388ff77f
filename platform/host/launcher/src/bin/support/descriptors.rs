//! This process's descriptors by what they are (`/proc/self/fd`), beyond standard input, output
//! and error: how the hostile example PDs find their own socket and channel handles.

use std::os::fd::RawFd;

/// Descriptors above 2 whose link names contain `kind` (`"socket:"`, `"pipe:"`, `"memfd:"`).
pub fn descriptors(kind: &str) -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let number: RawFd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            (number > 2 && target.to_string_lossy().contains(kind)).then_some(number)
        })
        .collect()
}
