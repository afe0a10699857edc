"""Compiling the C++ extension safely: once, said aloud, with the environment's own ninja,
and never waiting forever on a lock.

torch's ``cpp_extension.load`` guards its build directory with a ``lock`` file that it
waits on without end; a compile interrupted at the wrong moment leaves that file behind,
and every later process hangs. rnnkit takes its own lock first: an ``flock`` on a file of
the directory, which the kernel releases when its holder dies, so it can never go stale.
Whoever holds it may remove torch's ``lock`` (no other rnnkit process can be building
there). A process that finds the flock taken waits at most ``RNNKIT_BUILD_WAIT`` seconds
(default 900) for the other build, then goes on without the extension. A library already
built is imported directly: no lock, no ninja, so the processes of a run start alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils import cpp_extension

DEFAULT_WAIT = 900.0  # seconds a process waits for another one's build


def build_root() -> Path:
    """Where this environment's builds live: under torch's extension cache
    (``TORCH_EXTENSIONS_DIR``, else its default), one directory per Python environment. The
    build commands name the environment's torch headers and ninja, so two environments
    sharing one directory would each find the other's build out of date and rebuild it,
    replacing the library under the other's running processes. torch's version is part of
    the directory's name too: an upgraded torch builds anew."""
    given = os.environ.get("TORCH_EXTENSIONS_DIR")
    accelerator = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    root = Path(given) if given else Path(cpp_extension.get_default_build_root()) / f"{python}_{accelerator}"
    environment = hashlib.sha1(f"{Path(torch.__file__).resolve().parent} {torch.__version__}".encode()).hexdigest()[:10]
    return root / f"env-{environment}"


@contextlib.contextmanager
def build_lock(directory: Path, wait: float | None = None) -> Iterator[bool]:
    """Hold ``directory``'s build lock (yields True), or yield False after ``wait`` seconds of
    another process holding it. Holding it, a torch ``lock`` file left by an interrupted
    build is removed, with a warning."""
    wait = float(os.environ.get("RNNKIT_BUILD_WAIT", DEFAULT_WAIT)) if wait is None else wait
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".rnnkit-build.lock", "w") as handle:
        start, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= start + wait:
                    yield False
                    return
                if not said and time.monotonic() > start + 3:  # not for another process's quick up-to-date check
                    print(f"rnnkit: another process is compiling the kernels in {directory}; waiting for it "
                          f"(at most {wait / 60:.0f} min)", file=sys.stderr, flush=True)
                    said = True
                time.sleep(0.05)
        try:
            stale = directory / "lock"
            if stale.exists():
                warnings.warn(f"rnnkit: removing {stale}, left by an interrupted compile", RuntimeWarning, stacklevel=3)
                stale.unlink()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def use_environment_ninja() -> None:
    """Put the ninja installed beside this interpreter (the environment's) first on PATH: a
    build always runs the same ninja, whose logs another one would discard, rebuilding all."""
    here = Path(sys.executable).parent
    if (here / "ninja").exists():
        path = os.environ.get("PATH", "").split(os.pathsep)
        os.environ["PATH"] = os.pathsep.join([str(here), *[p for p in path if p != str(here)]])


def _import(name: str, library: Path):
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name: str, sources: list[Path], cflags: list[str], ldflags: list[str]):
    """The compiled module ``name`` (built now if it is not cached), or None when another
    process's build did not finish in time. Build errors propagate.

    ``name`` must change with the sources and flags (the caller puts their digest in it):
    a library already built under that name, in this environment's directory, is then
    this very build and is imported without taking the lock or running ninja. One that
    does not import (a link cut short) is removed and built again."""
    directory = build_root() / name
    library = directory / f"{name}.so"
    if library.exists():
        try:
            return _import(name, library)
        except ImportError:
            library.unlink(missing_ok=True)
    use_environment_ninja()
    with build_lock(directory) as held:
        if not held:
            warnings.warn("rnnkit: gave up waiting for another process's compile; using torch's kernels",
                          RuntimeWarning, stacklevel=3)
            return None
        fresh = not any(directory.glob(f"{name}*.so"))
        start = time.monotonic()
        if fresh:
            print(f"rnnkit: compiling the fused C++ kernels, once (about 2 minutes; cached in {directory})",
                  file=sys.stderr, flush=True)
        module = cpp_extension.load(name=name, sources=[str(s) for s in sources], build_directory=str(directory),
                                    verbose=False, extra_cflags=cflags, extra_ldflags=ldflags)
        if fresh:
            print(f"rnnkit: kernels compiled in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
        return module
