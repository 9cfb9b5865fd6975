//! The YAML reader: saphyr-parser's event stream over the input, read as
//! characters from a buffered reader. Each list element is turned into a small
//! value and decoded on its own; the rest of the document is walked event by
//! event. Scalars resolve as YAML 1.2's core schema says (what serde_yaml
//! does): `null`/`~`/empty, booleans, integers (decimal, `0x`, `0o`), floats,
//! and strings for the rest and for every quoted scalar.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::rc::Rc;

use saphyr_parser::{BufferedInput, Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use super::{duplicate, element, DumpFields, DumpReadError, DumpRequest, RecordSink};

/// Reads a YAML dump; see [`super::read_dump`].
pub(super) fn read<S: RecordSink>(
    input: impl BufRead,
    mut request: DumpRequest<'_, S>,
) -> Result<DumpFields, DumpReadError> {
    let mut out = DumpFields::default();
    let mut events = Events::new(Utf8Chars::new(input, false));
    read_document(&mut events, &mut request, &mut out)?;
    Ok(out)
}

/// Reads one document (a mapping of fields) into `out`.
pub(super) fn read_document<'a, S: RecordSink>(
    events: &mut Events<'a, impl Iterator<Item = char> + 'a>,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
) -> Result<(), DumpReadError> {
    let (mut event, mut span) = events.next()?;
    while matches!(event, Event::StreamStart | Event::DocumentStart(_)) {
        (event, span) = events.next()?;
    }
    if !matches!(event, Event::MappingStart(..)) {
        let what = if event == Event::StreamEnd {
            "the dump is empty; expected a mapping of fields".to_string()
        } else {
            format!("{}: expected a mapping of fields", at(&span))
        };
        return Err(DumpReadError::Syntax(what));
    }
    loop {
        let (key, key_span) = events.next()?;
        let key = match key {
            Event::MappingEnd => break,
            Event::Scalar(text, ..) => text.into_owned(),
            _ => {
                return Err(DumpReadError::Syntax(format!(
                    "{}: expected a field name",
                    at(&key_span)
                )))
            }
        };
        let (value, value_span) = events.next()?;
        if key == request.list {
            if out.has_list {
                return Err(syntax(&key_span, &duplicate(&key)));
            }
            out.has_list = true;
            read_list(events, value, &value_span, request, out)?;
        } else if request.keep.contains(&key.as_str()) {
            if out.fields.contains_key(&key) {
                return Err(syntax(&key_span, &duplicate(&key)));
            }
            let value = events.value(value, &value_span)?;
            out.fields.insert(key, value);
        } else {
            events.skip(value, &value_span)?;
        }
    }
    loop {
        let (event, span) = events.next()?;
        match event {
            Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(()),
            _ => return Err(syntax(&span, "a second document; a dump is one document")),
        }
    }
}

fn read_list<'a, S: RecordSink>(
    events: &mut Events<'a, impl Iterator<Item = char> + 'a>,
    start: Event<'a>,
    span: &Span,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
) -> Result<(), DumpReadError> {
    if !matches!(start, Event::SequenceStart(..)) {
        return Err(syntax(span, &format!("{} must be a list", request.list)));
    }
    loop {
        let (event, span) = events.next()?;
        if event == Event::SequenceEnd {
            return Ok(());
        }
        let place = || format!("{} at {}", element(request.list, out.records), at(&span));
        let value = events.value(event, &span)?;
        request
            .sink
            .record(&out.fields, value)
            .map_err(|e| DumpReadError::Syntax(format!("{}: {e}", place())))?;
        out.records += 1;
    }
}

/// `line L column C` of the start of `span`.
fn at(span: &Span) -> String {
    format!("line {} column {}", span.start.line(), span.start.col() + 1)
}

fn syntax(span: &Span, what: &str) -> DumpReadError {
    DumpReadError::Syntax(format!("{}: {what}", at(span)))
}

/// The parser's events, with the anchored values seen so far for aliases.
pub(super) struct Events<'a, I: Iterator<Item = char> + 'a> {
    parser: Parser<'a, BufferedInput<I>>,
    anchors: HashMap<usize, Value>,
    failure: Rc<RefCell<Option<DumpReadError>>>,
}

impl<'a, R: BufRead + 'a> Events<'a, Utf8Chars<R>> {
    /// The events of the characters `chars` yields.
    pub(super) fn new(chars: Utf8Chars<R>) -> Self {
        let failure = Rc::clone(&chars.failure);
        Events {
            parser: Parser::new_from_iter(chars),
            anchors: HashMap::new(),
            failure,
        }
    }
}

