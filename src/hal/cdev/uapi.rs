//! The few parts of the Linux GPIO character device's uAPI v2
//! (`include/uapi/linux/gpio.h`, Linux 5.10+) that majortom uses: chip and
//! line info, requesting lines, reading and setting values, and decoding edge
//! events. Hand-written rather than the `gpiocdev` crate: it is a few hundred
//! bytes of code on armv6 against tens of KB (docs/PERFORMANCE.md).
//!
//! Plain data and ioctls on file descriptors; what the lines mean is
//! `cdev/mod.rs`'s business.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NAME_SIZE: usize = 32;
const LINES_MAX: usize = 64;
const NUM_ATTRS_MAX: usize = 10;

pub const FLAG_USED: u64 = 1 << 0;
pub const FLAG_ACTIVE_LOW: u64 = 1 << 1;
pub const FLAG_INPUT: u64 = 1 << 2;
pub const FLAG_OUTPUT: u64 = 1 << 3;
pub const FLAG_EDGE_RISING: u64 = 1 << 4;
pub const FLAG_EDGE_FALLING: u64 = 1 << 5;
pub const FLAG_BIAS_PULL_UP: u64 = 1 << 8;
pub const FLAG_BIAS_PULL_DOWN: u64 = 1 << 9;
pub const FLAG_BIAS_DISABLED: u64 = 1 << 10;

const ATTR_ID_OUTPUT_VALUES: u32 = 2;

/// `struct gpiochip_info`
#[repr(C)]
pub struct ChipInfo {
    name: [u8; NAME_SIZE],
    label: [u8; NAME_SIZE],
    pub lines: u32,
}

/// `struct gpio_v2_line_attribute`: the union is kept as its widest member.
#[repr(C)]
#[derive(Clone, Copy)]
struct LineAttribute {
    id: u32,
    padding: u32,
    value: u64,
}

/// `struct gpio_v2_line_config_attribute`
#[repr(C)]
#[derive(Clone, Copy)]
struct ConfigAttribute {
    attr: LineAttribute,
    mask: u64,
}

/// `struct gpio_v2_line_config`
#[repr(C)]
struct LineConfig {
    flags: u64,
    num_attrs: u32,
    padding: [u32; 5],
    attrs: [ConfigAttribute; NUM_ATTRS_MAX],
}

/// `struct gpio_v2_line_request`
#[repr(C)]
struct LineRequest {
    offsets: [u32; LINES_MAX],
    consumer: [u8; NAME_SIZE],
    config: LineConfig,
    num_lines: u32,
    event_buffer_size: u32,
    padding: [u32; 5],
    fd: i32,
}

/// `struct gpio_v2_line_info`
#[repr(C)]
pub struct LineInfo {
    name: [u8; NAME_SIZE],
    consumer: [u8; NAME_SIZE],
    pub offset: u32,
    num_attrs: u32,
    pub flags: u64,
    attrs: [LineAttribute; NUM_ATTRS_MAX],
    padding: [u32; 4],
}

/// `struct gpio_v2_line_values`
#[repr(C)]
struct LineValues {
    bits: u64,
    mask: u64,
}

/// The size of `struct gpio_v2_line_event`, as read from a request's fd.
pub const EVENT_SIZE: usize = 48;

// The kernel's layout, checked at compile time on every target (u64 is
// 8-aligned on ARM EABI and aarch64 alike, as `__aligned_u64` wants).
const _: () = assert!(std::mem::size_of::<ChipInfo>() == 68);
const _: () = assert!(std::mem::size_of::<LineConfig>() == 272);
const _: () = assert!(std::mem::size_of::<LineRequest>() == 592);
const _: () = assert!(std::mem::size_of::<LineInfo>() == 256);
const _: () = assert!(std::mem::size_of::<LineValues>() == 16);

/// `_IOWR(0xB4, nr, size)` / `_IOR`, in the generic encoding that ARM,
/// aarch64 and x86 share.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (0xB4 << 8) | nr
}
const READ: u32 = 2;
const READ_WRITE: u32 = 3;
const GET_CHIPINFO: u32 = ioc(READ, 0x01, std::mem::size_of::<ChipInfo>());
const GET_LINEINFO: u32 = ioc(READ_WRITE, 0x05, std::mem::size_of::<LineInfo>());
const GET_LINE: u32 = ioc(READ_WRITE, 0x07, std::mem::size_of::<LineRequest>());
const GET_VALUES: u32 = ioc(READ_WRITE, 0x0E, std::mem::size_of::<LineValues>());
const SET_VALUES: u32 = ioc(READ_WRITE, 0x0F, std::mem::size_of::<LineValues>());

/// ioctl(2) on a structure. The request type differs between libcs (int on
/// musl, unsigned long on glibc), hence the cast.
///
/// # Safety
/// `T` must be the structure the kernel reads and writes for `request`.
unsafe fn ioctl<T>(fd: &impl AsRawFd, request: u32, arg: &mut T) -> io::Result<()> {
    #[allow(clippy::useless_conversion, clippy::cast_lossless)]
    let rc = libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T);
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The text in a fixed-size, NUL-padded kernel string.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl ChipInfo {
    pub fn name(&self) -> String {
        text(&self.name)
    }
    pub fn label(&self) -> String {
        text(&self.label)
    }
}

