//! Gives back the code pages only start-up used.
//!
//! The kernel maps a binary's code and read-only data as they are first
//! touched (64 KiB around each fault) and leaves them mapped. Start-up runs
//! code the steady rounds never run again (config parsing, TLS set-up,
//! discovery payloads), and it would count in the resident set for good.
//! Once start-up is over, [`release_startup_pages`] unmaps the read-only
//! and executable part of the image (`madvise(MADV_DONTNEED)`); the rounds
//! map back what they use from the page cache at their next touch (minor
//! faults, no I/O), and the rest stays out. The pages are the file's: the
//! kernel can drop them from the cache under memory pressure either way.
//!
//! Only pages that are never written are released: from the ELF header
//! (`__ehdr_start`) to the end of the code (`etext`), which both linkers we
//! build with (lld through zig, GNU ld) lay out before the writable
//! segments (relocated data, `.data`, `.bss`). Releasing a written page of
//! a private mapping would lose the writes.

use std::time::Duration;

/// How long after the agent is ready start-up is taken to be over: the
/// first rounds, the MQTT connection and its discovery are done by then.
pub const STARTUP_SETTLES: Duration = Duration::from_secs(15);

extern "C" {
    /// The first byte of the image: its ELF header (defined by the linker).
    static __ehdr_start: u8;
    /// The end of the code (defined by the linker).
    static etext: u8;
}

/// Unmaps the image's read-only data and code; returns how many bytes the
/// range held (mapped or not), or the error of `madvise`.
pub fn release_startup_pages() -> std::io::Result<usize> {
    // SAFETY: only the addresses of the linker's symbols are taken.
    let (start, end) = (
        std::ptr::addr_of!(__ehdr_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    // SAFETY: sysconf has no memory effects.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .unwrap_or(4096)
        .max(4096);
    // Whole pages inside the range: the page `etext` ends in may hold the
    // start of something else.
    let start = start.next_multiple_of(page);
    let end = end / page * page;
    if end <= start {
        return Ok(0);
    }
    // SAFETY: [start, end) lies within our own image's read-only and
    // executable mappings, which are never written: dropping them only
    // makes the next access read the page from the file again.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(end - start)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident code of this very test binary shrinks, and the code
    /// still runs afterwards (it faults back in).
    #[test]
    fn releasing_should_unmap_resident_code_and_keep_it_runnable() {
        let resident_file_kib = || {
            let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
            rollup
                .lines()
                .find_map(|line| line.strip_prefix("Pss_File:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .expect("Pss_File")
        };
        let before = resident_file_kib();
        let released = release_startup_pages().expect("madvise");
        let after = resident_file_kib();
        assert!(released > 0);
        assert!(after < before, "resident file pages {before} kB → {after} kB");
        // Code runs again, faulting back in.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
