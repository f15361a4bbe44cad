//! Running the server as the `postgres` user when we are root.

use std::ffi::CString;
use std::path::Path;

use crate::SandboxError;

/// The user and group the server processes run as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// `None` when we are not root (the server runs as us), else the
/// `postgres` user, which must exist.
pub(crate) fn server_user() -> Result<Option<RunAs>, SandboxError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer into static storage or null; we
    // copy the two fields out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(SandboxError::NoPostgresUser);
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

/// Makes `path` owned by the server user.
pub(crate) fn chown(path: &Path, to: RunAs) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(to.uid), Some(to.gid))
}

/// Sets up a child process: its own session (so a terminal's Ctrl-C goes
/// to the owner, whose exit the guardian notices) and, when root, the
/// server user's identity.
pub(crate) fn prepare_child(cmd: &mut std::process::Command, run_as: Option<RunAs>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(u) = run_as {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(u.gid) != 0
                    || libc::setuid(u.uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
