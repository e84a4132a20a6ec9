#!/usr/bin/env bash
# Builds the small test guest (Debian kernel + static busybox + virtio modules in an initramfs)
# into ${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest/<hash>/ and points guest/current at it.
# The hash covers this script, guest/, the kernel package version and the busybox version, so
# the guest is rebuilt only when one of them changes. Progress goes to stderr; the last line on
# stdout is the guest directory. See docs/guest-image.md.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest
script_path="$repo_root/scripts/build-guest.sh"

# Wanted modules; their dependencies are added from modules.dep and everything is loaded in
# dependency order. button+evdev let busybox acpid see the ACPI power button (graceful shutdown).
wanted_modules=(
  virtio_ring virtio virtio_mmio
  virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
  virtio_blk failover net_failover virtio_net
  button evdev
)
# Loaded only when the kernel command line asks for VLANs (vmk.vlans=...): 8021q lets the guest
# tag its own frames on a trunk port group; every boot without it is a little faster.
vlan_modules=(8021q)

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found (Debian package $2); run scripts/setup.sh"
}

need_tool apt-cache apt
need_tool apt-get apt
need_tool dpkg-deb dpkg
need_tool depmod kmod
need_tool xz xz-utils
need_tool cpio cpio
need_tool gzip gzip
need_tool readelf binutils
need_tool flock util-linux
need_tool sha256sum coreutils

[ -x /bin/busybox ] || die "/bin/busybox not found (Debian package busybox-static); run scripts/setup.sh"
busybox_applets=$(/bin/busybox --list)
grep -qx udhcpc <<<"$busybox_applets" ||
  die "/bin/busybox lacks udhcpc; install busybox-static (not busybox), e.g. with scripts/setup.sh"

# The real package behind the linux-image-amd64 metapackage, e.g. linux-image-6.1.0-56-amd64.
resolve_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ && !found { print $2; found = 1 }'
}

kernel_pkg=$(resolve_kernel_package)
if [ -z "$kernel_pkg" ] && [ -z "${VMK_GUEST_APT_UPDATED:-}" ]; then
  log "apt does not know linux-image-amd64 yet; running apt-get update"
  apt-get update -qq >&2 || die "apt-get update failed; check the network and /etc/apt/sources.list"
  export VMK_GUEST_APT_UPDATED=1
  kernel_pkg=$(resolve_kernel_package)
fi
[ -n "$kernel_pkg" ] || die "cannot resolve the package behind linux-image-amd64 (is this Debian amd64 with main enabled?)"
kernel_pkg_version=$(apt-cache policy "$kernel_pkg" | awk '/Candidate:/ && !found { print $2; found = 1 }')
[ -n "$kernel_pkg_version" ] && [ "$kernel_pkg_version" != "(none)" ] ||
  die "no installable version of $kernel_pkg; run apt-get update"
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
[ -n "$busybox_version" ] || die "busybox-static is not installed; run scripts/setup.sh"

hash=$(
  {
    echo "kernel=$kernel_pkg $kernel_pkg_version"
    echo "busybox=$busybox_version"
    echo "modules=${wanted_modules[*]} vlan:${vlan_modules[*]}"
    sha256sum "$script_path" | cut -d' ' -f1
    (cd "$repo_root" && find guest -type f | LC_ALL=C sort | while read -r f; do
      echo "$f $(stat -c %a "$f") $(sha256sum "$f" | cut -d' ' -f1)"
    done)
  } | sha256sum | cut -c1-16
)
guest_dir="$cache_root/$hash"

point_current_at_guest() {
  ln -sfn "$hash" "$cache_root/current.tmp.$$"
  mv -T "$cache_root/current.tmp.$$" "$cache_root/current"
}

# Up to date: nothing to build, and a user who cannot write the cache can still use it.
if [ -f "$guest_dir/manifest.txt" ] && [ ! -w "$cache_root" ]; then
  log "guest $hash is up to date (cache not writable, current/ left as it is)"
  echo "$guest_dir"
  exit 0
fi

# World-readable (QEMU may run as vmkernel-qemu); directories that already exist keep their modes.
for d in "${VMK_CACHE_DIR:-/var/cache/vmkernel}" "$cache_root"; do
  [ -d "$d" ] || install -d -m 755 "$d" 2>/dev/null ||
    die "cannot create $d; run as root (scripts/setup.sh) or set VMK_CACHE_DIR to a writable directory"
