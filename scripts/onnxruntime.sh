#!/usr/bin/env bash
# Puts libonnxruntime.so from the pinned `onnxruntime` wheel (PyPI) into a
# project-local, git-ignored folder and prints its path. The wheel is the only
# registry that ships the native library for this machine; pip's own cache
# makes re-downloads cheap.
#
# Both are pinned by sha256 (the table below): the wheel is downloaded with
# `pip download --require-hashes`, and the library is checked before it is
# put in place and again on every call, so a cached copy that was altered or
# truncated is found: it is reported and fetched again (ORT_VERIFY_ONLY=1:
# reported, exit 1, nothing fetched).
#
#   ORT_VERSION [1.24.4]   ORT_DIR [.cache/onnxruntime/$ORT_VERSION]
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.24.4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${ORT_DIR:-$root/.cache/onnxruntime/$ORT_VERSION}"
lib="$dest/libonnxruntime.so"
arch="$(uname -m)"

# version/arch -> sha256 of the cp311 manylinux wheel, sha256 of the library in it.
# To add one: pip download --no-deps --only-binary=:all: --python-version 3.11 \
#   --platform manylinux_2_28_<arch> --platform manylinux_2_27_<arch> onnxruntime==<v> -d /tmp/w,
# then sha256sum the wheel and onnxruntime/capi/libonnxruntime.so.<v> inside it.
case "$ORT_VERSION/$arch" in
1.24.4/x86_64)
	wheel_sha=e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330
	lib_sha=2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24 ;;
1.24.4/aarch64)
	wheel_sha=046ff290045a387676941a02a8ae5c3ebec6b4f551ae228711968c4a69d8f6b7
	lib_sha=f373ae5fd4d878ed17ebea26e5480bd3d0a15e3bd6bc94b878e6c1b73998d22a ;;
*)
	echo "onnxruntime.sh: no pinned sha256 for onnxruntime $ORT_VERSION on $arch; add it to $0" >&2
	exit 1 ;;
esac

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -e "$lib" ]; then
	got="$(sha "$lib")"
	if [ "$got" = "$lib_sha" ]; then
		echo "$lib"
		exit 0
	fi
	echo "onnxruntime.sh: $lib has sha256 $got, want $lib_sha (altered or truncated)" >&2
	[ -z "${ORT_VERIFY_ONLY:-}" ] || exit 1
	echo "onnxruntime.sh: fetching it again" >&2
	rm -f "$lib"
elif [ -n "${ORT_VERIFY_ONLY:-}" ]; then
	echo "onnxruntime.sh: no $lib" >&2
	exit 1
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime==$ORT_VERSION --hash=sha256:$wheel_sha" >"$tmp/requirements.txt"
python3 -m pip download -q --disable-pip-version-check --no-input --no-deps --require-hashes \
	--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
	--platform "manylinux_2_28_$arch" --platform "manylinux_2_27_$arch" \
	-r "$tmp/requirements.txt" -d "$tmp/wheel" >&2
python3 - "$tmp/wheel" "$tmp/lib.part" "$ORT_VERSION" <<'PY'
import glob, os, sys, zipfile
wheels, part, version = sys.argv[1:]
wheel = glob.glob(os.path.join(wheels, "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z, open(part, "wb") as f:
    f.write(z.read(f"onnxruntime/capi/libonnxruntime.so.{version}"))
PY
got="$(sha "$tmp/lib.part")"
if [ "$got" != "$lib_sha" ]; then
	echo "onnxruntime.sh: the library in the wheel has sha256 $got, want $lib_sha" >&2
	exit 1
fi
# A name of our own beside the target, then one rename: a concurrent run
# never sees a half-copied library.
mv "$tmp/lib.part" "$dest/libonnxruntime.so.part.$$"
mv "$dest/libonnxruntime.so.part.$$" "$lib"
echo "$lib"
