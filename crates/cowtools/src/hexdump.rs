//! Hex dumps: offset, sixteen bytes in hex, and the same bytes as ASCII.

use std::io::{self, Write};

/// Writes `bytes` as hex dump lines, numbering offsets from `base`. Runs of
/// identical all-zero lines are folded into one `*` line, as `hexdump -C` does.
pub fn write_hex(out: &mut dyn Write, base: u64, bytes: &[u8]) -> io::Result<()> {
    let mut previous_zero = false;
    let mut folded = false;
    for (i, line) in bytes.chunks(16).enumerate() {
        let offset = base + (i * 16) as u64;
        let zero = line.iter().all(|&b| b == 0) && line.len() == 16;
        if zero && previous_zero {
            if !folded {
                writeln!(out, "*")?;
                folded = true;
            }
            continue;
        }
        previous_zero = zero;
        folded = false;
        let mut hex = String::with_capacity(49);
        for (j, byte) in line.iter().enumerate() {
            if j == 8 {
                hex.push(' ');
            }
            hex.push_str(&hex::encode([*byte]));
            hex.push(' ');
        }
        let ascii: String = line
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{offset:012x}  {hex:<49} |{ascii}|")?;
    }
    writeln!(out, "{:012x}", base + bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_folding() {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"SnAp");
        let mut out = Vec::new();
        write_hex(&mut out, 0, &bytes).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            "000000000000  53 6e 41 70 00 00 00 00  00 00 00 00 00 00 00 00  |SnAp............|"
        );
        assert_eq!(lines[2], "*");
        assert_eq!(lines.last().unwrap(), &"000000000040");
    }
}
