"""The `rnnkit` command line. Subcommands map to functions through one table."""

from __future__ import annotations

import argparse
import sys

from rnnkit.commands import classify, common, data, demo, lm, tag, toy
from rnnkit.data.errors import DataError
from rnnkit.train import TrainingDiverged

COMMANDS = [demo.register, classify.register, data.register, lm.register, tag.register,
            toy.register]  # each adds its subcommand(s)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent networks for sequence learning.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The innermost subcommand parser that ``argv`` names (for --config defaults)."""
    current = parser
    for word in argv:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            current = subs[0].choices[word]
    return current


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    common.apply_config_file(_subparser(parser, argv), argv)
    args = parser.parse_args(argv)
    try:
        return args.run(args, argv)
    except (ValueError, OSError, KeyError, DataError, TrainingDiverged) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"rnnkit: error: {message}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug, not a user error: still one line, unless --debug
        if args.debug:
            raise
        print(f"rnnkit: error: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