done
[ -w "$cache_root" ] ||
  die "$cache_root is not writable; run as root (scripts/setup.sh) or set VMK_CACHE_DIR to a writable directory"

# One builder at a time per cache; a second caller waits and then finds the guest built.
exec 9>"$cache_root/.lock"
flock 9

if [ -f "$guest_dir/manifest.txt" ]; then
  log "guest $hash is up to date ($kernel_pkg $kernel_pkg_version, busybox $busybox_version)"
  point_current_at_guest
  echo "$guest_dir"
  exit 0
fi

work=$(mktemp -d "$cache_root/.build-$hash.XXXXXX")
chmod 755 "$work" # apt-get download runs as _apt and must reach $work/deb
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

log "building guest $hash: $kernel_pkg $kernel_pkg_version, busybox $busybox_version"

# The kernel package is kept next to the builds, so editing guest/ rebuilds without the network.
deb_cache="$cache_root/.debs"
mkdir -p "$deb_cache"
deb="$deb_cache/${kernel_pkg}_${kernel_pkg_version//:/%3a}_amd64.deb"
if [ -s "$deb" ] && dpkg-deb --info "$deb" >/dev/null 2>&1; then
  log "using cached $(basename "$deb")"
else
  # apt-get download drops privileges to _apt, which must be able to write the directory.
  mkdir "$work/deb"
  chown _apt "$work/deb" 2>/dev/null || chmod 777 "$work/deb"
  log "downloading $kernel_pkg=$kernel_pkg_version"
  if ! (cd "$work/deb" && apt-get download -qq "$kernel_pkg=$kernel_pkg_version" >&2); then
    if [ -z "${VMK_GUEST_APT_UPDATED:-}" ]; then
      # Stale package lists name a version the mirror no longer has: refresh once and start over
      # (the hash may change with the new version).
      log "download failed; running apt-get update and retrying"
      apt-get update -qq >&2 || die "apt-get update failed; check the network and /etc/apt/sources.list"
      cleanup
      trap - EXIT
      exec 9>&-
      VMK_GUEST_APT_UPDATED=1 exec "$script_path"
    fi
    die "apt-get download $kernel_pkg failed; check the network and apt sources"
  fi
  downloaded=$(find "$work/deb" -name '*.deb' -print -quit)
  [ -n "$downloaded" ] || die "apt-get download produced no .deb for $kernel_pkg"
  # Only the kernel in use is worth keeping (~70 MB each).
  find "$deb_cache" -mindepth 1 -maxdepth 1 -name '*.deb' -delete
  mv "$downloaded" "$deb"
  rm -rf "$work/deb"
fi

log "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/pkg"
if [ ! -d "$work/pkg/lib/modules" ] && [ -d "$work/pkg/usr/lib/modules" ]; then
  ln -s usr/lib "$work/pkg/lib" # depmod -b looks under <base>/lib/modules
fi
kernel_release=$(ls "$work/pkg/lib/modules" | head -n 1)
[ -n "$kernel_release" ] || die "$kernel_pkg contains no lib/modules/<release>"
bzimage=$(ls "$work/pkg/boot/vmlinuz-$kernel_release" 2>/dev/null) ||
  die "$kernel_pkg contains no boot/vmlinuz-$kernel_release"
moddir="$work/pkg/lib/modules/$kernel_release"

out="$work/out"
mkdir -p "$out"
cp "$bzimage" "$out/bzImage"

