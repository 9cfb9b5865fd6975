//! Helpers of the corruption matrix tests (persistent and shared): seeded
//! bytes, pokes into an image file, and the findings of a report by code;
//! and the golden images, decompressed. Shared by cowfmt's and cowengine's
//! test binaries.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use cowfmt::{Finding, FindingCode};

/// A xorshift64 stream: deterministic, seeded, good enough for test bytes.
pub struct Rng(u64);

impl Rng {
    /// A stream for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for piece in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            piece.copy_from_slice(&word[..piece.len()]);
        }
    }
}

/// `len` bytes of the stream for `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Rng::new(seed).fill(&mut buf);
    buf
}

/// The JUNK pre-fill pattern of the golden images (16-byte lines), as `len` bytes.
pub fn junk(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut line = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("JUNK {line:010x}\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

/// Writes `data` into the file at `path` at byte `offset`.
pub fn poke(path: &Path, offset: u64, data: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(data, offset))
        .unwrap();
}

/// Reads `len` bytes of the file at `path` from byte `offset`.
pub fn peek(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut buf, offset))
        .unwrap();
    buf
}

/// The distinct codes of `findings`.
pub fn code_set(findings: &[Finding]) -> BTreeSet<FindingCode> {
    findings.iter().map(|f| f.code).collect()
}

/// Asserts that the distinct codes of `findings` are exactly `expected`.
pub fn assert_codes(findings: &[Finding], expected: &[FindingCode], case: &str) {
    let expected: BTreeSet<FindingCode> = expected.iter().copied().collect();
    assert_eq!(code_set(findings), expected, "{case}: {findings:#?}");
}

/// The first finding of `code`; panics with every finding when there is none.
pub fn first<'a>(findings: &'a [Finding], code: FindingCode, case: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("{case}: no {code} finding in {findings:#?}"))
}

/// File `file` (`cow` or `origin`) of golden image `name` (`a`, `b2`, ...),
/// decompressed into `dir`.
pub fn golden_image(dir: &tempfile::TempDir, name: &str, file: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden");
    let folder = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{name}-"))
        })
        .unwrap();
    let xz = std::fs::File::open(folder.join(format!("{file}.img.xz"))).unwrap();
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(xz), &mut bytes).unwrap();
    let path = dir.path().join(format!("{name}-{file}.img"));
    std::fs::write(&path, bytes).unwrap();
    path
}
