//! Reading a dump to restore a store of either kind from it (`mkcow
//! --from-dump`): the file or stdin, its syntax (by the extension, otherwise
//! by the first character), the head fields both restores use, the records
//! read as the kind's schema has them (`persistent::dump::text`,
//! `shared::dump::text`), and every record spooled as it is parsed
//! ([`spool`](crate::dump_read::spool)), so that memory stays flat in the
//! number of records. A clone dump's runs go straight into one bit per
//! region ([`read_clone`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::de::{Deserialize, Deserializer, Error as _, IgnoredAny};
use serde_json::{Map, Value};

use crate::clone::dump::text::{self as clone_text, ReadBack as CloneReadBack};
use crate::dump_read::spool::{RecordCheck, Spool, SpoolWorker};
use crate::dump_read::{
    self, peek_first_byte, struct_fields, DumpFields, DumpReadError, DumpRequest, DumpSource,
    DumpSyntax, FlatRecord, RecordSink,
};
use crate::kind::StoreKind;
use crate::persistent::dump::text as persistent_text;
use crate::persistent::dump::{RestoreHead, DUMP_FORMAT_VERSION};
use crate::persistent::ExceptionRecord;
use crate::shared::dump::text as shared_text;
use crate::shared::dump::{SharedRecord, SharedRestoreHead};

/// Why a dump could not be read for a restore; each names the dump
/// (`stdin` for `-`).
#[derive(Debug, thiserror::Error)]
pub enum RestoreInputError {
    /// The dump is not one a restore can use, or not here.
    #[error("{0}")]
    Unusable(String),
    /// Reading the dump, or keeping its records, failed.
    #[error("{what}")]
    Io {
        /// What failed, as a sentence.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

type InputResult<T> = std::result::Result<T, RestoreInputError>;

/// Refuses a dump of another format version.
pub fn check_dump_version(version: Option<u32>, path: &Path) -> crate::Result<()> {
    if let Some(version) = version.filter(|&v| v != DUMP_FORMAT_VERSION) {
        return Err(crate::Error::Invalid(format!(
            "{}: dump format_version {} is not supported (this mkcow reads version {DUMP_FORMAT_VERSION})",
            path.display(),
            version
        )));
    }
    Ok(())
}

/// The progress of reading records: `show(count)` every so many records
/// (0 when the dump is read again), `clear()` after each pass.
pub struct ReadProgress<'p> {
    /// Shows the records read so far.
    pub show: &'p dyn Fn(u64),
    /// Clears the display.
    pub clear: &'p dyn Fn(),
}

fn temp_error(what: &str, source: io::Error) -> RestoreInputError {
    RestoreInputError::Io {
        what: what.to_string(),
        source,
    }
}

const KEEP_RECORDS: &str = "cannot keep the records in a temporary file (in $TMPDIR)";

/// The list a restore reads.
const LIST: &str = "exceptions";
/// Bytes read from the dump at a time.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Records between two updates of the progress counter.
const PROGRESS_EVERY: u64 = 1 << 16;

/// A dump read for a restore.
pub struct ReadDump {
    /// The head fields, to decode as [`RestoreHead`] or [`SharedRestoreHead`].
    pub fields: DumpFields,
    /// The kind the dump names, if it names one.
    pub dumped_kind: Option<StoreKind>,
    /// The records: `[old_chunk, new_chunk]`, or for a shared dump
    /// `[origin_chunk, cow_chunk, share mask]`.
    pub spool: Spool,
    /// The check planned at the first record and run on every one while
    /// they were spooled; `None` when none could be planned then.
    pub checked: Option<Box<dyn RecordCheck>>,
}

/// Plans a [`RecordCheck`] at the first record from the head fields read
/// before it (`true`: shared records); `None` when they do not suffice.
pub type CheckPlan<'p> = &'p dyn Fn(bool, &Map<String, Value>) -> Option<Box<dyn RecordCheck>>;

impl ReadDump {
    /// Decodes the head fields as `T`; a missing or mistyped field is refused
    /// in one sentence naming the dump.
    pub fn head<T: serde::de::DeserializeOwned>(&self, path: &Path) -> InputResult<T> {
        self.fields.decode().map_err(|e| unusable(path, &e))
    }
}

/// Reads the dump at `path` (`-`: stdin). Its records are read as shared
/// records when `kind` (the command line's) or else the dump's `kind` field
/// before the list says shared, as persistent ones when either says another
/// kind. When neither does, a file's records are skipped and the file read
/// again once its `kind` field is known; stdin's are read as persistent ones,
/// and a `kind: shared` after them is refused.
pub fn read<'p>(
    path: &Path,
    kind: Option<StoreKind>,
    progress: &'p ReadProgress<'p>,
    plan: CheckPlan<'p>,
) -> InputResult<ReadDump> {
    let mut decided = kind;
    loop {
        let (fields, mut sink) = read_once(path, decided, progress, plan)?;
        let dumped_kind = fields
            .fields
            .get("kind")
            .map(StoreKind::deserialize)
            .transpose()
            .map_err(|e| unusable(path, &DumpReadError::Syntax(format!("kind: {e}"))))?;
        let shared = kind.or(dumped_kind) == Some(StoreKind::Shared);
        if sink.skipped {
            decided = Some(kind.or(dumped_kind).unwrap_or(StoreKind::Persistent));
            continue;
        }
        match sink.shared {
            Some(read_as) if read_as != shared => {
                if path == Path::new("-") {
                    return Err(RestoreInputError::Unusable(format!(
                        "{}: the kind field comes after the exceptions and says {}; give --kind {} to read them from stdin",
                        shown(path),
                        dumped_kind.unwrap_or(StoreKind::Persistent),
                        dumped_kind.unwrap_or(StoreKind::Persistent)
                    )));
                }
                decided = dumped_kind;
            }
            _ => {
                let (spool, checked) = match sink.spool.take() {
                    Some(worker) => worker.finish().map_err(|e| temp_error(KEEP_RECORDS, e))?,
                    None => (
                        Spool::new(if shared { 3 } else { 2 }).map_err(|e| {
                            temp_error(
                                "cannot create a temporary file (in $TMPDIR) for the records",
                                e,
                            )
                        })?,
                        None,
                    ),
                };
                return Ok(ReadDump {
                    fields,
                    dumped_kind,
                    spool,
                    checked,
                });
            }
        }
    }
}

