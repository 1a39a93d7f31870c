//! The only unsafe code of the supervisor: work done in the child between fork and exec.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child start at `nice`, as ovs-ctl does with `nice -n -10`. Done in the child before
/// exec, so the daemon never runs a single instruction at the default priority.
pub fn set_nice_on_exec(cmd: &mut Command, nice: i32) {
    // SAFETY: the closure runs in the forked child before exec and only calls setpriority(2),
    // a plain system call that is async-signal-safe: it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            // A failure is not fatal: preflight checked SYS_NICE; the default priority remains.
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            Ok(())
        });
    }
}
