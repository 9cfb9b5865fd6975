//! Control messages as `dmsetup message NAME 0 ...` spells them for seed 002's
//! multisnapshot target (`create`, `create_subsnap ID`, `delete ID`, words
//! matched without regard to case), plus the runtime's `attach ID` and
//! `detach ID` (seed 002 did those with `multisnap-snap` table loads) and
//! `status`.

use std::fmt;
use std::str::FromStr;

/// One control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Create a snapshot of the origin with the lowest free id.
    Create,
    /// Create a snapshot of snapshot `ID`.
    CreateSubsnap(u32),
    /// Delete snapshot `ID` (its device is detached first).
    Delete(u32),
    /// Bring up the device of snapshot `ID`.
    Attach(u32),
    /// Take down the device of snapshot `ID`.
    Detach(u32),
    /// Report the status.
    Status,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Nothing was sent.
    #[error("empty message; expected one of: {WORDS}")]
    Empty,
    /// The first word is not a message.
    #[error("unknown message '{0}'; expected one of: {WORDS}")]
    Unknown(String),
    /// A message that needs a snapshot id came without one.
    #[error("'{0}' needs a snapshot id, e.g. '{0} 3'")]
    MissingId(&'static str),
    /// The id is not a number.
    #[error("'{word}': snapshot id '{text}' is not a number")]
    BadId {
        /// The message word.
        word: &'static str,
        /// What was given instead of the id.
        text: String,
    },
    /// Words after the last argument.
    #[error("'{word}' takes {expected}; unexpected '{extra}'")]
    Extra {
        /// The message word.
        word: &'static str,
        /// What the message takes.
        expected: &'static str,
        /// The first word too many.
        extra: String,
    },
}

const WORDS: &str = "create, create_subsnap ID, delete ID, attach ID, detach ID, status";

impl Message {
    /// The message's first word.
    pub fn word(&self) -> &'static str {
        match self {
            Message::Create => "create",
            Message::CreateSubsnap(_) => "create_subsnap",
            Message::Delete(_) => "delete",
            Message::Attach(_) => "attach",
            Message::Detach(_) => "detach",
            Message::Status => "status",
        }
    }

    /// The snapshot id the message names, if any.
    pub fn id(&self) -> Option<u32> {
        match *self {
            Message::CreateSubsnap(id)
            | Message::Delete(id)
            | Message::Attach(id)
            | Message::Detach(id) => Some(id),
            Message::Create | Message::Status => None,
        }
    }
}

impl FromStr for Message {
    type Err = MessageError;

    fn from_str(text: &str) -> Result<Self, MessageError> {
        let mut words = text.split_whitespace();
        let first = words.next().ok_or(MessageError::Empty)?;
        let without_id = |message: Message| (message, None);
        let with_id = |make: fn(u32) -> Message| (make(0), Some(make));
        let (bare, make) = match first.to_ascii_lowercase().as_str() {
            "create" => without_id(Message::Create),
            "status" => without_id(Message::Status),
            "create_subsnap" => with_id(Message::CreateSubsnap),
            "delete" => with_id(Message::Delete),
            "attach" => with_id(Message::Attach),
            "detach" => with_id(Message::Detach),
            _ => return Err(MessageError::Unknown(first.to_string())),
        };
        let word = bare.word();
        let message = match make {
            None => bare,
            Some(make) => {
                let text = words.next().ok_or(MessageError::MissingId(word))?;
                let id = text.parse().map_err(|_| MessageError::BadId {
                    word,
                    text: text.to_string(),
                })?;
                make(id)
            }
        };
        if let Some(extra) = words.next() {
            let expected = if make.is_some() {
                "one snapshot id"
            } else {
                "no argument"
            };
            return Err(MessageError::Extra {
                word,
                expected,
                extra: extra.to_string(),
            });
        }
        Ok(message)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())?;
        if let Some(id) = self.id() {
            write!(f, " {id}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_words_parse_and_print_back() {
        let cases = [
            ("create", Message::Create),
            ("create_subsnap 3", Message::CreateSubsnap(3)),
            ("delete 0", Message::Delete(0)),
            ("attach 12", Message::Attach(12)),
            ("detach 63", Message::Detach(63)),
            ("status", Message::Status),
        ];
        for (text, message) in cases {
            assert_eq!(text.parse::<Message>(), Ok(message), "{text}");
            assert_eq!(message.to_string(), text);
        }
        assert_eq!("  DELETE   7\n".parse(), Ok(Message::Delete(7)));
        assert_eq!("Create".parse(), Ok(Message::Create));
    }

    #[test]
    fn bad_messages_say_what_was_expected() {
        let error = |text: &str| text.parse::<Message>().unwrap_err().to_string();
        assert_eq!(
            error(""),
            "empty message; expected one of: create, create_subsnap ID, delete ID, attach ID, \
             detach ID, status"
        );
        assert!(error("snap").starts_with("unknown message 'snap'; expected one of: create"));
        assert_eq!(
            error("delete"),
            "'delete' needs a snapshot id, e.g. 'delete 3'"
        );
        assert_eq!(
            error("attach x1"),
            "'attach': snapshot id 'x1' is not a number"
        );
        assert_eq!(
            error("delete -1"),
            "'delete': snapshot id '-1' is not a number"
        );
        assert_eq!(
            error("create 3"),
            "'create' takes no argument; unexpected '3'"
        );
        assert_eq!(
            error("create_subsnap 1 2"),
            "'create_subsnap' takes one snapshot id; unexpected '2'"
        );
    }
}
