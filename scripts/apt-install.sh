#!/usr/bin/env bash
# scripts/apt-install.sh PKG[=VERSION]... — install Debian packages the project
# needs, the one way every make target does it:
#   - a no-op (and silent) when every package is already installed (dpkg);
#   - otherwise `apt-get install -y --no-install-recommends` of the missing ones,
#     with `apt-get update` first only when there are no package lists yet
#     (a fresh container), and once (then retrying) if the install fails on
#     stale lists;
#   - serialised with flock, so parallel make targets (or engineers) sharing a
#     machine do not fight over the dpkg lock;
#   - as root, or through sudo when not root.
# PKG=VERSION pins a Debian version; it counts as present only at that version.
# Examples:
#   scripts/apt-install.sh prometheus
#   scripts/apt-install.sh postgresql haproxy
set -euo pipefail

[ "$#" -gt 0 ] || { echo "usage: $0 PKG[=VERSION]..." >&2; exit 2; }

installed() { # PKG[=VERSION]
	local name=${1%%=*} want= got
	[[ $1 == *=* ]] && want=${1#*=}
	got=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$name" 2>/dev/null) || return 1
	[[ $got == installed\ * ]] || return 1
	[[ -z $want || ${got#installed } == "$want" ]]
}

missing=()
for p in "$@"; do
	installed "$p" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "apt-install: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -y -q -o DPkg::Lock::Timeout=600)
LOCK=${APT_INSTALL_LOCK:-/tmp/mlservice-apt-install.lock}

exec 9>"$LOCK"
flock 9
# Someone may have installed them while we waited for the lock.
still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
[ "${#still[@]}" -eq 0 ] && exit 0

have_lists() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]
}
echo "apt-install: installing ${still[*]}" >&2
updated=0
if ! have_lists; then
	"${APT[@]}" update >&2
	updated=1
fi
if ! "${APT[@]}" install --no-install-recommends "${still[@]}" >&2; then
	[ "$updated" -eq 0 ] || exit 1
	"${APT[@]}" update >&2
	"${APT[@]}" install --no-install-recommends "${still[@]}" >&2
fi
for p in "${still[@]}"; do
	installed "$p" || { echo "apt-install: $p is still not installed" >&2; exit 1; }
done
