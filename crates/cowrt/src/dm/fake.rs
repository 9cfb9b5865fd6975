//! A scripted runner for the tests of every kind.

use std::collections::{HashMap, VecDeque};

use super::runner::{Command, RunError, Runner};

/// A runner that logs every command and answers from a script: each command
/// line maps to answers given in turn (the last one repeats); unscripted
/// commands answer "".
#[derive(Default)]
pub(crate) struct Fake {
    answers: HashMap<String, VecDeque<Result<String, String>>>,
    pub(crate) log: Vec<String>,
}

impl Fake {
    pub(crate) fn answer(mut self, command: &str, answers: &[Result<&str, &str>]) -> Self {
        let queue = answers
            .iter()
            .map(|a| a.map(str::to_string).map_err(str::to_string))
            .collect();
        self.answers.insert(command.to_string(), queue);
        self
    }
}

impl Runner for Fake {
    fn run(&mut self, command: &Command) -> Result<String, RunError> {
        let line = command.to_string();
        self.log.push(line.clone());
        let answer = match self.answers.get_mut(&line) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap(),
            Some(queue) => queue.front().cloned().unwrap(),
            None => Ok(String::new()),
        };
        answer.map_err(|stderr| RunError::Failed {
            command: line,
            status: 1,
            stderr,
        })
    }
}
