//! The control socket's protocol: one request line, one reply line, then the
//! daemon closes the connection.
//!
//! Requests are seed 002's message words (`create`, `create_subsnap ID`,
//! `delete ID`, `attach ID`, `detach ID`), `status` or `status json`, and
//! `stop`. A reply is `ok TEXT` (what `cowrt message` prints: `created 3
//! /dev/ublkb4`, the status line or its JSON on one line) or `error TEXT` (one
//! sentence; nothing was changed).

use std::fmt;
use std::str::FromStr;

use crate::control::{Message, MessageError};

/// One control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A message that changes the store or its devices.
    Message(Message),
    /// The status, as seed 002's line or as JSON.
    Status {
        /// JSON instead of the line.
        json: bool,
    },
    /// Commit, take every device down, exit.
    Stop,
}

impl FromStr for Request {
    type Err = MessageError;

    fn from_str(text: &str) -> Result<Self, MessageError> {
        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or("").to_ascii_lowercase();
        let rest: Vec<&str> = words.collect();
        match (first.as_str(), rest.as_slice()) {
            ("stop", []) => Ok(Request::Stop),
            ("stop", [more, ..]) => Err(MessageError::Extra {
                word: "stop",
                expected: "no argument",
                extra: more.to_string(),
            }),
            ("status", []) => Ok(Request::Status { json: false }),
            ("status", [format]) if format.eq_ignore_ascii_case("json") => {
                Ok(Request::Status { json: true })
            }
            ("status", [format]) if format.eq_ignore_ascii_case("text") => {
                Ok(Request::Status { json: false })
            }
            ("status", [other]) => Err(MessageError::Extra {
                word: "status",
                expected: "'text' or 'json'",
                extra: other.to_string(),
            }),
            ("status", [_, second, ..]) => Err(MessageError::Extra {
                word: "status",
                expected: "'text' or 'json'",
                extra: second.to_string(),
            }),
            _ => text.parse().map(Request::Message),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Message(message) => write!(f, "{message}"),
            Request::Status { json: false } => f.write_str("status"),
            Request::Status { json: true } => f.write_str("status json"),
            Request::Stop => f.write_str("stop"),
        }
    }
}

/// What the daemon answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done; the text to print.
    Done(String),
    /// Refused or failed, nothing changed; one sentence.
    Refused(String),
}

impl Answer {
    /// The reply line, without its newline (any newline in the text is
    /// replaced by a space: one reply, one line).
    pub fn line(&self) -> String {
        let (word, text) = match self {
            Answer::Done(text) => ("ok", text),
            Answer::Refused(text) => ("error", text),
        };
        format!("{word} {}", text.replace('\n', " "))
    }

    /// The answer a reply line carries, or `None` when it is not one.
    pub fn parse(line: &str) -> Option<Answer> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (word, text) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "ok" => Some(Answer::Done(text.to_string())),
            "error" => Some(Answer::Refused(text.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print_back() {
        let cases = [
            ("create", Request::Message(Message::Create)),
            (
                "create_subsnap 2",
                Request::Message(Message::CreateSubsnap(2)),
            ),
            ("delete 1", Request::Message(Message::Delete(1))),
            ("attach 0", Request::Message(Message::Attach(0))),
            ("detach 0", Request::Message(Message::Detach(0))),
            ("status", Request::Status { json: false }),
            ("status json", Request::Status { json: true }),
            ("stop", Request::Stop),
        ];
        for (text, request) in cases {
            assert_eq!(text.parse::<Request>(), Ok(request), "{text}");
            assert_eq!(request.to_string(), text);
        }
        assert_eq!("STATUS Text\n".parse(), Ok(Request::Status { json: false }));
    }

    #[test]
    fn bad_requests_say_what_was_expected() {
        let error = |text: &str| text.parse::<Request>().unwrap_err().to_string();
        assert_eq!(
            error("stop now"),
            "'stop' takes no argument; unexpected 'now'"
        );
        assert_eq!(
            error("status yaml"),
            "'status' takes 'text' or 'json'; unexpected 'yaml'"
        );
        assert_eq!(
            error("status json x"),
            "'status' takes 'text' or 'json'; unexpected 'x'"
        );
        assert!(error("").starts_with("empty message; expected one of: create"));
        assert_eq!(
            error("delete x"),
            "'delete': snapshot id 'x' is not a number"
        );
    }

    #[test]
    fn answers_are_one_line_each_way() {
        let done = Answer::Done("created 3 /dev/ublkb4".to_string());
        assert_eq!(done.line(), "ok created 3 /dev/ublkb4");
        assert_eq!(Answer::parse(&(done.line() + "\n")), Some(done));
        let refused = Answer::Refused("delete 9: no\nsuch".to_string());
        assert_eq!(refused.line(), "error delete 9: no such");
        assert_eq!(
            Answer::parse("error delete 9: no such"),
            Some(Answer::Refused("delete 9: no such".to_string()))
        );
        assert_eq!(Answer::parse("okay"), None);
        assert_eq!(Answer::parse(""), None);
    }
}
