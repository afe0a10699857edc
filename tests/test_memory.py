"""The allocator setting: takes on glibc and leaves results unchanged."""

import platform

import pytest
import torch

from rnnkit.memory import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_keep_freed_memory_takes_on_glibc():
    assert keep_freed_memory() is True
    a = torch.randn(3_000_000)  # 12 MB: now from the heap, still correct
    assert torch.equal(a.clone(), a)
