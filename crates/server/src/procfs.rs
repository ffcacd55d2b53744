//! What Linux's `/proc` says about a process, read in one place: its memory
//! (`/proc/PID/statm`), for the request log's memory fields, the master's
//! memory limits and sampling, and the stats.

/// A process's (address space, resident set) sizes in bytes, from
/// `/proc/PID/statm` (this process's for `None`); `None` if unreadable.
pub fn memory_bytes(pid: Option<i32>) -> Option<(u64, u64)> {
    let statm = match pid {
        Some(p) => std::fs::read_to_string(format!("/proc/{p}/statm")),
        None => std::fs::read_to_string("/proc/self/statm"),
    }
    .ok()?;
    let mut fields = statm.split_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some((size * page, resident * page))
}

/// A process's resident set size in bytes ([`memory_bytes`]).
pub fn rss_bytes(pid: Option<i32>) -> Option<u64> {
    memory_bytes(pid).map(|(_, rss)| rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_a_missing_one_has_none() {
        let Some((size, rss)) = memory_bytes(None) else {
            panic!("/proc/self/statm unreadable");
        };
        assert!(size >= rss && rss > 0, "{size} {rss}");
        assert_eq!(
            memory_bytes(Some(std::process::id() as i32)).map(|m| m.0 > 0),
            Some(true)
        );
        assert_eq!(rss_bytes(Some(-1)), None);
    }
}
