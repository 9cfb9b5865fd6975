//! cowcheck's verdict on a store in one sentence, for the commands that
//! refuse a damaged store before serving it (`cowrt dm activate`, `cowrt
//! serve`).

use cowfmt::{Finding, Severity};

/// `cowcheck finds the KIND store damaged: CODE: message` for the first
/// error finding (saying how many more there are), or `None` when no finding
/// is an error.
pub fn verdict(kind: &str, findings: &[Finding]) -> Option<String> {
    let mut errors = findings.iter().filter(|f| f.severity == Severity::Error);
    let first = errors.next()?;
    let more = match errors.count() {
        0 => String::new(),
        n => format!(" (and {n} more; run cowcheck for all)"),
    };
    Some(format!(
        "cowcheck finds the {kind} store damaged: {}: {}{more}",
        first.code, first.message
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowfmt::{FindingCode, Location};

    #[test]
    fn the_first_error_speaks_and_warnings_do_not_count() {
        let warning = Finding::warning(
            FindingCode::ValidFlagUnusual,
            Location::default(),
            "valid is 7".to_string(),
        );
        let error = |message: &str| {
            Finding::error(
                FindingCode::BadVersion,
                Location::default(),
                message.to_string(),
            )
        };
        assert_eq!(verdict("shared", std::slice::from_ref(&warning)), None);
        assert_eq!(verdict("shared", &[]), None);
        let one = verdict("shared", &[warning.clone(), error("version 3")]).unwrap();
        assert_eq!(
            one,
            format!(
                "cowcheck finds the shared store damaged: {}: version 3",
                FindingCode::BadVersion
            )
        );
        let three = verdict("persistent", &[error("a"), warning, error("b"), error("c")]).unwrap();
        assert!(three.starts_with("cowcheck finds the persistent store damaged: "));
        assert!(
            three.ends_with(": a (and 2 more; run cowcheck for all)"),
            "{three}"
        );
    }
}
