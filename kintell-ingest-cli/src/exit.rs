//! Exit codes of interfaces.md and the rendering of errors (`error:` then one `cause:` line per source).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was done.
    Success,
    /// Input rejected: some rows, the whole file, or a reject limit.
    Rejected,
    /// Usage or runtime error, including an input file that cannot be opened.
    Failure,
    /// Refused as a re-import of a completed file.
    ReimportRefused,
    /// Refused because a live worker is importing the same file.
    Busy,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Rejected => 1,
            Exit::Failure => 2,
            Exit::ReimportRefused => 3,
            Exit::Busy => 4,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// An error that carries the exit code it should end the program with.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Fatal {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong.
    #[source]
    pub error: anyhow::Error,
}

/// Attaches an exit code to an error.
pub fn with_exit(exit: Exit, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Fatal {
        exit,
        error: error.into(),
    })
}

/// The exit code an error ends the program with: the first one its chain carries, else 2.
pub fn exit_of(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Fatal>())
        .map_or(Exit::Failure, |f| f.exit)
}

/// `error: …` and one `cause: …` line per underlying error.
pub fn render(error: &anyhow::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = current {
        // A `Fatal` only carries the exit code; its message is its inner error's.
        if e.downcast_ref::<Fatal>().is_none() {
            let text = e.to_string();
            if chain.last() != Some(&text) {
                chain.push(text);
            }
        }
        current = e.source();
    }
    let mut out = String::new();
    for (i, line) in chain.iter().enumerate() {
        let one_line = line.replace('\n', " ");
        out.push_str(if i == 0 { "error: " } else { "cause: " });
        out.push_str(&one_line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errors_render_one_cause_per_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Err::<(), _>(io)
            .context("cannot open catalog.json")
            .unwrap_err();
        assert_eq!(
            render(&e),
            "error: cannot open catalog.json\ncause: No such file or directory\n"
        );
        assert_eq!(exit_of(&e), Exit::Failure);
    }

    #[test]
    fn carried_exit_codes_are_kept() {
        let e = with_exit(
            Exit::Rejected,
            anyhow::anyhow!("3 problems in the catalogue"),
        );
        assert_eq!(exit_of(&e), Exit::Rejected);
        assert_eq!(render(&e), "error: 3 problems in the catalogue\n");
        let wrapped = e.context("catalog import failed");
        assert_eq!(exit_of(&wrapped), Exit::Rejected);
        assert_eq!(
            render(&wrapped),
            "error: catalog import failed\ncause: 3 problems in the catalogue\n"
        );
    }
}