# Debian ships only the compressed bzImage. Its payload is one XZ stream; try each XZ magic in
# the file (as the kernel's scripts/extract-vmlinux does) until one decompresses to an ELF.
log "extracting vmlinux from the bzImage"
found=
for offset in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/bzImage" | cut -d: -f1); do
  # tail may die of SIGPIPE once xz has the whole stream; only xz's status matters.
  if { tail -c +"$((offset + 1))" "$out/bzImage" || true; } | xz -dc --single-stream >"$out/vmlinux" 2>/dev/null &&
    [ "$(head -c 4 "$out/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
    found=$offset
    break
  fi
done
[ -n "$found" ] || die "no XZ stream in $bzimage decompresses to an ELF vmlinux (kernel not XZ-compressed?)"
# QEMU boots an ELF kernel directly (microvm, PVH) only if it carries the Xen PHYS32_ENTRY note (18).
notes=$(readelf -n "$out/vmlinux")
grep -Eq '^[[:space:]]*Xen[[:space:]].*\(0x0*12\)' <<<"$notes" ||
  die "vmlinux from $kernel_pkg has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); use bzImage instead"

log "resolving module dependencies"
depmod -b "$work/pkg" "$kernel_release"
# Path of a module (relative to moddir) by name; modules.dep spells '-' as '_' or '-' freely.
module_path() {
  local name=${1//-/_}
  awk -F: -v n="$name" '{
      f = $1; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f); gsub(/-/, "_", f)
      if (f == n) { print $1; exit }
    }' "$moddir/modules.dep"
}
declare -A visited=()
load_order=()
visit() { # depth-first: dependencies before the module that needs them
  local path=$1 dep
  [ -n "${visited[$path]:-}" ] && return 0
  visited[$path]=1
  for dep in $(awk -F: -v p="$path" '$1 == p { print $2; exit }' "$moddir/modules.dep"); do
    visit "$dep"
  done
  load_order+=("$path")
}
builtin_modules=()
add_modules() {
  local m path
  for m in "$@"; do
    path=$(module_path "$m")
    if [ -n "$path" ]; then
      visit "$path"
    elif grep -Eq "/${m//_/[-_]}\.ko$" "$moddir/modules.builtin"; then
      builtin_modules+=("$m")
    else
      die "module $m is neither in $kernel_pkg nor built into its kernel"
    fi
  done
}
add_modules "${wanted_modules[@]}"
base_count=${#load_order[@]}
add_modules "${vlan_modules[@]}" # only what the base set does not already load

log "assembling the initramfs"
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc/vmk,etc/acpi/PWRF,lib/modules,var/log}
ln -s bin "$root/sbin"
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for applet in $busybox_applets; do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
# The kernel opens /dev/console for init before anything can mount devtmpfs. Without root there
# is no device node; the kernel then warns once and /init opens /dev/ttyS0 itself.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null ||
  log "not root: no /dev/console node in the initramfs (harmless, /init opens the serial port itself)"
install -m 755 "$repo_root/guest/init" "$root/init"
install -m 755 "$repo_root/guest/udhcpc.script" "$root/etc/udhcpc.script"
install -m 755 "$repo_root/guest/acpi/power-button" "$root/etc/acpi/PWRF/00000080"

loaded_names=()
vlan_names=()
for i in "${!load_order[@]}"; do
  path=${load_order[$i]}
  name=$(basename "$path")
  case "$name" in
    *.ko.xz) name=${name%.xz}; xz -dc "$moddir/$path" >"$root/lib/modules/$name" ;;
    *.ko.zst) need_tool zstd zstd; name=${name%.zst}; zstd -qdc "$moddir/$path" >"$root/lib/modules/$name" ;;
    *.ko.gz) name=${name%.gz}; gzip -dc "$moddir/$path" >"$root/lib/modules/$name" ;;
    *.ko) cp "$moddir/$path" "$root/lib/modules/$name" ;;
    *) die "unexpected module file $path" ;;
  esac
  name=${name%.ko}
  if [ "$i" -lt "$base_count" ]; then
    loaded_names+=("$name")
    echo "$name" >>"$root/etc/vmk/modules"
  else
    vlan_names+=("$name")
    echo "$name" >>"$root/etc/vmk/modules.vlan"
  fi
done
touch "$root/etc/vmk/modules.vlan"

find "$root" -exec touch -h -d @0 {} + # same inputs, same initrd.gz
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
  gzip -9 -n >"$out/initrd.gz"

cat >"$out/manifest.txt" <<EOF
hash=$hash
kernel_package=$kernel_pkg
kernel_package_version=$kernel_pkg_version
kernel_release=$kernel_release
busybox_version=$busybox_version
modules=${loaded_names[*]}
vlan_modules=${vlan_names[*]}
builtin_modules=${builtin_modules[*]}
vmlinux_xz_offset=$found
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
chmod 644 "$out"/*
chmod 755 "$out"

rm -rf "$guest_dir"
mv -T "$out" "$guest_dir"
point_current_at_guest

# Keep the two previous builds (a VM booted from one may still be running or migrating); older
# ones only take space (~75 MB each).
find "$cache_root" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
  -printf '%T@ %p\n' | LC_ALL=C sort -rn | tail -n +4 | cut -d' ' -f2- | while read -r old; do
  log "removing old guest build $old"
  rm -rf "$old"
done
log "guest ready: $guest_dir ($(du -sh "$guest_dir/initrd.gz" | cut -f1) initrd, modules: ${loaded_names[*]}; with vmk.vlans: ${vlan_names[*]})"
echo "$guest_dir"