/// One pass over the dump; records are read as shared ones when `kind`, or
/// else the `kind` field read before the list, says so.
fn read_once<'p>(
    path: &Path,
    kind: Option<StoreKind>,
    progress: &'p ReadProgress<'p>,
    plan: CheckPlan<'p>,
) -> InputResult<(DumpFields, SpoolSink<'p>)> {
    let mut input = open(path)?;
    let mut reopen = || reopen_file(path);
    let by_extension = DumpSyntax::of_extension(path);
    let first = peek_first_byte(&mut input).map_err(|e| cannot_read(path, e))?;
    let syntax = by_extension.unwrap_or(DumpSyntax::of_first_byte(first));
    let keep = kept_fields();
    let mut sink = SpoolSink::new(kind, path != Path::new("-"), progress, plan);
    let request = DumpRequest {
        list: LIST,
        keep: &keep,
        sink: &mut sink,
    };
    let source = DumpSource {
        input,
        reopen: (path != Path::new("-")).then_some(&mut reopen as _),
    };
    let result = dump_read::read_dump(source, syntax, request);
    (progress.clear)();
    let result = match result {
        // Without an extension, text that opens like JSON but is not JSON may
        // still be YAML (a flow mapping): a file is read again as YAML.
        Err(DumpReadError::Syntax(json))
            if by_extension.is_none()
                && syntax == DumpSyntax::Json
                && path != Path::new("-")
                && sink.io_error.is_none() =>
        {
            sink = SpoolSink::new(kind, true, progress, plan);
            let request = DumpRequest {
                list: LIST,
                keep: &keep,
                sink: &mut sink,
            };
            let mut reopen_again = || reopen_file(path);
            let source = DumpSource {
                input: open(path)?,
                reopen: Some(&mut reopen_again),
            };
            let yaml = dump_read::read_dump(source, DumpSyntax::Yaml, request);
            (progress.clear)();
            yaml.map_err(|_| DumpReadError::Syntax(json))
        }
        other => other,
    };
    if let Some(e) = sink.io_error.take() {
        return Err(temp_error(KEEP_RECORDS, e));
    }
    let fields = result.map_err(|e| match e {
        DumpReadError::Io(e) => cannot_read(path, e),
        DumpReadError::Syntax(why) if sink.guessed => unusable(
            path,
            &DumpReadError::Syntax(format!(
                "{why} (no kind came before the records, so they were read as persistent ones; give --kind to say otherwise)"
            )),
        ),
        syntax => unusable(path, &syntax),
    })?;
    if !fields.has_list && !names_clone(&fields) {
        return Err(RestoreInputError::Unusable(format!(
            "{}: not a usable cowdump dump: missing field `{LIST}`",
            shown(path)
        )));
    }
    Ok((fields, sink))
}

