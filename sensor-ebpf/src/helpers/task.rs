//! Fields of a task_struct and of the objects it points to. Generic over the
//! tier's [`Mem`] so tp_btf programs use direct loads.
use super::read::{Mem, Probe, ReadError};
use crate::globals::off;

/// `task->tgid`.
#[inline(always)]
pub fn tgid<M: Mem>(task: u64) -> Result<u32, ReadError> {
    M::read(task, off!(task_tgid))
}

/// `task->pid` (the thread id).
#[inline(always)]
pub fn tid<M: Mem>(task: u64) -> Result<u32, ReadError> {
    M::read(task, off!(task_pid))
}

/// `task->real_parent->tgid`.
#[inline(always)]
pub fn ppid<M: Mem>(task: u64) -> Result<u32, ReadError> {
    tgid::<M>(M::ptr(task, off!(task_real_parent))?)
}

/// `task->start_boottime`.
#[inline(always)]
pub fn start_boottime<M: Mem>(task: u64) -> Result<u64, ReadError> {
    M::read(task, off!(task_start_boottime))
}

/// (euid, egid) from `task->cred`.
#[inline(always)]
pub fn effective_ids<M: Mem>(task: u64) -> Result<(u32, u32), ReadError> {
    let cred = M::ptr(task, off!(task_cred))?;
    Ok((
        M::read(cred, off!(cred_euid))?,
        M::read(cred, off!(cred_egid))?,
    ))
}

/// Mount namespace inode number.
#[inline(always)]
pub fn mnt_ns<M: Mem>(task: u64) -> Result<u32, ReadError> {
    let nsproxy = M::ptr(task, off!(task_nsproxy))?;
    let ns = M::ptr(nsproxy, off!(nsproxy_mnt_ns))?;
    M::read(ns, off!(mnt_ns_inum))
}

/// (pid inside the task's pid namespace, that namespace's inode number).
#[inline(always)]
pub fn ns_pid(task: u64) -> Result<(u32, u32), ReadError> {
    // numbers[level] is a variable index, which verifiers before 6.x refuse
    // on a typed pointer: read the pid as a plain number and probe from here.
    let pid = Probe::ptr(task, off!(task_thread_pid))?;
    let level: u32 = Probe::read(pid, off!(pid_level))?;
    // Levels run 0..=MAX_PID_NS_LEVEL (32).
    if level > 32 {
        return Err(ReadError);
    }
    let upid = pid + off!(pid_numbers) as u64 + (level & 63) as u64 * off!(upid_size) as u64;
    let nr: u32 = Probe::read(upid, off!(upid_nr))?;
    let ns = Probe::ptr(upid, off!(upid_ns))?;
    Ok((nr, Probe::read(ns, off!(pid_ns_inum))?))
}

/// True once every thread of the task's process has exited.
#[inline(always)]
pub fn group_dead<M: Mem>(task: u64) -> Result<bool, ReadError> {
    let signal = M::ptr(task, off!(task_signal))?;
    let live: i32 = M::read(signal, off!(signal_live))?;
    Ok(live == 0)
}

/// kernfs id of the task's cgroup2 cgroup (what `bpf_get_current_cgroup_id`
/// returns for the current task).
#[inline(always)]
pub fn cgroup2_id<M: Mem>(task: u64) -> Result<u64, ReadError> {
    let cset = M::ptr(task, off!(task_cgroups))?;
    let cgroup = M::ptr(cset, off!(css_set_dfl_cgrp))?;
    let kn = M::ptr(cgroup, off!(cgroup_kn))?;
    M::read(kn, off!(kernfs_node_id))
}

/// kernfs id of the task's cgroup in the tracked v1 hierarchy, or 0.
#[inline(always)]
pub fn cgroup_v1_id<M: Mem>(task: u64) -> u64 {
    let index = off!(v1_subsys_index);
    if index == sensor_common::UNAVAILABLE as usize {
        return 0;
    }
    let id = || -> Result<u64, ReadError> {
        let cset = M::ptr(task, off!(task_cgroups))?;
        // css_set.subsys has CGROUP_SUBSYS_COUNT (< 32) entries; the index
        // is a load-time constant, so this stays a typed load.
        let css = M::ptr(cset, off!(css_set_subsys) + (index & 31) * 8)?;
        let cgroup = M::ptr(css, off!(css_cgroup))?;
        let kn = M::ptr(cgroup, off!(cgroup_kn))?;
        M::read(kn, off!(kernfs_node_id))
    };
    id().unwrap_or(0)
}

/// The `struct file *` installed at `fd` in the task's table. The slot
/// itself is a variable index, so the result is always an untyped pointer.
#[inline(always)]
pub fn fd_file<M: Mem>(task: u64, fd: i64) -> Result<u64, ReadError> {
    if fd < 0 {
        return Err(ReadError);
    }
    let files = M::ptr(task, off!(task_files))?;
    let fdt = M::ptr(files, off!(files_fdt))?;
    let max: u32 = M::read(fdt, off!(fdt_max_fds))?;
    if fd as u64 >= max as u64 {
        return Err(ReadError);
    }
    let array: u64 = M::read(fdt, off!(fdt_fd))?;
    Probe::ptr(array, fd as usize * 8)
}
