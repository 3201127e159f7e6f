#!/usr/bin/env bash
# Fetches what the emulated Raspberry Pi test (tests/e2e/emulated_pi.rs)
# boots: Debian's own arm64 kernel with the Pi 3 device tree, and a static
# busybox for the initramfs. The .debs come from Debian's archive through a
# private APT configuration (APT::Architecture arm64 in a directory of its
# own), so no dpkg foreign architecture is added: that breaks apt here.
#
#   scripts/emulated-pi.sh          fetch (once) into the cache and print it
#
# Cache: $MAJORTOM_EMULATED_PI (default ~/.cache/majortom/emulated-pi), with
# vmlinuz, bcm2837-rpi-3-b.dtb and busybox. QEMU itself (qemu-system-arm)
# and cpio come from the host's apt (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

CACHE=${MAJORTOM_EMULATED_PI:-$HOME/.cache/majortom/emulated-pi}
if [ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/bcm2837-rpi-3-b.dtb" ] && [ -x "$CACHE/busybox" ]; then
    echo "$CACHE"
    exit 0
fi

A=$CACHE/apt
rm -rf "$A"
mkdir -p "$A/etc/apt/sources.list.d" "$A/etc/apt/apt.conf.d" "$A/etc/apt/preferences.d" \
    "$A/var/lib/apt/lists/partial" "$A/var/cache/apt/archives/partial" "$A/var/lib/dpkg" "$A/debs"
touch "$A/var/lib/dpkg/status"
sources=$(ls /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
[ -n "$sources" ] || die "no apt sources on this machine (/etc/apt/sources.list.d/*.sources)"
# shellcheck disable=SC2086
cp $sources "$A/etc/apt/sources.list.d/" 2>/dev/null || true
cat > "$A/apt.conf" <<EOF
Dir "$A/";
Dir::State::status "$A/var/lib/dpkg/status";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d/";
APT::Sandbox::User "root";
EOF
export APT_CONFIG=$A/apt.conf
say "fetching Debian's arm64 kernel and busybox-static (private APT config in $A)"
apt-get update -qq || die "apt-get update (arm64, private config) failed"
kernel=$(apt-cache depends linux-image-arm64 | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$kernel" ] || die "no linux-image-arm64 in the arm64 package lists"
(cd "$A/debs" && apt-get download -qq "$kernel" busybox-static) || die "could not download $kernel and busybox-static"
x=$A/x
for deb in "$A"/debs/*.deb; do dpkg-deb -x "$deb" "$x"; done
vmlinuz=$(ls "$x"/boot/vmlinuz-* 2>/dev/null | head -1)
dtb=$(find "$x" -name bcm2837-rpi-3-b.dtb | head -1)
[ -n "$vmlinuz" ] || die "$kernel has no /boot/vmlinuz-*"
[ -n "$dtb" ] || die "$kernel has no bcm2837-rpi-3-b.dtb"
[ -x "$x/bin/busybox" ] || die "busybox-static has no /bin/busybox"
cp "$vmlinuz" "$CACHE/vmlinuz"
cp "$dtb" "$CACHE/bcm2837-rpi-3-b.dtb"
cp "$x/bin/busybox" "$CACHE/busybox"
echo "$kernel" > "$CACHE/kernel-package"
# Only the three files are needed: the lists and .debs are 300 MB.
rm -rf "$A"
echo "$CACHE"
