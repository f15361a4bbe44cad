//! `lull.toml`: where it is found, how `[env.NAME]` sections override the
//! base, and the typed values the rest of lull reads.
//!
//! Every section is parsed strictly: an unknown key or a bad value is an
//! error that names the file, the line and the valid choices. Policies are
//! plain data with the defaults of DESIGN.md, so code never carries
//! scattered timeout numbers. This crate also owns connection-string
//! redaction, so no message anywhere prints a password.

mod duration;
mod file;
mod redact;

pub use duration::Duration;
pub use file::{
    find_config, Acquisition, BackfillPolicy, BackfillSection, BlockersPolicy, BlockersSection,
    Config, ConfigError, DdlPolicy, DmlPolicy, IndexPolicy, IndexesSection, LintSection, Policies,
    RunnerKind, Settings, CONFIG_FILE_NAME,
};
pub use redact::redact_url;
