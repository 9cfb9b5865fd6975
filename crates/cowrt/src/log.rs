//! Where the library's own messages go (a failed periodic commit, a failed
//! ublk request): a sink the program provides, so the library never prints.
//! The `cowrt` binary writes each line to stderr, which the background daemon
//! appends to `NAME.log`.

use std::sync::{Arc, Mutex};

/// Takes the library's messages, one line each.
#[derive(Clone)]
pub struct Log(Arc<dyn Fn(&str) + Send + Sync>);

impl Log {
    /// A log that hands each line to `sink`.
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Log(Arc::new(sink))
    }

    /// A log that drops every line.
    pub fn discard() -> Self {
        Log::new(|_| {})
    }

    /// A log that keeps its lines in memory, and the lines it kept.
    pub fn memory() -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        let log = Log::new(move |line| {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.to_string())
        });
        (log, lines)
    }

    /// Logs `line`.
    pub fn line(&self, line: &str) {
        (self.0)(line)
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_sink() {
        let (log, lines) = Log::memory();
        log.clone().line("periodic commit: no space");
        Log::discard().line("dropped");
        assert_eq!(*lines.lock().unwrap(), ["periodic commit: no space"]);
    }

    // Every message of the library goes through a Log: no print macro
    // outside src/bin (println covers eprintln, print covers eprint).
    #[test]
    fn the_library_never_prints() {
        fn scan(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("bin") {
                        scan(&path, found);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Split, so that this test does not find itself.
                    let macros = [
                        concat!("print", "ln!"),
                        concat!("print", "!("),
                        concat!("dbg", "!("),
                    ];
                    for (n, line) in text.lines().enumerate() {
                        if macros.iter().any(|m| line.contains(m)) {
                            found.push(format!("{}:{}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        scan(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
