//! The words of a line `dmsetup` printed, consumed in order; each problem is
//! one phrase (the caller's error adds the line).

use std::str::{FromStr, SplitWhitespace};

/// A line's words, read left to right.
pub(crate) struct Words<'a> {
    words: SplitWhitespace<'a>,
}

impl<'a> Words<'a> {
    /// The words of `line`.
    pub(crate) fn new(line: &'a str) -> Self {
        Words {
            words: line.split_whitespace(),
        }
    }

    /// The next word, called `what` if missing.
    pub(crate) fn word(&mut self, what: &str) -> Result<&'a str, String> {
        self.words
            .next()
            .ok_or_else(|| format!("{what} is missing"))
    }

    /// The next word as a number.
    pub(crate) fn number<T: FromStr>(&mut self, what: &str) -> Result<T, String> {
        let word = self.word(what)?;
        parse(word, what)
    }

    /// `<a>/<b>` as two numbers.
    pub(crate) fn ratio(&mut self, what: &str) -> Result<(u64, u64), String> {
        let word = self.word(what)?;
        ratio(word, what)
    }

    /// A count, then that many words (an empty list when the line ends
    /// first, as optional argument groups do).
    pub(crate) fn group(&mut self, what: &str) -> Result<Vec<String>, String> {
        let Some(count) = self.words.next() else {
            return Ok(Vec::new());
        };
        let count: usize = parse(count, &format!("the {what} count"))?;
        (0..count)
            .map(|_| self.word(what).map(str::to_string))
            .collect()
    }

    /// Every word left.
    pub(crate) fn rest(&mut self) -> Vec<&'a str> {
        self.words.by_ref().collect()
    }

    /// Nothing may be left.
    pub(crate) fn end(&mut self) -> Result<(), String> {
        match self.words.next() {
            Some(extra) => Err(format!("unexpected '{extra}' at the end")),
            None => Ok(()),
        }
    }
}

/// `word` as a number called `what`.
pub(crate) fn parse<T: FromStr>(word: &str, what: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("{what} '{word}' is not a number"))
}

/// `<a>/<b>` as two numbers called `what`.
pub(crate) fn ratio(word: &str, what: &str) -> Result<(u64, u64), String> {
    let (a, b) = word
        .split_once('/')
        .ok_or_else(|| format!("{what} '{word}' is not <used>/<total>"))?;
    Ok((parse(a, what)?, parse(b, what)?))
}
