#!/usr/bin/env python3
"""lock-subset.py UV_LOCK REQUIREMENTS ROOT... > subset.txt

Keeps from REQUIREMENTS (the output of `uv export --frozen --format
requirements-txt`, with its --hash lines) only the packages that ROOT... need,
following the dependency graph of UV_LOCK (extras included, markers kept as
uv wrote them, so pip still skips what does not apply). The result installs
with `pip install --require-hashes --no-deps -r subset.txt`: exactly the locked
versions, every file checked against the lock's sha256.

docker/mlflow.Dockerfile uses it to install MLflow from the notebooks' uv.lock
without the notebooks' other packages.
"""
import re
import sys
import tomllib


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock_path: str, req_path: str, roots: list[str]) -> None:
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    graph: dict[str, list[tuple[str, list[str]]]] = {}
    extras: dict[str, dict[str, list[tuple[str, list[str]]]]] = {}
    for pkg in lock.get("package", []):
        name = norm(pkg["name"])
        deps = [(norm(d["name"]), d.get("extra", [])) for d in pkg.get("dependencies", [])]
        graph.setdefault(name, []).extend(deps)
        for extra, ds in pkg.get("optional-dependencies", {}).items():
            extras.setdefault(name, {}).setdefault(extra, []).extend(
                (norm(d["name"]), d.get("extra", [])) for d in ds)
    need: set[str] = set()
    todo = [(norm(r), []) for r in roots]
    for name, _ in todo:
        if name not in graph:
            sys.exit(f"lock-subset: {name} is not in {lock_path}")
    seen: set[tuple[str, str]] = set()
    while todo:
        name, want_extras = todo.pop()
        key_plain = (name, "")
        if key_plain not in seen:
            seen.add(key_plain)
            need.add(name)
            todo.extend(graph.get(name, []))
        for extra in want_extras:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            todo.extend(extras.get(name, {}).get(extra, []))

    out, keep, found = [], False, set()
    with open(req_path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            if not line[0].isspace():
                name = norm(re.split(r"[=<>!~ ;@\[]", line, maxsplit=1)[0])
                keep = name in need
                if keep:
                    found.add(name)
            if keep and not line.lstrip().startswith("#"):
                out.append(line)
    missing = need - found
    if missing:
        sys.exit(f"lock-subset: not in {req_path}: {', '.join(sorted(missing))}")
    sys.stdout.write("# " + " ".join(sys.argv[1:3]) + f" for {' '.join(roots)} (scripts/lock-subset.py)\n")
    sys.stdout.writelines(out)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
