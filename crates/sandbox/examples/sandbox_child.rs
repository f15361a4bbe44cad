//! A process that owns a sandbox and then ends badly, for the cleanup
//! tests: `sandbox_child panic|wait|start-error`.

use std::time::Duration;

fn main() {
    let how = std::env::args().nth(1).unwrap_or_default();
    // A background job may inherit an ignored SIGINT; a real Ctrl-C'd
    // program has the default action.
    // SAFETY: resetting a signal disposition at start-up.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
    let sandbox = match lull_sandbox::Sandbox::start() {
        Ok(s) => s,
        Err(e) => {
            println!("ERROR {e}");
            std::process::exit(2);
        }
    };
    println!("SANDBOX {} {}", sandbox.pid(), sandbox.root().display());
    if how == "panic" {
        panic!("deliberate panic with a live sandbox");
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
