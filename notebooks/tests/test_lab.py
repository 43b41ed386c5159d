"""`make lab`'s JupyterLab: started headless from the locked env on a free 127.0.0.1 port, it lists
the project's kernel and opens both notebooks through its REST API (then it is stopped)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from conftest import KERNEL, NOTEBOOKS
from local_mlflow import free_port


@contextlib.contextmanager
def jupyter_lab():
    port, token = free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).parent / "jupyter"
    # the same flags as `make lab`, plus a token of our own
    cmd = [str(jupyter), "lab", "--ip=127.0.0.1", f"--port={port}", "--no-browser",
           "--ServerApp.root_dir=.", f"--MappingKernelManager.default_kernel_name={KERNEL}",
           f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:  # CI runs as root; jupyter refuses that without the flag
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=NOTEBOOKS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "JUPYTER_NO_CONFIG": "1"})
    base = f"http://127.0.0.1:{port}"
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            with contextlib.suppress(requests.RequestException):
                if s.get(f"{base}/api/status", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "jupyter lab did not answer in 180 s"
            time.sleep(0.5)
        yield base, s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_make_lab_target_uses_loopback_and_the_project_kernel():
    mk = (NOTEBOOKS / "notebooks.mk").read_text()
    assert "--ip=127.0.0.1" in mk and "default_kernel_name=$(NOTEBOOKS_KERNEL)" in mk


def test_jupyterlab_opens_both_notebooks_with_the_project_kernel():
    with jupyter_lab() as (base, s):
        assert s.get(f"{base}/lab", timeout=30).status_code == 200  # the JupyterLab front end itself
        specs = s.get(f"{base}/api/kernelspecs", timeout=30).json()
        assert KERNEL in specs["kernelspecs"], sorted(specs["kernelspecs"])
        argv0 = specs["kernelspecs"][KERNEL]["spec"]["argv"][0]
        assert Path(argv0).resolve().parent == Path(sys.executable).resolve().parent, argv0
        for name in ("eda.ipynb", "train.ipynb"):
            r = s.get(f"{base}/api/contents/{name}", params={"content": 1}, timeout=30)
            assert r.status_code == 200, (name, r.status_code, r.text[:300])
            nb = r.json()
            assert nb["type"] == "notebook" and nb["content"]["cells"], name
            assert nb["content"]["metadata"]["kernelspec"]["name"] == KERNEL
            # open it as JupyterLab does: a session with a running kernel
            sess = s.post(f"{base}/api/sessions", json={"path": name, "type": "notebook", "name": name,
                                                        "kernel": {"name": KERNEL}}, timeout=60)
            assert sess.status_code == 201, sess.text[:300]
            kernel = sess.json()["kernel"]
            assert kernel["name"] == KERNEL
            assert s.delete(f"{base}/api/sessions/{sess.json()['id']}", timeout=30).status_code == 204
