"""The allocator setting: glibc accepts both of its parameters."""

import platform

import pytest

from rnnkit.commands.process import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_keep_freed_memory_takes_on_glibc():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # calling it again (each command does) is harmless
