//! Gives back the code pages only start-up used.
//!
//! The kernel maps a binary's code and read-only data as they are first
//! touched (with readahead, and 64 KiB around each fault from the page
//! cache) and leaves them mapped. Start-up runs code the steady rounds
//! never run again (config parsing, TLS set-up, discovery payloads), and
//! it would count in the resident set for good. Once start-up is over,
//! [`release_startup_pages`] asks the kernel to page out the read-only and
//! executable part of the image (`MADV_PAGEOUT`: the clean pages leave the
//! page cache too, unless another process maps them) and not to read ahead
//! in it (`MADV_RANDOM`), so what the rounds touch comes back a page at a
//! time and the rest stays out. A path run later (a dashboard's first
//! request, a reconnect) reads its pages from the file again.
//!
//! The range is the ELF header (`__ehdr_start`) to the end of the code
//! (`etext`), which both linkers we build with (lld through zig, GNU ld)
//! lay out before the writable segments; paging out never loses data
//! anyway (a written page would go to swap, not be dropped).

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

/// Pages out the image's read-only data and code; returns how many bytes
/// the range held (resident or not), or the error of `madvise` (`EINVAL`
/// before Linux 5.4, which has no `MADV_PAGEOUT`).
pub fn release_startup_pages() -> std::io::Result<usize> {
    // Only the addresses of the linker's symbols are taken, never read.
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
    let advise = |advice| {
        // SAFETY: [start, end) lies within our own image's mappings; both
        // pieces of advice keep every byte as it is (a page out is read
        // back at the next touch).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) }
    };
    advise(libc::MADV_RANDOM);
    let rc = advise(libc::MADV_PAGEOUT);
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
