//! Kernel struct offsets from the running kernel's BTF (see
//! `sensor_common::offsets` for why). Every lookup names the struct and field,
//! so a kernel that renamed or removed one fails with that name.
use std::path::Path;

use btf_rs::{Btf, Type};
use sensor_common::{KernelOffsets, UNAVAILABLE};
use thiserror::Error;

/// A field the programs need could not be located.
#[derive(Debug, Error)]
pub enum OffsetError {
    /// The BTF file could not be read or parsed.
    #[error("cannot read kernel BTF at {path}: {source}")]
    Btf {
        /// Where we looked.
        path: String,
        /// Why it failed.
        source: btf_rs::Error,
    },
    /// No struct of that name.
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    /// No such field (also searched inside anonymous structs/unions).
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    NoField {
        /// Struct searched.
        strukt: String,
        /// Dotted field path.
        field: String,
    },
    /// The field is a bitfield or not byte aligned.
    #[error("kernel BTF: {strukt}.{field} is a bitfield; it cannot be read at a byte offset")]
    Bitfield {
        /// Struct searched.
        strukt: String,
        /// Dotted field path.
        field: String,
    },
    /// Fields the programs read together lie too far apart.
    #[error("unsupported kernel struct layout: {0}")]
    Layout(String),
    /// An enum or enum value is missing.
    #[error("kernel BTF has no enum value {0}")]
    NoEnumValue(String),
}

