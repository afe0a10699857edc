"""Python-source corpus: test files excluded, a stable split by file, disjoint sides."""

from pathlib import Path

from rnnkit.data.pysource import held_out, load_python_sources, python_files


def _tree(tmp_path: Path) -> Path:
    for name in ("a.py", "b.py", "pkg/c.py", "test/t.py", "pkg/tests/u.py", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n")
    return tmp_path


def test_files_exclude_tests_and_non_python(tmp_path):
    root = _tree(tmp_path)
    assert [p.relative_to(root).as_posix() for p in python_files(root)] == ["a.py", "b.py", "pkg/c.py"]


def test_split_is_by_file_and_stable(tmp_path):
    root = _tree(tmp_path)
    split = load_python_sources(root, test_fraction=0.5)
    expected_test = [p for p in python_files(root) if held_out(p, root, 0.5)]
    assert split.test_files == len(expected_test) and split.train_files == 3 - len(expected_test)
    assert split == load_python_sources(root, test_fraction=0.5)
    for p in python_files(root):
        side = split.test if p in expected_test else split.train
        assert f"# {p.relative_to(root).as_posix()}\n" in side


def test_standard_library_split_is_disjoint():
    split = load_python_sources(max_chars=300_000)
    assert split.train_files > 10 * split.test_files > 0
    assert len(split.train) == 300_000
