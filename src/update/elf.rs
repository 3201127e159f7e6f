//! Whether a binary can run here, read from its ELF header: word size,
//! byte order, machine, for 32-bit ARM the float ABI (`e_flags`) and the
//! architecture level it was compiled for (`Tag_CPU_arch` in the
//! `.ARM.attributes` section, which `strip` keeps).
//!
//! What this can tell: an aarch64 or x86_64 binary on a 32-bit ARM system
//! (and every other machine mix-up), a soft-float build on a hard-float
//! system, and an ARMv7 (or ARMv8 AArch32) build on an ARMv6 CPU (a Pi
//! Zero or 1), where it would die on its first ARMv7 instruction.
//! What it cannot: code that uses more than its attributes declare (a
//! build with `-C target-cpu=native` elsewhere), optional units such as
//! NEON (not checked: our builds do not use them), and anything about the
//! C library a dynamic binary needs (our builds are static).
//!
//! Pure: the caller hands in the bytes, this process's own header and the
//! kernel's machine name (`uname -m`).

/// `e_machine` values (the ELF specification's `EM_*`).
const EM_386: u16 = 3;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
/// `e_flags` of 32-bit ARM: the procedure call standard for floats.
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
/// `sh_type` of the ARM build attributes section.
const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
/// The ARM build attributes' tag for the architecture level.
const TAG_CPU_ARCH: u64 = 6;

/// What a binary's ELF header says about where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub bits: u8,
    pub big_endian: bool,
    pub machine: u16,
    /// 32-bit ARM only: the hard-float ABI flag.
    pub hard_float: bool,
}

/// Why a binary was refused; each message says which build to take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("it is not a Linux executable (no ELF header): give the majortom binary or its release archive")]
    NotElf,
    #[error("it is built for {found}, but this system runs {here} binaries: take the {wanted} build")]
    Machine {
        found: String,
        here: String,
        wanted: &'static str,
    },
    #[error("it is built for the soft-float ABI, but this system is hard-float (armhf): take the {wanted} build")]
    SoftFloat { wanted: &'static str },
    #[error("it is built for {found}, but this CPU is {here} (`uname -m`: {uname}): take the {wanted} build")]
    CpuLevel {
        found: &'static str,
        here: &'static str,
        uname: String,
        wanted: &'static str,
    },
}

/// The header of an ELF file (the first 52 or 64 bytes suffice).
pub fn identify(bytes: &[u8]) -> Result<Identity, ArchError> {
    if bytes.len() < 52 || bytes[..4] != *b"\x7fELF" {
        return Err(ArchError::NotElf);
    }
    let bits = match bytes[4] {
        1 => 32,
        2 if bytes.len() >= 64 => 64,
        _ => return Err(ArchError::NotElf),
    };
    let reader = Reader {
        bytes,
        big_endian: bytes[5] == 2,
    };
    let machine = reader.u16(18).ok_or(ArchError::NotElf)?;
    let flags = reader.u32(if bits == 32 { 36 } else { 48 }).ok_or(ArchError::NotElf)?;
    Ok(Identity {
        bits,
        big_endian: reader.big_endian,
        machine,
        hard_float: machine == EM_ARM && flags & EF_ARM_ABI_FLOAT_HARD != 0,
    })
}

/// Checks `new` (a whole binary) against `this` (the running binary's
/// identity) and the kernel's machine name. Returns what it could not
/// tell, if anything, for the caller to say.
pub fn check(new: &[u8], this: &Identity, uname: &str) -> Result<Option<&'static str>, ArchError> {
    let found = identify(new)?;
    let wanted = suggested_target(this, uname);
    if (found.bits, found.big_endian, found.machine) != (this.bits, this.big_endian, this.machine) {
        return Err(ArchError::Machine {
            found: describe(&found),
            here: describe(this),
            wanted,
        });
    }
    if found.machine != EM_ARM || found.bits != 32 {
        return Ok(None);
    }
    if this.hard_float && !found.hard_float {
        return Err(ArchError::SoftFloat { wanted });
    }
    let Some(tag) = cpu_arch(new) else {
        return Ok(Some(
            "it has no ARM attributes section, so its ARM architecture level (v6 or v7) cannot be told",
        ));
    };
    let Some(level) = cpu_level(uname) else {
        return Ok(Some("the kernel's machine name does not say this CPU's ARM level"));
    };
    match required_level(tag) {
        Some(needed) if needed <= level => Ok(None),
        needed => Err(ArchError::CpuLevel {
            found: level_name(needed),
            here: level_name(Some(level)),
            uname: uname.to_owned(),
            wanted,
        }),
    }
}