/// The kernel's type information.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Parses a BTF file (normally /sys/kernel/btf/vmlinux).
    pub fn from_file(path: &Path) -> Result<Self, OffsetError> {
        Btf::from_file(path)
            .map(|btf| Self { btf })
            .map_err(|source| OffsetError::Btf {
                path: path.display().to_string(),
                source,
            })
    }

    fn strukt(&self, name: &str) -> Result<btf_rs::Struct, OffsetError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| OffsetError::NoStruct(name.into()))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| OffsetError::NoStruct(name.into()))
    }

    /// Strips typedefs and qualifiers.
    fn underlying(&self, mut t: Type) -> Type {
        loop {
            t = match &t {
                Type::Typedef(_)
                | Type::Const(_)
                | Type::Volatile(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    match t
                        .as_btf_type()
                        .and_then(|bt| self.btf.resolve_chained_type(bt).ok())
                    {
                        Some(next) => next,
                        None => return t,
                    }
                }
                _ => return t,
            }
        }
    }

    /// Finds `name` in `s`, descending into anonymous members.
    /// Returns (bit offset, member type, bitfield size).
    fn member(&self, s: &btf_rs::Struct, name: &str) -> Option<(u32, Type, Option<u32>)> {
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            let ty = self.btf.resolve_chained_type(m).ok()?;
            if mname == name {
                return Some((
                    m.bit_offset(),
                    self.underlying(ty),
                    m.bitfield_size().filter(|&b| b != 0),
                ));
            }
            if mname.is_empty()
                && let Type::Struct(inner) | Type::Union(inner) = self.underlying(ty)
                && let Some((off, t, bits)) = self.member(&inner, name)
            {
                return Some((m.bit_offset() + off, t, bits));
            }
        }
        None
    }

    /// Byte offset of a dotted field path (`d_name.len`) inside `strukt`.
    pub fn offset(&self, strukt: &str, field: &str) -> Result<u32, OffsetError> {
        let no_field = || OffsetError::NoField {
            strukt: strukt.into(),
            field: field.into(),
        };
        let mut current = self.strukt(strukt)?;
        let mut bits = 0u32;
        let mut parts = field.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, ty, bitfield) = self.member(&current, part).ok_or_else(no_field)?;
            if bitfield.is_some() || off % 8 != 0 {
                return Err(OffsetError::Bitfield {
                    strukt: strukt.into(),
                    field: field.into(),
                });
            }
            bits += off;
            if parts.peek().is_some() {
                current = match ty {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => return Err(no_field()),
                };
            }
        }
        Ok(bits / 8)
    }

    /// Byte size of an array field (e.g. the inline name of a dentry).
    pub fn array_len(&self, strukt: &str, field: &str) -> Result<u32, OffsetError> {
        let no_field = || OffsetError::NoField {
            strukt: strukt.into(),
            field: field.into(),
        };
        let mut current = self.strukt(strukt)?;
        let mut parts = field.split('.').peekable();
        while let Some(part) = parts.next() {
            let (_, ty, _) = self.member(&current, part).ok_or_else(no_field)?;
            match ty {
                Type::Struct(s) | Type::Union(s) if parts.peek().is_some() => current = s,
                Type::Array(a) if parts.peek().is_none() => return Ok(a.len() as u32),
                _ => return Err(no_field()),
            }
        }
        Err(no_field())
    }

    /// Number of arguments of a tracepoint (from its `btf_trace_<name>`
    /// typedef, minus the leading `void *__data`).
    pub fn tracepoint_arity(&self, tracepoint: &str) -> Result<usize, OffsetError> {
        let name = format!("btf_trace_{tracepoint}");
        let missing = || OffsetError::NoStruct(name.clone());
        let types = self
            .btf
            .resolve_types_by_name(&name)
            .map_err(|_| missing())?;
        let typedef = types
            .into_iter()
            .find(|t| matches!(t, Type::Typedef(_)))
            .ok_or_else(missing)?;
        let ptr = typedef
            .as_btf_type()
            .and_then(|bt| self.btf.resolve_chained_type(bt).ok())
            .ok_or_else(missing)?;
        match ptr
            .as_btf_type()
            .and_then(|bt| self.btf.resolve_chained_type(bt).ok())
        {
            Some(Type::FuncProto(proto)) => Ok(proto.parameters.len().saturating_sub(1)),
            _ => Err(missing()),
        }
    }

    /// The first of several alternative field names this kernel has.
    fn first_of<'f>(&self, strukt: &str, fields: &[&'f str]) -> Result<&'f str, OffsetError> {
        fields
            .iter()
            .copied()
            .find(|f| self.offset(strukt, f).is_ok())
            .ok_or_else(|| OffsetError::NoField {
                strukt: strukt.into(),
                field: fields.join(" or "),
            })
    }

    /// Size of a struct.
    pub fn size_of(&self, strukt: &str) -> Result<u32, OffsetError> {
        Ok(self.strukt(strukt)?.size() as u32)
    }

    /// Value of an enumerator of a named enum (e.g. `memory_cgrp_id` in
    /// `cgroup_subsys_id`).
    pub fn enum_value(&self, enumeration: &str, value: &str) -> Result<u32, OffsetError> {
        let missing = || OffsetError::NoEnumValue(format!("{enumeration}::{value}"));
        let types = self
            .btf
            .resolve_types_by_name(enumeration)
            .map_err(|_| missing())?;
        types
            .iter()
            .filter_map(|t| match t {
                Type::Enum(e) => Some(e),
                _ => None,
            })
            .flat_map(|e| e.members.iter())
            .find(|m| self.btf.resolve_name(*m).is_ok_and(|n| n == value))
            .map(|m| m.val())
            .ok_or_else(missing)
    }

    /// All offsets the programs use. `v1_controller` names the cgroup v1
    /// controller whose cgroup events report (e.g. "memory"), if any.
    pub fn kernel_offsets(
        &self,
        v1_controller: Option<&str>,
    ) -> Result<KernelOffsets, OffsetError> {
        let o = |s: &str, f: &str| self.offset(s, f);
        let (regs_nr, regs_args, regs_compat) = pt_regs_fields();
        // Renamed in 6.14 (union shortname_store).
        let iname = self.first_of("dentry", &["d_shortname.string", "d_iname"])?;
        let offsets = KernelOffsets {
            task_pid: o("task_struct", "pid")?,
            task_tgid: o("task_struct", "tgid")?,
            task_real_parent: o("task_struct", "real_parent")?,
            task_cred: o("task_struct", "cred")?,
            task_nsproxy: o("task_struct", "nsproxy")?,
            task_thread_pid: o("task_struct", "thread_pid")?,
            task_start_boottime: o("task_struct", "start_boottime")?,
            task_mm: o("task_struct", "mm")?,
            task_fs: o("task_struct", "fs")?,
            task_files: o("task_struct", "files")?,
            task_signal: o("task_struct", "signal")?,
            task_cgroups: o("task_struct", "cgroups")?,
            task_exit_code: o("task_struct", "exit_code")?,
            cred_euid: o("cred", "euid")?,
            cred_egid: o("cred", "egid")?,
            nsproxy_mnt_ns: o("nsproxy", "mnt_ns")?,
            mnt_ns_inum: o("mnt_namespace", "ns.inum")?,
            pid_level: o("pid", "level")?,
            pid_numbers: o("pid", "numbers")?,
            upid_size: self.size_of("upid")?,
            upid_nr: o("upid", "nr")?,
            upid_ns: o("upid", "ns")?,
            pid_ns_inum: o("pid_namespace", "ns.inum")?,
            mm_arg_start: o("mm_struct", "arg_start")?,
            mm_arg_end: o("mm_struct", "arg_end")?,
            binprm_file: o("linux_binprm", "file")?,
            file_path: o("file", "f_path")?,
            file_inode: o("file", "f_inode")?,
            file_private_data: o("file", "private_data")?,
            inode_ino: o("inode", "i_ino")?,
            path_mnt: o("path", "mnt")?,
            path_dentry: o("path", "dentry")?,
            dentry_parent: o("dentry", "d_parent")?,
            dentry_name: o("dentry", "d_name.name")?,
            dentry_name_len: o("dentry", "d_name.len")?,
            dentry_iname: o("dentry", iname)?,
            dentry_iname_len: self.array_len("dentry", iname)?,
            vfsmount_root: o("vfsmount", "mnt_root")?,
            mount_mnt: o("mount", "mnt")?,
            mount_parent: o("mount", "mnt_parent")?,
            mount_mountpoint: o("mount", "mnt_mountpoint")?,
            fs_pwd: o("fs_struct", "pwd")?,
            files_fdt: o("files_struct", "fdt")?,
            fdt_max_fds: o("fdtable", "max_fds")?,
            fdt_fd: o("fdtable", "fd")?,
            signal_live: o("signal_struct", "live")?,
            css_set_subsys: o("css_set", "subsys")?,
            css_cgroup: o("cgroup_subsys_state", "cgroup")?,
            cgroup_kn: o("cgroup", "kn")?,
            cgroup_root: o("cgroup", "root")?,
            cgroup_level: o("cgroup", "level")?,
            kernfs_node_id: o("kernfs_node", "id")?,
            cgroup_root_hierarchy_id: o("cgroup_root", "hierarchy_id")?,
            socket_type: o("socket", "type")?,
            socket_sk: o("socket", "sk")?,
            // A bitfield before 5.6: report protocol as unknown there.
            sock_protocol: o("sock", "sk_protocol").unwrap_or(UNAVAILABLE),
            regs_syscall_nr: o("pt_regs", regs_nr)?,
            regs_arg0: o("pt_regs", regs_args[0])?,
            regs_arg1: o("pt_regs", regs_args[1])?,
            regs_arg2: o("pt_regs", regs_args[2])?,
            regs_arg3: o("pt_regs", regs_args[3])?,
            regs_compat_arg0: o("pt_regs", regs_compat[0])?,
            regs_compat_arg1: o("pt_regs", regs_compat[1])?,
            regs_compat_arg2: o("pt_regs", regs_compat[2])?,
            regs_compat_arg3: o("pt_regs", regs_compat[3])?,
            // Only x86 keeps TS_COMPAT there; elsewhere compat is not mapped.
            task_thread_status: if cfg!(target_arch = "x86_64") {
                o("task_struct", "thread_info.status")?
            } else {
                UNAVAILABLE
            },
            inode_mode: o("inode", "i_mode")?,
            task_flags: o("task_struct", "flags")?,
            file_f_flags: o("file", "f_flags")?,
            css_set_dfl_cgrp: o("css_set", "dfl_cgrp")?,
            // 6.16 added `bool group_dead` as the exit tracepoint's second
            // argument; older kernels leave signal->live to race.
            exit_group_dead_arg: if self.tracepoint_arity("sched_process_exit")? >= 2 {
                1
            } else {
                UNAVAILABLE
            },
            v1_subsys_index: match v1_controller {
                Some(c) => self.enum_value("cgroup_subsys_id", &format!("{c}_cgrp_id"))?,
                None => UNAVAILABLE,
            },
        };
        check_windows(&offsets)?;
        Ok(offsets)
    }
}

