"""``python -m rnnkit.kernels.build``: compile the fused C++ recurrences now (``make
setup`` runs it) rather than on first use, and say whether they are available."""

from __future__ import annotations

import sys
import time

from rnnkit.kernels import fused


def main() -> int:
    start = time.perf_counter()
    module = fused.extension()
    if module is None:
        print("rnnkit: the fused C++ recurrences are NOT available; layers use torch's kernels "
              "and the reference loop", file=sys.stderr)
    else:
        print(f"rnnkit: fused C++ recurrences ready ({module.__file__}, {time.perf_counter() - start:.0f} s)")
    return 0  # never fail the set-up: rnnkit works without the extension


if __name__ == "__main__":
    sys.exit(main())