/// The release target that runs here.
pub fn suggested_target(this: &Identity, uname: &str) -> &'static str {
    match (this.machine, cpu_level(uname)) {
        (EM_ARM, Some(6)) => "arm-unknown-linux-musleabihf",
        (EM_ARM, _) => "armv7-unknown-linux-musleabihf",
        (EM_AARCH64, _) => "aarch64-unknown-linux-musl",
        (EM_X86_64, _) => "x86_64-unknown-linux-musl",
        _ => "matching",
    }
}

fn describe(identity: &Identity) -> String {
    let name = match (identity.machine, identity.bits) {
        (EM_ARM, _) => "32-bit ARM".to_owned(),
        (EM_AARCH64, _) => "64-bit ARM (aarch64)".to_owned(),
        (EM_X86_64, 64) => "x86_64".to_owned(),
        (EM_X86_64, _) => "x32".to_owned(),
        (EM_386, _) => "32-bit x86".to_owned(),
        (EM_RISCV, bits) => format!("{bits}-bit RISC-V"),
        (other, bits) => format!("{bits}-bit machine {other}"),
    };
    match identity.big_endian {
        true => name + ", big-endian",
        false => name,
    }
}

/// The ARM architecture level this CPU runs, from `uname -m` (`armv6l`,
/// `armv7l`, `armv8l`, or `aarch64` for a 32-bit system on a 64-bit
/// kernel). qemu-user answers the level of the CPU it emulates.
fn cpu_level(uname: &str) -> Option<u8> {
    if uname == "aarch64" || uname == "arm64" {
        return Some(8);
    }
    let digit = uname.strip_prefix("armv")?.chars().next()?.to_digit(10)?;
    u8::try_from(digit).ok()
}

/// The level a `Tag_CPU_arch` value needs: v6, v6KZ and v6K run on a Pi 1's
/// ARM1176 (v6KZ); v6T2 needs Thumb-2, which came with v7. M- and
/// R-profile values (microcontrollers) run on no Pi: `None`.
fn required_level(tag: u64) -> Option<u8> {
    match tag {
        0..=5 => Some(5),
        6 | 7 | 9 => Some(6),
        8 | 10 => Some(7),
        14 => Some(8),
        _ => None,
    }
}

fn level_name(level: Option<u8>) -> &'static str {
    match level {
        Some(5) => "ARMv5 or older",
        Some(6) => "ARMv6 (a Pi Zero or 1)",
        Some(7) => "ARMv7",
        Some(8) => "ARMv8",
        Some(_) => "a newer ARM",
        None => "an ARM microcontroller profile",
    }
}

/// `Tag_CPU_arch` from the `.ARM.attributes` section of a 32-bit ARM ELF
/// file (`aeabi` vendor, file scope), if it has one.
pub fn cpu_arch(bytes: &[u8]) -> Option<u64> {
    let reader = Reader {
        bytes,
        big_endian: bytes.get(5) == Some(&2),
    };
    let table = reader.u32(32)? as usize;
    let entry_size = reader.u16(46)? as usize;
    let count = reader.u16(48)? as usize;
    (0..count).find_map(|index| {
        let at = table.checked_add(index.checked_mul(entry_size)?)?;
        if reader.u32(at + 4)? != SHT_ARM_ATTRIBUTES {
            return None;
        }
        let (offset, size) = (reader.u32(at + 16)? as usize, reader.u32(at + 20)? as usize);
        let section = bytes.get(offset..offset.checked_add(size)?)?;
        attribute(section, reader.big_endian, TAG_CPU_ARCH)
    })
}

