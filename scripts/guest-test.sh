#!/usr/bin/env bash
# The npukit kernel module in a QEMU guest, against the model: installs what
# is missing (QEMU 10 from bookworm-backports, busybox-static, dwarves, ...),
# downloads and unpacks the Debian 6.12 kernel image and headers (dpkg -x;
# nothing is installed into the host's kernel), builds kmd/ against them,
# builds a busybox initramfs with the C tests linked statically, starts the
# host side (npukit-ivshmem, the model behind QEMU's ivshmem-doorbell),
# boots with -accel tcg, runs the tests in the guest and reports on the host.
# docs/kernel.md explains it. Exit code 0 only if every guest test passed.
#
#   bash scripts/guest-test.sh
#
# Environment: NPUKIT_GUEST_CACHE (downloads and the unpacked kernel, default
# ~/.cache/npukit-guest), NPUKIT_BACKEND / NPUKIT_CONFIG (the device behind
# the server, as for the shim), NPUKIT_KMD_PARAMS (module parameters),
# NPUKIT_IVSHMEM (a prebuilt npukit-ivshmem), NPUKIT_GUEST_DEBUG (shell
# commands the guest runs after loading the modules).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${NPUKIT_GUEST_CACHE:-${HOME:-/tmp}/.cache/npukit-guest}
WORK=$ROOT/target/guest
T0=$(date +%s)
say() { echo "npukit guest: $*"; }
elapsed() { echo "$(($(date +%s) - T0))s"; }

# ----- host packages ----------------------------------------------------------
if ! apt-cache policy 2>/dev/null | grep -q bookworm-backports; then
    say "adding the bookworm-backports apt source (QEMU 10 and kernel 6.12 come from there)"
    cat > /etc/apt/sources.list.d/npukit-backports.sources <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
    apt-get update -qq
fi
need=()
need_qemu=0
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_qemu=1
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v pahole >/dev/null 2>&1 || need+=(dwarves)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ] || [ $need_qemu = 1 ]; then
    apt-get update -qq
fi
if [ $need_qemu = 1 ]; then
    # QEMU 10 and what it depends on (qemu-system-data, seabios, ...) all from
    # bookworm-backports: naming only the package with /bookworm-backports
    # leaves its dependencies to bookworm's older versions, which it refuses.
    say "installing QEMU 10 from bookworm-backports: qemu-system-x86 (the guest), without its GUI recommends"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports qemu-system-x86 >/dev/null