/// Whether the dump's `kind` field says clone (its list is `hydrated`, read by
/// [`read_clone`]).
fn names_clone(fields: &DumpFields) -> bool {
    fields.fields.get("kind").and_then(Value::as_str) == Some(StoreKind::Clone.as_str())
}

/// Reads the clone dump at `path` (`-`: stdin): its sizes and one bit per
/// region ([`clone_text::read_document`]).
pub fn read_clone(path: &Path) -> InputResult<CloneReadBack> {
    let mut input = open(path)?;
    let first = peek_first_byte(&mut input).map_err(|e| cannot_read(path, e))?;
    let syntax = DumpSyntax::of_extension(path).unwrap_or(DumpSyntax::of_first_byte(first));
    let mut reopen = || reopen_file(path);
    let source = DumpSource {
        input,
        reopen: (path != Path::new("-")).then_some(&mut reopen as _),
    };
    clone_text::read_document(source, syntax).map_err(|e| match e {
        DumpReadError::Io(e) => cannot_read(path, e),
        syntax => unusable(path, &syntax),
    })
}

fn open(path: &Path) -> InputResult<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            io::stdin().lock(),
        )));
    }
    if path.is_dir() {
        return Err(RestoreInputError::Unusable(format!(
            "{}: is a directory, not a dump file",
            path.display()
        )));
    }
    let file = File::open(path).map_err(|e| cannot_read(path, e))?;
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file)))
}

fn reopen_file(path: &Path) -> io::Result<Box<dyn BufRead>> {
    Ok(Box::new(BufReader::with_capacity(
        READ_BUFFER_BYTES,
        File::open(path)?,
    )))
}

/// The head fields of both restores, and `kind`.
fn kept_fields() -> Vec<&'static str> {
    let mut keep: Vec<&'static str> = struct_fields::<RestoreHead>().to_vec();
    for field in struct_fields::<SharedRestoreHead>() {
        if !keep.contains(field) {
            keep.push(field);
        }
    }
    keep
}

fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

fn unusable(path: &Path, e: &DumpReadError) -> RestoreInputError {
    RestoreInputError::Unusable(format!("{}: not a usable cowdump dump: {e}", shown(path)))
}

fn cannot_read(path: &Path, source: io::Error) -> RestoreInputError {
    RestoreInputError::Io {
        what: format!("{}: cannot read the dump", shown(path)),
        source,
    }
}

