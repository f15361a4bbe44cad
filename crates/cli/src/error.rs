//! The one place errors are rendered: what went wrong, and what to do next.

use std::fmt::Display;
use std::process::ExitCode;

/// Exit codes a deploy pipeline can rely on.
#[allow(dead_code)] // the full set is the contract; not every command uses each
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// Lint findings at or above the threshold, or a run that failed with
    /// the database state left consistent.
    pub const FAILED: u8 = 1;
    /// Bad usage, bad configuration, I/O or connection errors.
    pub const ERROR: u8 = 2;
    /// Refused before doing anything: the runner lock is held, an applied
    /// migration file changed, and the like.
    pub const REFUSED: u8 = 3;
}

/// An error on its way to the user: a message, an optional hint that says
/// what to do next, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    /// A usage, configuration, I/O or connection error (exit 2).
    pub fn new(message: impl Display) -> Self {
        CliError {
            message: message.to_string(),
            hint: None,
            code: exit::ERROR,
        }
    }

    /// The same error with a hint on what to do next.
    pub fn hint(mut self, hint: impl Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// The same error with another exit code.
    #[allow(dead_code)] // for commands that refuse (exit 3)
    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Prints the error on stderr and returns its exit code.
    pub fn report(self) -> ExitCode {
        use owo_colors::OwoColorize;
        use std::io::Write;
        // Output cut short by its reader (`lull lint | head`) is no error
        // to report: end quietly, as other tools do (128 + SIGPIPE).
        if self.message.contains("Broken pipe (os error 32)") {
            return ExitCode::from(141);
        }
        let mut err = anstream::stderr();
        let _ = writeln!(err, "{} {}", "error:".red().bold(), self.message);
        if let Some(hint) = &self.hint {
            let _ = writeln!(err, "  {} {}", "hint:".cyan().bold(), hint);
        }
        ExitCode::from(self.code)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(err: E) -> Self {
        CliError::new(err)
    }
}

/// What every command returns.
pub type CliResult = Result<ExitCode, CliError>;
