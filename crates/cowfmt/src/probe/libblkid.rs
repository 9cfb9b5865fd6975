//! util-linux's libblkid, loaded at run time with `dlopen`, probing every
//! superblock and partition table signature it knows the way `wipefs
//! --no-act` does: each magic found is hidden in the probe's buffers and the
//! prober is run again, so a second magic of the same kind (a backup GPT, the
//! second LUKS header) is listed too. Nothing is written to the device.
//!
//! The library is loaded rather than linked so that the build needs neither
//! its headers nor libclang, and a system without it falls back to `wipefs`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use super::{describe_place, describe_type, Signature, Source, Unavailable};

/// The shared object loaded: the soname of every libblkid since 2009.
pub const SONAME: &str = "libblkid.so.1";

const SUBLKS_LABEL: c_int = 1 << 1;
const SUBLKS_TYPE: c_int = 1 << 5;
const SUBLKS_USAGE: c_int = 1 << 7;
const SUBLKS_MAGIC: c_int = 1 << 9;
const SUBLKS_BADCSUM: c_int = 1 << 10;
const PARTS_FORCE_GPT: c_int = 1 << 1;
const PARTS_MAGIC: c_int = 1 << 3;

/// More signatures than any real device carries; a bound on the probe loop.
const MAX_SIGNATURES: usize = 256;

type Probe = *mut c_void;

type NewProbe = unsafe extern "C" fn(*const c_char) -> Probe;
type FreeProbe = unsafe extern "C" fn(Probe);
type SetFlag = unsafe extern "C" fn(Probe, c_int) -> c_int;
type Step = unsafe extern "C" fn(Probe) -> c_int;
type LookupValue =
    unsafe extern "C" fn(Probe, *const c_char, *mut *const c_char, *mut usize) -> c_int;
type GetSize = unsafe extern "C" fn(Probe) -> i64;
type HideRange = unsafe extern "C" fn(Probe, u64, u64) -> c_int;

/// The entry points used, resolved once.
struct Library {
    new_probe_from_filename: NewProbe,
    free_probe: FreeProbe,
    enable_superblocks: SetFlag,
    set_superblocks_flags: SetFlag,
    enable_partitions: SetFlag,
    set_partitions_flags: SetFlag,
    do_probe: Step,
    lookup_value: LookupValue,
    get_size: GetSize,
    /// Since util-linux 2.31; without it only the first magic of each prober is listed.
    hide_range: Option<HideRange>,
    step_back: Option<Step>,
}

fn library() -> Result<&'static Library, Unavailable> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(load)
        .as_ref()
        .map_err(|reason| Unavailable::new("libblkid", reason.clone()))
}

fn load() -> Result<Library, String> {
    let soname = CString::new(SONAME).expect("no NUL in the soname");
    // SAFETY: dlopen takes a NUL-terminated name; the handle is never closed,
    // so the resolved functions stay valid for the life of the process.
    let handle = unsafe { libc::dlopen(soname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("cannot load {SONAME}: {}", dl_error()));
    }
    let symbol = |name: &str| -> Option<*mut c_void> {
        let name = CString::new(name).expect("no NUL in a symbol name");
        // SAFETY: a valid handle and a NUL-terminated name.
        let found = unsafe { libc::dlsym(handle, name.as_ptr()) };
        (!found.is_null()).then_some(found)
    };
    let required = |name: &str| symbol(name).ok_or_else(|| format!("{SONAME} has no {name}"));
    // SAFETY: each symbol is the libblkid function of that name, whose C
    // signature (blkid.h) is the one it is cast to.
    unsafe {
        Ok(Library {
            new_probe_from_filename: cast(required("blkid_new_probe_from_filename")?),
            free_probe: cast(required("blkid_free_probe")?),
            enable_superblocks: cast(required("blkid_probe_enable_superblocks")?),
            set_superblocks_flags: cast(required("blkid_probe_set_superblocks_flags")?),
            enable_partitions: cast(required("blkid_probe_enable_partitions")?),
            set_partitions_flags: cast(required("blkid_probe_set_partitions_flags")?),
            do_probe: cast(required("blkid_do_probe")?),
            lookup_value: cast(required("blkid_probe_lookup_value")?),
            get_size: cast(required("blkid_probe_get_size")?),
            hide_range: symbol("blkid_probe_hide_range").map(|f| cast(f)),
            step_back: symbol("blkid_probe_step_back").map(|f| cast(f)),
        })
    }
}