/// Spools each record as the restore of its kind will read it.
struct SpoolSink<'p> {
    /// The command line's kind, which decides the record shape when given.
    kind: Option<StoreKind>,
    /// Whether the records are read as shared ones, once the first is read.
    shared: Option<bool>,
    /// Whether records of an undecided kind are skipped (to read them again).
    skip_undecided: bool,
    /// Whether some were.
    skipped: bool,
    /// Whether the records were read as persistent ones for want of a kind.
    guessed: bool,
    /// Started at the first record, as wide as its kind needs.
    spool: Option<SpoolWorker>,
    /// Plans the check run while spooling.
    plan: CheckPlan<'p>,
    io_error: Option<io::Error>,
    progress: &'p ReadProgress<'p>,
}

impl<'p> SpoolSink<'p> {
    fn new(
        kind: Option<StoreKind>,
        skip_undecided: bool,
        progress: &'p ReadProgress<'p>,
        plan: CheckPlan<'p>,
    ) -> Self {
        SpoolSink {
            kind,
            shared: None,
            skip_undecided,
            skipped: false,
            guessed: false,
            spool: None,
            plan,
            io_error: None,
            progress,
        }
    }

    fn push(&mut self, fields: &Map<String, Value>, record: &[u64]) -> io::Result<u64> {
        let spool = match &mut self.spool {
            Some(spool) => spool,
            None => {
                let check = (self.plan)(record.len() == 3, fields);
                self.spool.insert(SpoolWorker::start(record.len(), check)?)
            }
        };
        spool.push(record)
    }

    /// Whether records are shared ones; `None` to skip them.
    fn shape(&mut self, fields: &Map<String, Value>) -> Option<bool> {
        if self.shared.is_none() {
            let named = fields
                .get("kind")
                .and_then(|k| StoreKind::deserialize(k).ok());
            match self.kind.or(named) {
                None if self.skip_undecided => return None,
                kind => {
                    self.guessed = kind.is_none();
                    self.shared = Some(kind == Some(StoreKind::Shared));
                }
            }
        }
        self.shared
    }
}

/// The numbers of a record line in the schema's own field order, or `None`
/// for anything else (left to serde, which words any error).
fn flat_numbers(shared: bool, line: &FlatRecord<'_>) -> Option<([u64; 3], usize)> {
    if shared {
        let r = shared_text::flat_record(line)?;
        Some(([r.origin_chunk, r.cow_chunk, r.snapshots.0], 3))
    } else {
        let r = persistent_text::flat_record(line)?;
        Some(([r.old_chunk, r.new_chunk, 0], 2))
    }
}

impl RecordSink for SpoolSink<'_> {
    fn flat_record(&mut self, fields: &Map<String, Value>, record: &FlatRecord<'_>) -> bool {
        let Some(shared) = self.shape(fields) else {
            return false;
        };
        let Some((numbers, width)) = flat_numbers(shared, record) else {
            return false;
        };
        match self.push(fields, &numbers[..width]) {
            Ok(count) => {
                if count % PROGRESS_EVERY == 0 {
                    (self.progress.show)(count);
                }
                true
            }
            Err(_) => false,
        }
    }

    fn restart(&mut self) {
        self.shared = None;
        self.skipped = false;
        self.guessed = false;
        self.spool = None;
        (self.progress.show)(0);
    }

    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error> {
        let stored = match self.shape(fields) {
            None => {
                IgnoredAny::deserialize(element)?;
                self.skipped = true;
                return Ok(());
            }
            Some(true) => {
                let r = SharedRecord::deserialize(element)?;
                self.push(fields, &[r.origin_chunk, r.cow_chunk, r.snapshots.0])
            }
            Some(false) => {
                let r = ExceptionRecord::deserialize(element)?;
                self.push(fields, &[r.old_chunk, r.new_chunk])
            }
        };
        let count = match stored {
            Ok(count) => count,
            Err(e) => {
                self.io_error = Some(e);
                return Err(D::Error::custom("cannot keep the record"));
            }
        };
        if count % PROGRESS_EVERY == 0 {
            (self.progress.show)(count);
        }
        Ok(())
    }
}