/// The programs read some fields through fixed-size windows (one probe for
/// several fields); refuse a kernel whose layout spreads them further apart.
fn check_windows(o: &KernelOffsets) -> Result<(), OffsetError> {
    use sensor_common::{DENTRY_WINDOW, FILE_WINDOW, INLINE_NAME_COPY, MOUNT_WINDOW};
    let span = |fields: &[(u32, u32)]| {
        let lo = fields.iter().map(|(off, _)| *off).min().unwrap_or(0);
        let hi = fields.iter().map(|(off, len)| off + len).max().unwrap_or(0);
        (lo, (hi - lo) as usize)
    };
    let (lo, dentry) = span(&[
        (o.dentry_parent, 8),
        (o.dentry_name, 8),
        (o.dentry_name_len, 4),
        (o.dentry_iname, o.dentry_iname_len),
    ]);
    let inline_end = (o.dentry_iname - lo) as usize + INLINE_NAME_COPY;
    if dentry > DENTRY_WINDOW || inline_end > DENTRY_WINDOW {
        return Err(OffsetError::Layout(format!(
            "dentry fields span {dentry} bytes (inline name ends at {inline_end}); the walk reads {DENTRY_WINDOW}"
        )));
    }
    let (_, file) = span(&[
        (o.file_path + o.path_dentry, 8),
        (o.file_path + o.path_mnt, 8),
        (o.file_inode, 8),
    ]);
    if file > FILE_WINDOW {
        return Err(OffsetError::Layout(format!(
            "file fields span {file} bytes; the programs read {FILE_WINDOW}"
        )));
    }
    let (_, mount) = span(&[
        (o.mount_parent, 8),
        (o.mount_mountpoint, 8),
        (o.mount_mnt + o.vfsmount_root, 8),
    ]);
    if mount > MOUNT_WINDOW {
        return Err(OffsetError::Layout(format!(
            "mount fields span {mount} bytes; the walk reads {MOUNT_WINDOW}"
        )));
    }
    Ok(())
}

type RegNames = [&'static str; 4];

/// pt_regs fields holding the syscall number, arguments 0..4 at syscall
/// exit, and arguments 0..4 of a compat (ia32) syscall.
#[cfg(target_arch = "x86_64")]
fn pt_regs_fields() -> (&'static str, RegNames, RegNames) {
    (
        "orig_ax",
        ["di", "si", "dx", "r10"],
        ["bx", "cx", "dx", "si"],
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn pt_regs_fields() -> (&'static str, RegNames, RegNames) {
    compile_error!("syscall argument registers are only mapped for x86_64 so far");
}
