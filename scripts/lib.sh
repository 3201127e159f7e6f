# Shared by scripts/test.sh, scripts/bench.sh and cross/build.sh: messages,
# root for apt, and installing Debian packages. Source it; it runs nothing.

# Each message carries the time since the outermost script began, so a
# CI log shows where the suite's minutes go.
MAJORTOM_STARTED=${MAJORTOM_STARTED:-$(date +%s)}
export MAJORTOM_STARTED
say() { printf '\n==> [%4ss] %s\n' "$(($(date +%s) - MAJORTOM_STARTED))" "$*" >&2; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

_apt_updated=0
# apt_get_install PACKAGE...: installs the packages (apt-get update once).
apt_get_install() {
    say "installing $* (apt)"
    if [ "$_apt_updated" -eq 0 ]; then
        as_root apt-get update -qq || die "apt-get update failed"
        _apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "could not install $*"
}
