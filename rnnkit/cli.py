"""The `rnnkit` command line. Subcommands map to functions through one table."""

from __future__ import annotations

import argparse
import sys

import torch


def _demo(args: argparse.Namespace) -> int:
    from rnnkit.demo import DemoConfig, run_demo
    run_demo(DemoConfig(seed=args.seed, lm_seconds=args.seconds, prime=args.prime))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent networks for sequence learning.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="binary addition and a character LSTM on Python sources")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--seconds", type=float, default=100.0, help="language-model training budget")
    demo.add_argument("--prime", default="def ", help="text the generated sample starts from")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return args.run(args)
    except (ValueError, OSError, KeyError) as err:
        if args.debug:
            raise
        print(f"rnnkit: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
