"""Confinement of a grading kernel with bubblewrap (``bwrap``, a Debian package).

The kernel runs as::

    bwrap --unshare-all --die-with-parent --new-session --ro-bind / /
          --dev /dev --proc /proc --tmpfs /tmp --tmpfs $HOME
          --tmpfs <each hidden folder> (the course and Python bound again inside)
          --bind <work folder> <work folder> --bind <sockets> <sockets>
          --chdir <work folder> -- python -m ...

- ``--unshare-all``: no network (a loopback of its own), and its own PID, IPC and UTS
  namespaces: when the kernel ends, the namespace's first process ends and the kernel
  takes every process it started with it, a detached ``Popen(start_new_session=True)``
  included. ``--die-with-parent``: the same when the grader itself is killed.
- The whole file system read-only; a private ``/tmp`` and home; the submissions
  folder and the grader's output (CSV, feedback) replaced by empty folders; only the
  kernel's own work folder writable.
- The kernel talks to the grader over Unix sockets (ZeroMQ ``ipc``) in a socket
  folder of its own, since it has no network to share with the grader; the split
  path's serve loop adds one of its own there.
- It is interrupted by an ``interrupt_request`` on its control channel, not by
  SIGINT: the signal would reach ``bwrap`` (the kernel runs in a session of its
  own, ``--new-session``), which it ends, and the kernel with it.

Where ``bwrap`` is missing or cannot create namespaces (a container without the
right), :func:`detect` says why in one line and the grader falls back to its
resource limits alone. ``NN_GRADE_SANDBOX=0`` forces the fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_SWITCH = "NN_GRADE_SANDBOX"


@dataclass
class Sandbox:
    """How to confine one run's kernels.

    Attributes:
        bwrap: the ``bwrap`` executable.
        hidden: folders the kernel must not see (replaced by empty ones).
    """

    bwrap: str
    hidden: list[Path] = field(default_factory=list)
    needed: list[Path] = field(default_factory=list)  # shown again inside a hidden one

    def command(self, argv: Sequence[str], workdir: Path, sockets: Path) -> list[str]:
        """``argv`` (the kernel's command) wrapped in ``bwrap``."""
        home = Path(os.environ.get("HOME") or "/root")
        args = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ]
        # a private /tmp and home, and the hidden folders: each empty, with the course
        # and Python shown again inside (a course cloned under /tmp stays visible)
        # each needed path once: one inside another comes with it (binding it again
        # fails on a symlink, such as a virtual environment's bin/python)
        needed = [
            p
            for p in self.needed
            if not any(q != p and _inside(p, q) for q in self.needed)
        ]
        for folder in [Path("/tmp"), home, *self.hidden]:
            if folder == Path("/"):
                continue
            args += ["--tmpfs", str(folder)]
            for path in needed:  # Python or the course (pyenv in ~)
                if _inside(path, folder):
                    args += ["--ro-bind", str(path), str(path)]
        for folder in (workdir, sockets):
            args += ["--bind", str(folder), str(folder)]
        # the kernel's parent is the namespace's init, not the grader: no polling
        args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", str(workdir), "--"]
        return args + list(argv)

    def kernel_manager(self, workdir: Path) -> Any:
        """A jupyter ``KernelManager`` whose kernel runs in this sandbox.

        Returns the manager; its socket folder is removed by :func:`cleanup`.
        """
        from jupyter_client.manager import AsyncKernelManager

        sockets = Path(tempfile.mkdtemp(prefix="nng-"))  # short: a socket path limit
        sandbox = self

        class _Confined(AsyncKernelManager):
            def format_kernel_cmd(self, extra_arguments=None):  # noqa: ANN001
                argv = super().format_kernel_cmd(extra_arguments)
                return sandbox.command(argv, workdir.resolve(), sockets)

            @property
            def kernel_spec(self):  # noqa: ANN202
                # interrupted by a message on the control channel, never by a
                # signal: SIGINT would reach bwrap, not the kernel in its session
                # (bwrap --new-session), and end both
                spec = super().kernel_spec
                if spec is not None:
                    spec.interrupt_mode = "message"
                return spec

        km = _Confined(
            kernel_name="python3",
            transport="ipc",
            ip=str(sockets / "k"),
            connection_file=str(sockets / "kernel.json"),
        )
        km._nn_sockets = sockets  # type: ignore[attr-defined]
        return km


def cleanup(km: Any) -> None:
    """Remove the socket folder of a manager made by :meth:`Sandbox.kernel_manager`."""
    sockets = getattr(km, "_nn_sockets", None)
    if sockets is not None:
        shutil.rmtree(sockets, ignore_errors=True)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def detect(hidden: Sequence[Path] = ()) -> tuple[Sandbox | None, str]:
    """The sandbox to use, or ``None`` and one line saying why not.

    Args:
        hidden: folders to hide from the kernels (the submissions, the output).
            One that holds the course or Python itself is left visible.
    """
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "off", "false"):
        return None, (
            f"no sandbox ({ENV_SWITCH}=0): kernels run with resource limits only"
        )
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, (
            "no sandbox: bubblewrap (bwrap) is not installed (apt-get install "
            "bubblewrap); kernels run with resource limits only"
        )
    try:
        probe = subprocess.run(
            [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"]
            + ["--proc", "/proc", "--dev", "/dev", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"no sandbox: bwrap did not run ({exc}); resource limits only"
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return None, (
            f"no sandbox: bwrap cannot create namespaces here ({why}); kernels run "
            "with resource limits only"
        )
    import sys

    from utils.grade import REPO

    needed = [REPO, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable)]
    needed = sorted({p.resolve() for p in needed} | {p.absolute() for p in needed})
    keep = [Path(h).resolve() for h in hidden]
    # a hidden folder that holds the course or Python: shown again read-only inside
    return Sandbox(bwrap, keep, needed), ""
