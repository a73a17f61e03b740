//! Fields of a task_struct and of the objects it points to.
use super::read::{ReadError, kptr, kread};
use crate::globals::off;

/// Current task pointer (as an integer: it is only ever read through probes).
#[inline(always)]
pub fn current() -> u64 {
    // SAFETY: helper with no arguments.
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() }
}

/// `task->tgid`.
#[inline(always)]
pub fn tgid(task: u64) -> Result<u32, ReadError> {
    kread(task, off!(task_tgid))
}

/// `task->pid` (the thread id).
#[inline(always)]
pub fn tid(task: u64) -> Result<u32, ReadError> {
    kread(task, off!(task_pid))
}

/// `task->real_parent->tgid`.
#[inline(always)]
pub fn ppid(task: u64) -> Result<u32, ReadError> {
    tgid(kptr(task, off!(task_real_parent))?)
}

/// `task->start_boottime`.
#[inline(always)]
pub fn start_boottime(task: u64) -> Result<u64, ReadError> {
    kread(task, off!(task_start_boottime))
}

/// (euid, egid) from `task->cred`.
#[inline(always)]
pub fn effective_ids(task: u64) -> Result<(u32, u32), ReadError> {
    let cred = kptr(task, off!(task_cred))?;
    Ok((kread(cred, off!(cred_euid))?, kread(cred, off!(cred_egid))?))
}

/// Mount namespace inode number.
#[inline(always)]
pub fn mnt_ns(task: u64) -> Result<u32, ReadError> {
    let nsproxy = kptr(task, off!(task_nsproxy))?;
    let ns = kptr(nsproxy, off!(nsproxy_mnt_ns))?;
    kread(ns, off!(mnt_ns_inum))
}

/// (pid inside the task's pid namespace, that namespace's inode number).
#[inline(always)]
pub fn ns_pid(task: u64) -> Result<(u32, u32), ReadError> {
    let pid = kptr(task, off!(task_thread_pid))?;
    let level: u32 = kread(pid, off!(pid_level))?;
    // Pid namespaces nest at most 32 deep (MAX_PID_NS_LEVEL).
    let upid = pid + off!(pid_numbers) as u64 + (level & 31) as u64 * off!(upid_size) as u64;
    let nr: u32 = kread(upid, off!(upid_nr))?;
    let ns = kptr(upid, off!(upid_ns))?;
    Ok((nr, kread(ns, off!(pid_ns_inum))?))
}

/// True once every thread of the task's process has exited.
#[inline(always)]
pub fn group_dead(task: u64) -> Result<bool, ReadError> {
    let signal = kptr(task, off!(task_signal))?;
    let live: i32 = kread(signal, off!(signal_live))?;
    Ok(live == 0)
}

/// kernfs id of the task's cgroup in the tracked v1 hierarchy, or 0.
#[inline(always)]
pub fn cgroup_v1_id(task: u64) -> u64 {
    let index = off!(v1_subsys_index);
    if index == u32::MAX as usize {
        return 0;
    }
    let id = || -> Result<u64, ReadError> {
        let cset = kptr(task, off!(task_cgroups))?;
        // css_set.subsys has CGROUP_SUBSYS_COUNT (< 32) entries.
        let css = kptr(cset, off!(css_set_subsys) + (index & 31) * 8)?;
        let cgroup = kptr(css, off!(css_cgroup))?;
        let kn = kptr(cgroup, off!(cgroup_kn))?;
        kread(kn, off!(kernfs_node_id))
    };
    id().unwrap_or(0)
}

/// The `struct file *` installed at `fd` in the current task's table.
#[inline(always)]
pub fn fd_file(task: u64, fd: i64) -> Result<u64, ReadError> {
    if fd < 0 {
        return Err(ReadError);
    }
    let files = kptr(task, off!(task_files))?;
    let fdt = kptr(files, off!(files_fdt))?;
    let max: u32 = kread(fdt, off!(fdt_max_fds))?;
    if fd as u64 >= max as u64 {
        return Err(ReadError);
    }
    let array = kptr(fdt, off!(fdt_fd))?;
    kptr(array, fd as usize * 8)
}
