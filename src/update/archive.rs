//! The binary inside what was downloaded or uploaded: either the binary
//! itself, or a release archive from `cross/dist.sh` (`.tar.gz`: one gzip
//! member around a ustar stream), from which `<folder>/majortom` is taken.
//!
//! gzip's inflate is miniz_oxide's; the gzip frame (header, CRC-32, size)
//! and the tar walk are ours, a few dozen lines each.

/// The largest archive contents accepted (a release archive unpacks to
/// about 2.5 MB).
const MAX_UNPACKED: usize = 32 << 20;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BLOCK: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("it is neither a majortom binary nor a release archive (.tar.gz)")]
    Unknown,
    #[error("the archive is damaged ({0}): download it again")]
    Damaged(&'static str),
    #[error("the archive holds no `majortom` binary: give a majortom release archive or the binary itself")]
    NoBinary,
}

/// The binary in `bytes`: the bytes themselves if they are an ELF file,
/// else the `majortom` entry of a `.tar.gz` archive.
pub fn binary_in(bytes: Vec<u8>) -> Result<Vec<u8>, ArchiveError> {
    if bytes.starts_with(b"\x7fELF") {
        return Ok(bytes);
    }
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Err(ArchiveError::Unknown);
    }
    let tar = gunzip(&bytes)?;
    binary_in_tar(&tar)
}

/// One gzip member (RFC 1952), its CRC-32 and length checked.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let damaged = ArchiveError::Damaged;
    if bytes.len() < 18 || bytes[2] != 8 {
        return Err(damaged("not a deflate gzip stream"));
    }
    let flags = bytes[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let length = bytes.get(at..at + 2).ok_or(damaged("truncated header"))?;
        at += 2 + usize::from(u16::from_le_bytes([length[0], length[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = bytes.get(at..).and_then(|rest| rest.iter().position(|b| *b == 0));
            at += end.ok_or(damaged("truncated header"))? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let trailer = bytes.len() - 8;
    let deflated = bytes.get(at..trailer).ok_or(damaged("truncated header"))?;
    let data = miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, MAX_UNPACKED)
        .map_err(|_| damaged("bad or oversized deflate data"))?;
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if word(trailer) != crc32(&data) || word(trailer + 4) != data.len() as u32 {
        return Err(damaged("checksum mismatch"));
    }
    Ok(data)
}

/// CRC-32 (IEEE, reflected), bit by bit: a table would be faster, but this
/// runs once per update over a few MB.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The regular file named `majortom` (at the top, or in the archive's one
/// folder) of a ustar stream.
fn binary_in_tar(tar: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let mut at = 0;
    while let Some(header) = tar.get(at..at + BLOCK) {
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = octal(&header[124..136]).ok_or(ArchiveError::Damaged("bad tar header"))?;
        let data_at = at + BLOCK;
        let name = field(&header[0..100]);
        let prefix = field(&header[345..500]);
        let regular = matches!(header[156], b'0' | 0);
        let path = match prefix.is_empty() {
            true => name.to_vec(),
            false => [prefix, b"/", name].concat(),
        };
        let depth = path.iter().filter(|b| **b == b'/').count();
        if regular && depth <= 1 && (path == b"majortom" || path.ends_with(b"/majortom")) {
            let data = tar
                .get(data_at..data_at + size)
                .ok_or(ArchiveError::Damaged("truncated tar entry"))?;
            return Ok(data.to_vec());
        }
        at = data_at + size.div_ceil(BLOCK) * BLOCK;
    }
    Err(ArchiveError::NoBinary)
}

/// A NUL-terminated header field.
fn field(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// A tar number: octal digits, padded with spaces or NULs.
fn octal(bytes: &[u8]) -> Option<usize> {
    let digits = field(bytes).trim_ascii();
    if digits.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(digits).ok()?;
    usize::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;

    fn tar_entry(path: &str, data: &[u8], typeflag: u8) -> Vec<u8> {
        let mut header = vec![0u8; BLOCK];
        header[..path.len()].copy_from_slice(path.as_bytes());
        let size = format!("{:011o}\0", data.len());
        header[124..136].copy_from_slice(size.as_bytes());
        header[156] = typeflag;
        header[257..263].copy_from_slice(b"ustar\0");
        let mut entry = header;
        entry.extend_from_slice(data);
        entry.resize(entry.len().div_ceil(BLOCK) * BLOCK, 0);
        entry
    }

    fn tar(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut tar: Vec<u8> = entries.iter().flat_map(|(p, d, t)| tar_entry(p, d, *t)).collect();
        tar.extend_from_slice(&[0u8; 2 * BLOCK]);
        tar
    }

    /// gzip's own output.
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .args(["-9", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run gzip");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let output = child.wait_with_output().expect("gzip output");
        writer.join().expect("writer").expect("write to gzip");
        output.stdout
    }

    #[test]
    fn crc32_should_match_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_release_archive_should_give_its_binary() {
        let binary = b"\x7fELF the binary".repeat(1000);
        let archive = gzip(&tar(&[
            ("majortom-0.2.0-x/", b"", b'5'),
            ("majortom-0.2.0-x/README.md", b"# majortom", b'0'),
            ("majortom-0.2.0-x/majortom", &binary, b'0'),
            ("majortom-0.2.0-x/majortom.toml", b"# config", b'0'),
        ]));
        assert_eq!(binary_in(archive), Ok(binary.clone()));
        assert_eq!(binary_in(binary.clone()), Ok(binary), "a bare binary is itself");
    }

    #[test]
    fn an_archive_without_the_binary_or_damaged_should_be_refused() {
        let other = gzip(&tar(&[
            ("x/majortom.toml", b"# config", b'0'),
            ("a/b/majortom", b"deep", b'0'),
        ]));
        assert_eq!(binary_in(other), Err(ArchiveError::NoBinary));
        let mut damaged = gzip(&tar(&[("x/majortom", b"\x7fELF", b'0')]));
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x55;
        assert!(matches!(binary_in(damaged), Err(ArchiveError::Damaged(_))));
        assert_eq!(binary_in(b"#!/bin/sh\n".to_vec()), Err(ArchiveError::Unknown));
        let truncated = gzip(&tar(&[("x/majortom", &[7u8; 5000], b'0')]));
        for cut in [3, 12, 40, truncated.len() - 3] {
            assert!(binary_in(truncated[..cut].to_vec()).is_err(), "cut at {cut}");
        }
    }
}
