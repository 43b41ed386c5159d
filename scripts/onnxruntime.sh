#!/usr/bin/env bash
# Puts libonnxruntime.so from the pinned `onnxruntime` wheel (PyPI) into a
# project-local, git-ignored folder and prints its path. Idempotent: a second
# call only prints the path. The wheel is the only registry that ships the
# native library for this machine; pip's own cache makes re-downloads cheap.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.24.4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/onnxruntime/$ORT_VERSION"
lib="$dest/libonnxruntime.so"
if [ ! -s "$lib" ]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --disable-pip-version-check --no-deps \
    --only-binary=:all: "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
  python3 - "$tmp" "$dest" "$ORT_VERSION" <<'PY'
import glob, os, sys, zipfile
tmp, dest, version = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read(f"onnxruntime/capi/libonnxruntime.so.{version}")
part = os.path.join(dest, "libonnxruntime.so.part")
with open(part, "wb") as f:
    f.write(data)
os.replace(part, os.path.join(dest, "libonnxruntime.so"))
PY
fi
echo "$lib"
