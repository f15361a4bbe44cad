//! `lull completions`: shell completion scripts generated from the CLI's
//! own definition (clap_complete), so they never drift from the flags.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use clap_complete::Shell;

use crate::error::CliResult;

/// Print a shell completion script.
///
/// The script completes every command, flag and choice lull knows. Load it
/// once per shell session, or install it where your shell looks:
///
///   bash:  lull completions bash > ~/.local/share/bash-completion/completions/lull
///   zsh:   lull completions zsh > ~/.zfunc/_lull     (with fpath+=~/.zfunc before compinit)
///   fish:  lull completions fish > ~/.config/fish/completions/lull.fish
///
/// Examples:
///   source <(lull completions bash)
///   lull completions zsh > "${fpath[1]}/_lull"
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Runs `lull completions`: writes the script for `args.shell` to stdout.
pub fn run(mut command: clap::Command, args: Args) -> CliResult {
    let name = command.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    crate::render::emit(&String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}
