//! Kernel struct field offsets, computed by userspace from the running
//! kernel's BTF and injected as a read-only global before load.
//!
//! Rust eBPF emits no CO-RE relocations, so this is how one object file
//! serves every kernel: the programs read fields with
//! `bpf_probe_read_kernel(base + offset)`. Adding a field here means adding
//! its BTF path in `sensor::loader::offsets` too; a missing field fails load
//! with the field's name.

/// Byte offsets of the kernel fields the programs read. `u16` would do for
/// most, but `u32` keeps the struct free of surprises.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.cred`
    pub task_cred: u32,
    /// `task_struct.nsproxy`
    pub task_nsproxy: u32,
    /// `task_struct.thread_pid`
    pub task_thread_pid: u32,
    /// `task_struct.start_boottime`
    pub task_start_boottime: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `task_struct.fs`
    pub task_fs: u32,
    /// `task_struct.files`
    pub task_files: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `task_struct.cgroups`
    pub task_cgroups: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `cred.euid`
    pub cred_euid: u32,
    /// `cred.egid`
    pub cred_egid: u32,
    /// `nsproxy.mnt_ns`
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns.inum`
    pub mnt_ns_inum: u32,
    /// `pid.level`
    pub pid_level: u32,
    /// `pid.numbers`
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `upid.nr`
    pub upid_nr: u32,
    /// `upid.ns`
    pub upid_ns: u32,
    /// `pid_namespace.ns.inum`
    pub pid_ns_inum: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `linux_binprm.file`
    pub binprm_file: u32,
    /// `file.f_path`
    pub file_path: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `file.private_data`
    pub file_private_data: u32,
    /// `inode.i_ino`
    pub inode_ino: u32,
    /// `path.mnt`
    pub path_mnt: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_name.name`
    pub dentry_name: u32,
    /// `dentry.d_name.len`
    pub dentry_name_len: u32,
    /// Inline name storage: `dentry.d_shortname.string` (>= 6.14) or `d_iname`.
    pub dentry_iname: u32,
    /// Its size (DNAME_INLINE_LEN: 40 on >= 6.14, 32 before).
    pub dentry_iname_len: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_root: u32,
    /// `mount.mnt` (the embedded vfsmount)
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `fs_struct.pwd`
    pub fs_pwd: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdt_max_fds: u32,
    /// `fdtable.fd`
    pub fdt_fd: u32,
    /// `signal_struct.live`
    pub signal_live: u32,
    /// `css_set.subsys`
    pub css_set_subsys: u32,
    /// `cgroup_subsys_state.cgroup`
    pub css_cgroup: u32,
    /// `cgroup.kn`
    pub cgroup_kn: u32,
    /// `cgroup.root`
    pub cgroup_root: u32,
    /// `cgroup.level`
    pub cgroup_level: u32,
    /// `kernfs_node.id`
    pub kernfs_node_id: u32,
    /// `cgroup_root.hierarchy_id`
    pub cgroup_root_hierarchy_id: u32,
    /// `socket.type`
    pub socket_type: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `sock.sk_protocol`; [`UNAVAILABLE`] where it is a bitfield (< 5.6).
    pub sock_protocol: u32,
    /// `pt_regs` offset of the syscall number (x86_64 `orig_ax`).
    pub regs_syscall_nr: u32,
    /// `pt_regs` offset of syscall argument 0 (x86_64 `di`).
    pub regs_arg0: u32,
    /// `pt_regs` offset of syscall argument 1 (x86_64 `si`).
    pub regs_arg1: u32,
    /// `pt_regs` offset of syscall argument 2 (x86_64 `dx`).
    pub regs_arg2: u32,
    /// `pt_regs` offset of syscall argument 3 (x86_64 `r10`).
    pub regs_arg3: u32,
    /// `pt_regs` offset of compat (ia32) syscall argument 0 (`bx`).
    pub regs_compat_arg0: u32,
    /// `pt_regs` offset of compat syscall argument 1 (`cx`).
    pub regs_compat_arg1: u32,
    /// `pt_regs` offset of compat syscall argument 2 (`dx`).
    pub regs_compat_arg2: u32,
    /// `pt_regs` offset of compat syscall argument 3 (`si`).
    pub regs_compat_arg3: u32,
    /// `task_struct.thread_info.status` (x86 `TS_COMPAT` lives there);
    /// [`UNAVAILABLE`] where the architecture has no such field.
    pub task_thread_status: u32,
    /// `inode.i_mode`
    pub inode_mode: u32,
    /// `task_struct.flags` (`PF_IO_WORKER`)
    pub task_flags: u32,
    /// `file.f_flags`
    pub file_f_flags: u32,
    /// `css_set.dfl_cgrp`
    pub css_set_dfl_cgrp: u32,
    /// Index of `sched_process_exit`'s `group_dead` argument (6.16+), or
    /// [`UNAVAILABLE`].
    pub exit_group_dead_arg: u32,
    /// Index into `css_set.subsys[]` of the v1 controller whose cgroup is
    /// reported as `cgroup_v1_id`; [`UNAVAILABLE`] on pure cgroup2 hosts.
    pub v1_subsys_index: u32,
}

/// Offset value meaning "this kernel has no usable field"; the programs then
/// report the value as unknown instead of reading garbage.
pub const UNAVAILABLE: u32 = u32::MAX;

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) of u32 fields only: no padding, and any bit pattern is a
// valid value, so it can be written into the object's global as bytes.
unsafe impl aya::Pod for KernelOffsets {}
