//! `lull man`: manual pages generated from the CLI's own definition
//! (clap_mangen), one for `lull` and one per command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;

use crate::error::{CliError, CliResult};

/// Print lull's manual page, or write one page per command.
///
/// Without --dir, prints the roff source of lull(1) to stdout. With
/// --dir DIR, writes lull.1 and one page per command (lull-migrate.1,
/// lull-indexes-build.1, ...) into DIR, ready for a MANPATH directory.
///
/// Examples:
///   lull man | man -l -
///   lull man --dir ~/.local/share/man/man1 && man lull-migrate
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Write lull.1 and a page per command into this directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `lull man`.
pub fn run(command: clap::Command, args: Args) -> CliResult {
    let command = command.version(env!("CARGO_PKG_VERSION"));
    match args.dir {
        None => {
            crate::render::emit(&render(&command)?);
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, e))?;
            let mut written = 0;
            write_pages(&command, command.get_name(), &dir, &mut written)?;
            eprintln!("wrote {written} manual pages to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The roff source of one page.
fn render(command: &clap::Command) -> Result<String, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .map_err(|e| CliError::new(format!("cannot render the manual page: {e}")))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Writes `name.1` for `command` and recurses into its subcommands, named
/// `name-sub` as git and cargo name theirs.
fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> Result<(), CliError> {
    let page = command.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, render(&page)?).map_err(|e| write_error(&path, e))?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

fn write_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::new(format!("cannot write {}: {e}", path.display()))
        .hint("choose a directory you can write to with --dir")
}