fi
if [ ${#need[@]} -gt 0 ]; then
    say "installing missing packages: ${need[*]}"
    say "(busybox-static: the guest's userland; dwarves: pahole for the module's BTF; gcc, make, libc6-dev: module and static tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ----- the kernel: Debian's 6.12 from bookworm-backports ---------------------
KPKG=$(apt-cache depends -t bookworm-backports linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.12[^ ]*-amd64\)$/\1/p' | head -1)
[ -n "$KPKG" ] || { say "no linux-image-6.12 in bookworm-backports (apt-get update?)"; exit 1; }
KVER=${KPKG#linux-image-}
KBASE=${KVER%-amd64}
mkdir -p "$CACHE/debs"
KROOT=$CACHE/root-$KVER
if [ ! -e "$KROOT/.unpacked" ]; then
    (cd "$CACHE/debs" && for p in "linux-image-$KVER" "linux-headers-$KVER" \
        "linux-headers-$KBASE-common" "linux-kbuild-$KBASE"; do
        ls "${p}"_*.deb >/dev/null 2>&1 || { say "downloading $p"; apt-get download -qq "$p" 2>/dev/null; }
    done)
    rm -rf "$KROOT"
    mkdir -p "$KROOT"
    for d in "$CACHE"/debs/linux-{image-${KVER},headers-${KVER},headers-${KBASE}-common,kbuild-${KBASE}}_*.deb; do
        dpkg -x "$d" "$KROOT"
    done
    # The headers' Makefile includes the common tree by its installed path.
    sed -i "s|^include /usr/src/|include $KROOT/usr/src/|" "$KROOT/usr/src/linux-headers-$KVER/Makefile"
    touch "$KROOT/.unpacked"
fi
KDIR=$KROOT/usr/src/linux-headers-$KVER
say "kernel $KVER ready ($(elapsed))"

# ----- the module, the host server, the tests ---------------------------------
rm -rf "$WORK"
mkdir -p "$WORK/kmd" "$WORK/initramfs"/{bin,modules,tests,etc}
cp kmd/*.c kmd/*.h kmd/Kbuild "$WORK/kmd/"
make -s -C "$KDIR" M="$WORK/kmd" NPUKIT_ROOT="$ROOT" modules
say "kmd/npukit.ko built ($(elapsed))"
# The host server: NPUKIT_IVSHMEM names one already built (scripts/test.sh
# passes the one `cargo test --workspace` just built); else cargo builds it.
SERVER_BIN=${NPUKIT_IVSHMEM:-}
if [ -z "$SERVER_BIN" ] || [ ! -x "$SERVER_BIN" ]; then
    cargo build -q -p npukit-shim --bin npukit-ivshmem
    SERVER_BIN=$ROOT/target/debug/npukit-ivshmem
    say "npukit-ivshmem built ($(elapsed))"
fi
CFLAGS=(-static -O2 -Wall -Wextra -Werror -pthread -Idriver-shim/include -Ifirmware-abi/include
    -Idriver-shim/examples/c -Idriver-shim/tests/c)
for t in driver-shim/examples/c/{gemm,mt,mp,jobs,discover}.c driver-shim/tests/c/{negative,hang,isolation,long}.c \
    scripts/guest/accel_node.c; do
    gcc "${CFLAGS[@]}" -o "$WORK/initramfs/tests/$(basename "$t" .c)" "$t"
done
IR=$WORK/initramfs
cp /bin/busybox "$IR/bin/busybox"
cp scripts/guest/init "$IR/init"
xz -dc "$KROOT/lib/modules/$KVER/kernel/drivers/gpu/drm/drm.ko.xz" > "$IR/modules/drm.ko"
cp "$WORK/kmd/npukit.ko" "$IR/modules/"
echo "${NPUKIT_KMD_PARAMS:-}" > "$IR/etc/npukit-params"
printf '%s\n' "${NPUKIT_GUEST_DEBUG:-}" > "$IR/etc/npukit-debug"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.cpio.gz"
say "initramfs with the tests built ($(elapsed))"

# ----- boot, once per backend ----------------------------------------------
# NPUKIT_GUEST_BACKENDS: the devices behind the server, one guest boot each,
# as BACKEND[:CONFIG] (default: NPUKIT_BACKEND, else model). rtl and
# lockstep need a server with the RTL built in (cargo test builds that one).
BACKENDS=${NPUKIT_GUEST_BACKENDS:-${NPUKIT_BACKEND:-model}${NPUKIT_CONFIG:+:$NPUKIT_CONFIG}}
total_passed=0
total_failed=0
boot_one() { # BACKEND CONFIG
    local backend=$1 config=$2 log=$WORK/console-$1.log slog=$WORK/server-$1.log
    local sock=$WORK/npu-$1.sock mem server boot qemu_rc server_rc passed failed
    # Card memory: 64 MiB as the shim's default; the RTL backends copy all of
    # it per slice, so they get 8 MiB unless NPUKIT_GUEST_MEM_MB says.
    case "$backend" in model) mem=64 ;; *) mem=8 ;; esac
    mem=${NPUKIT_GUEST_MEM_MB:-$mem}
    NPUKIT_BACKEND=$backend NPUKIT_CONFIG=$config \
        "$SERVER_BIN" --socket "$sock" --mem-mb "$mem" 2> "$slog" &
    server=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
    if [ ! -S "$sock" ]; then
        cat "$slog"
        say "[$backend] the server did not start"
        kill "$server" 2>/dev/null || true
        total_failed=$((total_failed + 1))
        return
    fi
    say "[$backend${config:+ $config}] booting"
    boot=$(date +%s)
    set +e
    timeout 170 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -no-reboot \
        -display none -monitor none -serial stdio \
        -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$WORK/initramfs.cpio.gz" \
        -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init" \
        -chardev socket,path="$sock",id=npu -device ivshmem-doorbell,chardev=npu,vectors=1 \
        < /dev/null 2>&1 | tee "$log" | grep -a --line-buffered -E '^(NPUKIT|  [a-z_-]+\| )'
    qemu_rc=${PIPESTATUS[0]}
    # The server exits when QEMU disconnects.
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill "$server" 2>/dev/null
    wait "$server"
    server_rc=$?
    set -e
    sed "s/^/npukit guest: [$backend] /" "$slog"
    passed=$(grep -ac '^NPUKIT-TEST .* PASS' "$log" || true)
    failed=$(grep -ac '^NPUKIT-TEST .* FAIL' "$log" || true)
    if ! grep -aq '^NPUKIT-GUEST-DONE' "$log"; then
        say "[$backend] the guest did not finish (qemu exit $qemu_rc); last console lines:"
        tail -40 "$log"
        failed=$((failed + 1))
    fi
    if [ "$server_rc" != 0 ]; then
        say "[$backend] npukit-ivshmem exited with $server_rc"
        failed=$((failed + 1))
    fi
    say "[$backend] $passed passed, $failed failed; guest run $(($(date +%s) - boot))s (console: target/guest/console-$backend.log)"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
}
for b in $BACKENDS; do
    boot_one "${b%%:*}" "$([ "${b#*:}" != "$b" ] && echo "${b#*:}")"
done
say "whole script $(elapsed)"
echo "guest: $total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ] && [ "$total_passed" -gt 0 ]
