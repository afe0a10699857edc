"""The extension's build never hangs: a lock left by an interrupted compile is removed, a
build that another process holds is waited for only so long, and the environment's ninja
comes first on PATH."""

import os
import subprocess
import sys

import pytest

from rnnkit.kernels import fused, jit


def test_a_stale_torch_lock_is_removed_not_waited_on(tmp_path):
    (tmp_path / "lock").write_text("")  # what torch's FileBaton leaves when its build is killed
    with pytest.warns(RuntimeWarning, match="interrupted compile"), jit.build_lock(tmp_path, wait=1) as held:
        assert held
    assert not (tmp_path / "lock").exists()


def test_a_build_held_by_another_process_is_waited_for_then_given_up(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(tmp_path / '.rnnkit-build.lock')!r}, 'w')\n"
        "fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with jit.build_lock(tmp_path, wait=3.5) as held:
            assert not held
        assert "another process is compiling" in capsys.readouterr().err  # said once the wait is not brief
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with jit.build_lock(tmp_path, wait=0.5) as held:  # the holder's death released it
        assert held


@pytest.mark.extension
def test_a_built_extension_loads_whatever_locks_its_directory_holds():
    """The real build directory with torch's lock left by an interrupted compile and rnnkit's
    lock held by another process: a fresh process imports the built library at once."""
    module = fused.extension()
    directory = jit.build_root() / module.__name__
    lock = directory / "lock"
    lock.write_text("")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, time\n"
        f"h = open({str(directory / '.rnnkit-build.lock')!r}, 'w')\n"
        "fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = subprocess.run([sys.executable, "-c", "from rnnkit.kernels import fused; print(fused.available())"],
                             capture_output=True, text=True, timeout=600, env={**os.environ, "RNNKIT_BUILD_WAIT": "0"})
        assert out.stdout.strip() == "True", out.stderr  # with no wait allowed: it never took the lock
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        lock.unlink(missing_ok=True)


def test_a_library_that_does_not_import_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    library = jit.build_root() / "rnnkit_test_ext" / "rnnkit_test_ext.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF cut short")  # a link killed halfway
    built = []
    monkeypatch.setattr(jit.cpp_extension, "load", lambda **kw: built.append(kw["name"]) or "module")
    assert jit.load("rnnkit_test_ext", [], [], []) == "module" and built == ["rnnkit_test_ext"]
    assert not library.exists()  # removed, so that ninja links it anew


def test_the_environments_ninja_comes_first(monkeypatch, tmp_path):
    here = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(here, "ninja")):
        pytest.skip("no ninja beside this interpreter")
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), here, "/usr/bin"]))
    jit.use_environment_ninja()
    assert os.environ["PATH"].split(os.pathsep)[:2] == [here, str(tmp_path)]


def test_each_python_environment_builds_in_its_own_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    here = jit.build_root()
    assert here.parent == tmp_path and here.name.startswith("env-")
    import torch
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "other-venv" / "torch" / "__init__.py"))
    assert jit.build_root() != here  # another environment's torch: another directory
