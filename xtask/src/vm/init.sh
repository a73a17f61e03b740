#!/bin/busybox sh
# PID 1 of the test guest: load the modules the 9p root needs, mount the
# host's root read-only with tmpfs where tests write, then hand over to the
# run script xtask wrote into the shared output directory.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

die() {
    echo "vm-init: $*"
    echo o > /proc/sysrq-trigger
    sleep 10
}

for m in /modules/*.ko; do
    insmod "$m" || die "insmod $m failed"
done

R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 root $R \
    || die "mounting the host root over 9p failed"
for d in tmp run var/tmp var/log var/lib var/cache root; do
    mount -t tmpfs -o mode=0755 tmpfs $R/$d || die "tmpfs on /$d failed"
done
chmod 1777 $R/tmp $R/var/tmp
mkdir -p $R/run/vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $R/run/vm \
    || die "mounting the output share failed"

# The repository (test binaries, sensor) over its own share at its own
# path: it may live under one of the tmpfs mounts above (a CI clone in /tmp).
repo=$(cat $R/run/vm/repo) || die "no repository path in the output share"
mkdir -p "$R$repo" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 repo "$R$repo" \
    || die "mounting the repository share failed"

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# Pure cgroup2, as on current nodes; the host covers the hybrid layout.
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t securityfs securityfs $R/sys/kernel/security
mount -t bpf bpf $R/sys/fs/bpf
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null

ip link set lo up
hostname sensor-vm

exec switch_root $R /bin/sh /run/vm/run.sh