impl LineInfo {
    pub fn name(&self) -> String {
        text(&self.name)
    }
    pub fn consumer(&self) -> String {
        text(&self.consumer)
    }
    pub fn used(&self) -> bool {
        self.flags & FLAG_USED != 0
    }
}

/// `GPIO_GET_CHIPINFO_IOCTL` on an open chip.
pub fn chip_info(chip: &impl AsRawFd) -> io::Result<ChipInfo> {
    // SAFETY: all-zero bytes are a valid ChipInfo.
    let mut info: ChipInfo = unsafe { std::mem::zeroed() };
    // SAFETY: GET_CHIPINFO fills a struct gpiochip_info.
    unsafe { ioctl(chip, GET_CHIPINFO, &mut info)? };
    Ok(info)
}

/// `GPIO_V2_GET_LINEINFO_IOCTL`: name, consumer and flags of one line.
pub fn line_info(chip: &impl AsRawFd, offset: u32) -> io::Result<LineInfo> {
    // SAFETY: all-zero bytes are a valid LineInfo.
    let mut info: LineInfo = unsafe { std::mem::zeroed() };
    info.offset = offset;
    // SAFETY: GET_LINEINFO reads and fills a struct gpio_v2_line_info.
    unsafe { ioctl(chip, GET_LINEINFO, &mut info)? };
    Ok(info)
}

/// `GPIO_V2_GET_LINE_IOCTL` for one line with `flags`; an output starts at
/// `initial`. Returns the request's file descriptor, which holds the line
/// until it is closed.
pub fn request_line(
    chip: &impl AsRawFd,
    offset: u32,
    consumer: &str,
    flags: u64,
    initial: Option<bool>,
) -> io::Result<OwnedFd> {
    // SAFETY: all-zero bytes are a valid LineRequest.
    let mut request: LineRequest = unsafe { std::mem::zeroed() };
    request.offsets[0] = offset;
    request.num_lines = 1;
    let name = consumer.as_bytes();
    let len = name.len().min(NAME_SIZE - 1);
    request.consumer[..len].copy_from_slice(&name[..len]);
    request.config.flags = flags;
    if let Some(high) = initial {
        request.config.num_attrs = 1;
        request.config.attrs[0] = ConfigAttribute {
            attr: LineAttribute {
                id: ATTR_ID_OUTPUT_VALUES,
                padding: 0,
                value: u64::from(high),
            },
            mask: 1,
        };
    }
    // SAFETY: GET_LINE reads a struct gpio_v2_line_request and writes its fd.
    unsafe { ioctl(chip, GET_LINE, &mut request)? };
    // SAFETY: on success the kernel gave us a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(request.fd) })
}

/// `GPIO_V2_LINE_GET_VALUES_IOCTL` for the one line of a request.
pub fn get_value(line: &impl AsRawFd) -> io::Result<bool> {
    let mut values = LineValues { bits: 0, mask: 1 };
    // SAFETY: GET_VALUES reads the mask and fills the bits.
    unsafe { ioctl(line, GET_VALUES, &mut values)? };
    Ok(values.bits & 1 != 0)
}

/// `GPIO_V2_LINE_SET_VALUES_IOCTL` for the one line of a request.
pub fn set_value(line: &impl AsRawFd, high: bool) -> io::Result<()> {
    let mut values = LineValues {
        bits: u64::from(high),
        mask: 1,
    };
    // SAFETY: SET_VALUES reads a struct gpio_v2_line_values.
    unsafe { ioctl(line, SET_VALUES, &mut values) }
}

/// An edge as the kernel reports it (`struct gpio_v2_line_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC, the kernel's default for events.
    pub timestamp_ns: u64,
    pub rising: bool,
}

/// Decodes one event from the bytes a read of a request's fd returned.
pub fn decode_event(bytes: &[u8; EVENT_SIZE]) -> Event {
    let word = |at: usize| u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&bytes[..8]);
    Event {
        timestamp_ns: u64::from_ne_bytes(timestamp),
        // GPIO_V2_LINE_EVENT_RISING_EDGE = 1, FALLING_EDGE = 2.
        rising: word(8) == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_should_match_the_kernel_headers() {
        // From <linux/gpio.h> on x86_64, aarch64 and arm alike.
        assert_eq!(GET_CHIPINFO, 0x8044_B401);
        assert_eq!(GET_LINEINFO, 0xC100_B405);
        assert_eq!(GET_LINE, 0xC250_B407);
        assert_eq!(GET_VALUES, 0xC010_B40E);
        assert_eq!(SET_VALUES, 0xC010_B40F);
    }

    #[test]
    fn events_should_decode_timestamp_and_direction() {
        let mut bytes = [0u8; EVENT_SIZE];
        bytes[..8].copy_from_slice(&123_456_789_000u64.to_ne_bytes());
        bytes[8..12].copy_from_slice(&2u32.to_ne_bytes());
        bytes[12..16].copy_from_slice(&17u32.to_ne_bytes());
        assert_eq!(
            decode_event(&bytes),
            Event {
                timestamp_ns: 123_456_789_000,
                rising: false
            }
        );
        bytes[8..12].copy_from_slice(&1u32.to_ne_bytes());
        assert!(decode_event(&bytes).rising);
    }

    #[test]
    fn a_file_that_is_not_a_chip_should_fail_the_ioctl() {
        let file = tempfile::tempfile().expect("temp file");
        let error = chip_info(&file).err().expect("not a chip");
        assert_eq!(error.raw_os_error(), Some(libc::ENOTTY));
    }
}