impl<'a, I: Iterator<Item = char> + 'a> Events<'a, I> {
    fn next(&mut self) -> Result<(Event<'a>, Span), DumpReadError> {
        let next = self.parser.next_event();
        if let Some(failure) = self.failure.borrow_mut().take() {
            return Err(failure);
        }
        match next {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(DumpReadError::Syntax(format!(
                "line {} column {}: {}",
                e.marker().line(),
                e.marker().col() + 1,
                e.info()
            ))),
            None => Err(DumpReadError::Syntax(
                "the dump ends in the middle of the document".to_string(),
            )),
        }
    }

    /// The value of the node that starts with `event`.
    fn value(&mut self, event: Event<'a>, span: &Span) -> Result<Value, DumpReadError> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                (scalar(&text, style, tag.as_deref()), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.value(event, &span)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let (event, key_span) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = match self.value(event, &key_span)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let (event, span) = self.next()?;
                    let value = self.value(event, &span)?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(syntax(&key_span, &duplicate(&key)));
                    }
                }
                (Value::Object(map), anchor)
            }
            Event::Alias(id) => {
                return self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| syntax(span, "an alias to an unknown anchor"))
            }
            _ => return Err(syntax(span, "expected a value")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    /// Walks past the node that starts with `event`, keeping only anchored
    /// values.
    fn skip(&mut self, event: Event<'a>, span: &Span) -> Result<(), DumpReadError> {
        let anchored = match &event {
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _) => *anchor != 0,
            _ => false,
        };
        if anchored {
            return self.value(event, span).map(drop);
        }
        match event {
            Event::Scalar(..) | Event::Alias(_) => Ok(()),
            Event::SequenceStart(..) | Event::MappingStart(..) => loop {
                let (event, span) = self.next()?;
                if matches!(event, Event::SequenceEnd | Event::MappingEnd) {
                    return Ok(());
                }
                self.skip(event, &span)?;
            },
            _ => Err(syntax(span, "expected a value")),
        }
    }
}

/// A scalar's value under the core schema; quoted and block scalars are strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int" | "float" | "bool" | "null") => return plain(text),
        _ => {}
    }
    if style == ScalarStyle::Plain {
        plain(text)
    } else {
        Value::String(text.to_string())
    }
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = integer(text) {
        return Value::Number(number);
    }
    if looks_like_float(text) {
        if let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(number);
        }
    }
    Value::String(text.to_string())
}

fn integer(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = digits.strip_prefix("0o") {
        (8, octal)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if !negative {
        return Some(Number::from(magnitude));
    }
    0i64.checked_sub_unsigned(magnitude).map(Number::from)
}

fn looks_like_float(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

/// The characters of a UTF-8 byte stream; a read error or bad UTF-8 ends the
/// stream and is left in `failure`. With `one_entry`, the stream also ends
/// before a line that starts a top-level field (after the first line), which
/// is left unread: the characters are those of one field.
pub(super) struct Utf8Chars<R> {
    input: R,
    /// Bytes taken from `input`, at most up to the end of a line, so that a
    /// byte costs no call through the reader.
    taken: Vec<u8>,
    at: usize,
    failure: Rc<RefCell<Option<DumpReadError>>>,
    one_entry: bool,
    line_start: bool,
    started: bool,
    ended: bool,
}

impl<R: BufRead> Utf8Chars<R> {
    /// The characters of `input`, or with `one_entry` of its next field.
    pub(super) fn new(input: R, one_entry: bool) -> Self {
        Utf8Chars {
            input,
            taken: Vec::new(),
            at: 0,
            failure: Rc::new(RefCell::new(None)),
            one_entry,
            line_start: true,
            started: false,
            ended: false,
        }
    }

    fn fail(&mut self, error: DumpReadError) -> Option<char> {
        self.failure.borrow_mut().get_or_insert(error);
        self.ended = true;
        None
    }

    fn peek(&mut self) -> Result<Option<u8>, io::Error> {
        match self.taken.get(self.at) {
            Some(&byte) => Ok(Some(byte)),
            None => Ok(self.input.fill_buf()?.first().copied()),
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, io::Error> {
        if self.at == self.taken.len() {
            self.taken.clear();
            self.at = 0;
            let available = self.input.fill_buf()?;
            let len = available
                .iter()
                .position(|&b| b == b'\n')
                .map_or(available.len(), |i| i + 1);
            self.taken.extend_from_slice(&available[..len]);
            self.input.consume(len);
        }
        let byte = self.taken.get(self.at).copied();
        self.at += usize::from(byte.is_some());
        Ok(byte)
    }
}

/// Whether a line starting with `byte` starts a top-level field of a dump
/// (a plain key at column 0).
pub(super) fn starts_entry(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

impl<R: BufRead> Iterator for Utf8Chars<R> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if self.ended {
            return None;
        }
        if self.one_entry && self.line_start {
            match self.peek() {
                Ok(Some(byte)) if self.started && starts_entry(byte) => {
                    self.ended = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => return self.fail(DumpReadError::Io(e)),
            }
        }
        self.started = true;
        let first = match self.byte() {
            Ok(Some(byte)) => byte,
            Ok(None) => {
                self.ended = true;
                return None;
            }
            Err(e) => return self.fail(DumpReadError::Io(e)),
        };
        self.line_start = first == b'\n';
        if first.is_ascii() {
            return Some(char::from(first));
        }
        let len = match first.leading_ones() {
            2 => 2,
            3 => 3,
            4 => 4,
            _ => 0,
        };
        let mut bytes = [first, 0, 0, 0];
        for slot in bytes.iter_mut().take(len).skip(1) {
            match self.byte() {
                Ok(Some(byte)) => *slot = byte,
                Ok(None) => break,
                Err(e) => return self.fail(DumpReadError::Io(e)),
            }
        }
        match std::str::from_utf8(&bytes[..len.max(1)]) {
            Ok(text) => text.chars().next(),
            Err(_) => self.fail(DumpReadError::Syntax(
                "the dump is not UTF-8 text".to_string(),
            )),
        }
    }
}
