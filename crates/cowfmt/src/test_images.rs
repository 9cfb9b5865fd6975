//! Kernel-written images of `testdata/` for unit tests of any module (no
//! store kind is imported): unpacked from their `.xz` files.

/// The file `relative` (to the workspace root), xz-unpacked.
pub(crate) fn unxz(relative: &str) -> Vec<u8> {
    let path = format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut bytes)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
}

/// The dm-clone metadata image `which` (`formatted` or `final`) of kernel
/// fixture `name` (`testdata/kernel-clone/<name>/meta-<which>.img.xz`).
pub(crate) fn kernel_clone(name: &str, which: &str) -> Vec<u8> {
    unxz(&format!("testdata/kernel-clone/{name}/meta-{which}.img.xz"))
}

/// The dm-clone metadata the 6.12 kernel wrote in golden image d.
pub(crate) fn golden_clone() -> Vec<u8> {
    unxz("testdata/golden/d-clone-partial-hydration/meta.img.xz")
}

/// The `manifest.yaml` text of kernel fixture `name`.
pub(crate) fn kernel_clone_manifest(name: &str) -> String {
    let path = format!(
        "{}/../../testdata/kernel-clone/{name}/manifest.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fails, naming `what` and the first 4 KiB metadata block that differs,
/// unless `got` holds `want`'s blocks byte for byte.
pub(crate) fn assert_same_blocks(what: &str, got: &[u8], want: &[u8]) {
    use crate::pdata::block::BLOCK_BYTES;
    assert!(
        got.len() >= want.len(),
        "{what}: {} bytes, want {}",
        got.len(),
        want.len()
    );
    let differs = got
        .chunks(BLOCK_BYTES)
        .zip(want.chunks(BLOCK_BYTES))
        .position(|(a, b)| a != b);
    assert_eq!(
        differs, None,
        "{what}: this block differs from the kernel's"
    );
}