/// A numeric file-scope attribute of the `aeabi` vendor in a build
/// attributes section: `A`, then subsections (length, vendor name, then
/// tagged sub-subsections of ULEB128 tags and values).
fn attribute(section: &[u8], big_endian: bool, wanted: u64) -> Option<u64> {
    let mut rest = section.strip_prefix(b"A")?;
    while rest.len() >= 4 {
        let reader = Reader {
            bytes: rest,
            big_endian,
        };
        let length = (reader.u32(0)? as usize).clamp(4, rest.len());
        let (subsection, next) = rest.split_at(length);
        rest = next;
        let body = &subsection[4..];
        let vendor_end = body.iter().position(|b| *b == 0)?;
        if &body[..vendor_end] != b"aeabi" {
            continue;
        }
        let mut scopes = &body[vendor_end + 1..];
        while scopes.len() >= 5 {
            let size = Reader {
                bytes: scopes,
                big_endian,
            }
            .u32(1)? as usize;
            let (scope, next) = scopes.split_at(size.clamp(5, scopes.len()));
            scopes = next;
            // Tag_File (1): attributes of the whole file.
            if scope[0] == 1 {
                if let Some(value) = file_attribute(&scope[5..], wanted) {
                    return Some(value);
                }
            }
        }
    }
    None
}

fn file_attribute(mut attributes: &[u8], wanted: u64) -> Option<u64> {
    while !attributes.is_empty() {
        let tag = uleb128(&mut attributes)?;
        // The ABI's rule for the value's type: tags 4, 5 and odd tags
        // above 32 are NUL-terminated strings, 32 is a number and a
        // string, the rest are ULEB128 numbers.
        let is_string = tag == 4 || tag == 5 || (tag > 32 && tag % 2 == 1);
        if tag == 32 {
            uleb128(&mut attributes)?;
        }
        if is_string || tag == 32 {
            let end = attributes.iter().position(|b| *b == 0)?;
            attributes = &attributes[end + 1..];
            continue;
        }
        let value = uleb128(&mut attributes)?;
        if tag == wanted {
            return Some(value);
        }
    }
    None
}

fn uleb128(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            *bytes = &bytes[index + 1..];
            return Some(value);
        }
    }
    None
}

struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let bytes = self.array(at)?;
        Some(match self.big_endian {
            true => u16::from_be_bytes(bytes),
            false => u16::from_le_bytes(bytes),
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let bytes = self.array(at)?;
        Some(match self.big_endian {
            true => u32::from_be_bytes(bytes),
            false => u32::from_le_bytes(bytes),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal 32-bit little-endian ARM ELF file: the header, one
    /// `.ARM.attributes` section with `Tag_CPU_arch` = `cpu_arch` (when
    /// given), and its section header.
    pub(crate) fn arm_elf(hard_float: bool, cpu_arch: Option<u8>) -> Vec<u8> {
        let mut elf = vec![0u8; 52];
        elf[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
        elf[16] = 2; // ET_EXEC
        elf[18..20].copy_from_slice(&EM_ARM.to_le_bytes());
        let flags = 0x0500_0000 | if hard_float { EF_ARM_ABI_FLOAT_HARD } else { 0x200 };
        elf[36..40].copy_from_slice(&flags.to_le_bytes());
        let Some(cpu_arch) = cpu_arch else {
            return elf;
        };
        // Tag_conformance "2.09" (67, a string), Tag_CPU_name "6" (5),
        // Tag_CPU_arch, Tag_ARM_ISA_use = 1.
        let mut attributes = vec![67, b'2', b'.', b'0', b'9', 0, 5, b'6', 0, 6, cpu_arch, 8, 1];
        let mut scope = vec![1];
        scope.extend_from_slice(&(5 + attributes.len() as u32).to_le_bytes());
        scope.append(&mut attributes);
        let mut subsection = (4 + 6 + scope.len() as u32).to_le_bytes().to_vec();
        subsection.extend_from_slice(b"aeabi\0");
        subsection.append(&mut scope);
        let section_offset = elf.len() as u32;
        elf.push(b'A');
        elf.append(&mut subsection);
        let section_size = elf.len() as u32 - section_offset;
        let table = elf.len() as u32;
        let mut header = vec![0u8; 40]; // the null section
        header.extend_from_slice(&[0u8; 40]);
        header[44..48].copy_from_slice(&SHT_ARM_ATTRIBUTES.to_le_bytes());
        header[56..60].copy_from_slice(&section_offset.to_le_bytes());
        header[60..64].copy_from_slice(&section_size.to_le_bytes());
        elf.append(&mut header);
        elf[32..36].copy_from_slice(&table.to_le_bytes());
        elf[46..48].copy_from_slice(&40u16.to_le_bytes());
        elf[48..50].copy_from_slice(&2u16.to_le_bytes());
        elf
    }

    fn elf64(machine: u16) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        elf[18..20].copy_from_slice(&machine.to_le_bytes());
        elf
    }

    fn armhf() -> Identity {
        identify(&arm_elf(true, None)).expect("arm header")
    }

    #[test]
    fn headers_should_give_word_size_machine_and_float_abi() {
        assert_eq!(
            armhf(),
            Identity {
                bits: 32,
                big_endian: false,
                machine: EM_ARM,
                hard_float: true
            }
        );
        let x86 = identify(&elf64(EM_X86_64)).expect("x86_64 header");
        assert_eq!((x86.bits, x86.machine, x86.hard_float), (64, EM_X86_64, false));
        assert_eq!(identify(b"#!/bin/sh\necho hi\n"), Err(ArchError::NotElf));
        assert_eq!(identify(&[0x7f, b'E', b'L', b'F']), Err(ArchError::NotElf));
    }

    #[test]
    fn another_machine_should_be_refused_naming_the_build_to_take() {
        let error = check(&elf64(EM_AARCH64), &armhf(), "armv6l").expect_err("aarch64 on armv6");
        let message = error.to_string();
        assert!(
            message.contains("64-bit ARM (aarch64)")
                && message.contains("32-bit ARM binaries")
                && message.contains("arm-unknown-linux-musleabihf"),
            "{message}"
        );
        let x86 = identify(&elf64(EM_X86_64)).expect("x86_64");
        let error = check(&arm_elf(true, Some(6)), &x86, "x86_64").expect_err("arm on x86_64");
        assert!(error.to_string().contains("x86_64-unknown-linux-musl"), "{error}");
        assert_eq!(check(&elf64(EM_X86_64), &x86, "x86_64"), Ok(None));
    }

    #[test]
    fn armv7_should_be_refused_on_an_armv6_cpu_and_taken_on_armv7_and_64_bit_kernels() {
        let armv7 = arm_elf(true, Some(10));
        let error = check(&armv7, &armhf(), "armv6l").expect_err("armv7 on armv6");
        let message = error.to_string();
        assert!(
            message.contains("built for ARMv7")
                && message.contains("ARMv6 (a Pi Zero or 1)")
                && message.contains("armv6l")
                && message.contains("take the arm-unknown-linux-musleabihf build"),
            "{message}"
        );
        assert_eq!(check(&armv7, &armhf(), "armv7l"), Ok(None));
        assert_eq!(
            check(&armv7, &armhf(), "aarch64"),
            Ok(None),
            "a 32-bit system on a 64-bit kernel"
        );
        let armv6 = arm_elf(true, Some(6));
        for uname in ["armv6l", "armv7l", "armv8l", "aarch64"] {
            assert_eq!(check(&armv6, &armhf(), uname), Ok(None), "{uname}");
        }
        // v6T2 needs Thumb-2; ARMv8 AArch32 code needs an ARMv8.
        assert!(check(&arm_elf(true, Some(8)), &armhf(), "armv6l").is_err());
        assert!(check(&arm_elf(true, Some(14)), &armhf(), "armv7l").is_err());
        // An M-profile (microcontroller) build runs on no Pi.
        assert!(check(&arm_elf(true, Some(11)), &armhf(), "armv7l").is_err());
    }

    #[test]
    fn a_soft_float_build_should_be_refused_on_armhf() {
        let error = check(&arm_elf(false, Some(6)), &armhf(), "armv6l").expect_err("soft float");
        assert!(error.to_string().contains("soft-float"), "{error}");
    }

    #[test]
    fn what_cannot_be_told_should_be_said_not_refused() {
        let note = check(&arm_elf(true, None), &armhf(), "armv6l").expect("accepted");
        assert!(note.is_some_and(|n| n.contains("cannot be told")), "{note:?}");
        let note = check(&arm_elf(true, Some(10)), &armhf(), "weird").expect("accepted");
        assert!(note.is_some(), "{note:?}");
    }

    #[test]
    fn broken_section_tables_should_give_no_level_and_never_panic() {
        let mut elf = arm_elf(true, Some(6));
        assert_eq!(cpu_arch(&elf), Some(6));
        let table = u32::from_le_bytes(elf[32..36].try_into().expect("4 bytes")) as usize;
        elf[table + 40 + 20..table + 40 + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(cpu_arch(&elf), None);
        elf[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(cpu_arch(&elf), None);
        for cut in 0..elf.len() {
            let _ = cpu_arch(&elf[..cut]);
            let _ = identify(&elf[..cut]);
        }
    }
}
