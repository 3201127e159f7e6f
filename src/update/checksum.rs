//! SHA-256 checksums: computing one (ring, already linked for TLS),
//! parsing `--sha256 HEX`, and finding a file's line in a `SHA256SUMS`
//! file as `sha256sum` writes it (`<hex>  <name>`, or `<hex> *<name>`).

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Sha256 {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Sha256(out)
    }

    /// 64 hexadecimal digits, either case.
    pub fn parse(hex: &str) -> Option<Sha256> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Sha256(out))
    }
}

fn nibble(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// The checksum `sums` (a `SHA256SUMS` file) gives for `name`.
pub fn find_in_sums(sums: &str, name: &str) -> Option<Sha256> {
    sums.lines().find_map(|line| {
        let (hex, rest) = line.trim_end().split_once(' ')?;
        let listed = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
        let listed = listed.strip_prefix("./").unwrap_or(listed);
        (listed == name).then(|| Sha256::parse(hex))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_known_input_should_match_sha256sum() {
        assert_eq!(
            Sha256::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_should_parse_in_either_case_and_refuse_anything_else() {
        let lower = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Sha256::parse(lower), Some(Sha256::of(b"abc")));
        assert_eq!(Sha256::parse(&lower.to_uppercase()), Some(Sha256::of(b"abc")));
        assert_eq!(Sha256::parse(&lower[1..]), None);
        assert_eq!(Sha256::parse(&format!("{}g", &lower[1..])), None);
        assert_eq!(Sha256::parse(&format!("{}é", &lower[2..])), None);
    }

    #[test]
    fn sums_should_give_the_line_of_exactly_that_name() {
        let a = Sha256::of(b"a");
        let b = Sha256::of(b"b");
        let sums = format!(
            "{a}  majortom-0.2.0-arm-unknown-linux-musleabihf.tar.gz\n\
             {b} *majortom-0.2.0-armv7-unknown-linux-musleabihf.tar.gz\r\n\
             not a line\n"
        );
        assert_eq!(
            find_in_sums(&sums, "majortom-0.2.0-arm-unknown-linux-musleabihf.tar.gz"),
            Some(a)
        );
        assert_eq!(
            find_in_sums(&sums, "majortom-0.2.0-armv7-unknown-linux-musleabihf.tar.gz"),
            Some(b)
        );
        assert_eq!(find_in_sums(&sums, "majortom-0.2.0-armv7"), None);
        assert_eq!(find_in_sums(&sums, "arm-unknown-linux-musleabihf.tar.gz"), None);
        assert_eq!(find_in_sums(&format!("{a}  ./majortom\n"), "majortom"), Some(a));
    }
}
