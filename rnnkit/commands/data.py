"""`rnnkit data NAME`: fetch and prepare a real corpus; `rnnkit data list`."""

from __future__ import annotations

import argparse

from rnnkit.data.corpora import CORPORA, cache_root, fetch


def _data(args: argparse.Namespace, argv: list[str]) -> int:
    if args.name == "list":
        for c in CORPORA.values():
            print(f"{c.name:16s} {c.about} [{c.requirement}; licence: {c.licence}]")
        print(f"cache: {cache_root()} (set RNNKIT_DATA to change)")
        return 0
    for split, path in fetch(args.name, force=args.force).items():
        print(f"{split}\t{path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and prepare a real corpus (`rnnkit data list` names them)")
    p.add_argument("name", help="a corpus name, or 'list'")
    p.add_argument("--force", action="store_true", help="download and prepare again")
    p.set_defaults(run=_data)