/// A resolved symbol as the function pointer type `F`.
///
/// # Safety
/// `F` must be the function's real signature.
unsafe fn cast<F: Copy>(symbol: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size (checked); the caller vouches for the signature.
    unsafe { std::mem::transmute_copy(&symbol) }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: checked non-NULL above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A probe, freed when dropped.
struct Handle<'a> {
    library: &'a Library,
    probe: Probe,
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: the probe came from blkid_new_probe_from_filename and is freed once.
        unsafe { (self.library.free_probe)(self.probe) }
    }
}

impl Handle<'_> {
    /// The raw value `name` of the current match.
    fn value(&self, name: &str) -> Option<Vec<u8>> {
        let name = CString::new(name).expect("no NUL in a value name");
        let mut data: *const c_char = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: a live probe, a NUL-terminated name and two out pointers.
        let rc =
            unsafe { (self.library.lookup_value)(self.probe, name.as_ptr(), &mut data, &mut len) };
        if rc != 0 || data.is_null() {
            return None;
        }
        // SAFETY: libblkid hands out `len` bytes at `data`, valid until the next probe call.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        Some(bytes.to_vec())
    }

    /// The text value `name` of the current match, without its trailing NUL.
    fn text(&self, name: &str) -> Option<String> {
        self.value(name).map(|bytes| {
            let text = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
            String::from_utf8_lossy(text).into_owned()
        })
    }
}

/// Every signature libblkid finds on the file or device at `path`.
pub fn probe(path: &Path) -> Result<Vec<Signature>, Unavailable> {
    let library = library()?;
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Unavailable::new("libblkid", "the path holds a NUL byte".to_string()))?;
    // SAFETY: a NUL-terminated path; NULL is checked below.
    let raw = unsafe { (library.new_probe_from_filename)(name.as_ptr()) };
    if raw.is_null() {
        return Err(Unavailable::new(
            "libblkid",
            format!(
                "cannot probe {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ),
        ));
    }
    let handle = Handle {
        library,
        probe: raw,
    };
    // SAFETY: a live probe; the flags are blkid.h's.
    unsafe {
        (library.enable_superblocks)(raw, 1);
        (library.set_superblocks_flags)(
            raw,
            SUBLKS_MAGIC | SUBLKS_TYPE | SUBLKS_USAGE | SUBLKS_LABEL | SUBLKS_BADCSUM,
        );
        (library.enable_partitions)(raw, 1);
        (library.set_partitions_flags)(raw, PARTS_MAGIC | PARTS_FORCE_GPT);
    }
    // SAFETY: a live probe.
    let device_bytes = u64::try_from(unsafe { (library.get_size)(raw) }).unwrap_or(0);
    let mut found = Vec::new();
    while found.len() < MAX_SIGNATURES {
        // SAFETY: a live probe.
        match unsafe { (library.do_probe)(raw) } {
            0 => {}
            1 => break,
            _ => {
                return Err(Unavailable::new(
                    "libblkid",
                    format!(
                        "probing {} failed: {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    ),
                ))
            }
        }
        let Some((signature, magic_len)) = current(&handle, device_bytes) else {
            continue;
        };
        let offset = signature.offset;
        found.push(signature);
        if let (Some(hide), Some(step_back), true) =
            (library.hide_range, library.step_back, magic_len > 0)
        {
            // SAFETY: a live probe; hiding only changes the probe's buffers.
            unsafe {
                hide(raw, offset, magic_len as u64);
                step_back(raw);
            }
        }
    }
    Ok(found)
}

/// The signature the probe matched last, with the length of its magic.
fn current(handle: &Handle<'_>, device_bytes: u64) -> Option<(Signature, usize)> {
    let (name, partition_table, magic, offset) = match handle.text("TYPE") {
        Some(name) => (name, false, "SBMAGIC", "SBMAGIC_OFFSET"),
        None => (handle.text("PTTYPE")?, true, "PTMAGIC", "PTMAGIC_OFFSET"),
    };
    let offset: u64 = handle.text(offset)?.trim().parse().ok()?;
    let magic_len = handle.value(magic).map_or(0, |m| m.len());
    let usage = handle.text("USAGE");
    let label = handle.text("LABEL").filter(|l| !l.is_empty());
    Some((
        Signature {
            what: describe_type(&name, usage.as_deref(), partition_table),
            place: describe_place(&name, offset, device_bytes, partition_table),
            name,
            offset,
            label,
            source: Source::Libblkid,
        },
        magic_len,
    ))
}
