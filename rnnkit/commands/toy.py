"""`rnnkit toy train|eval`: the toy problems (binary addition, parity, the LSTM memory
example) on the common engine. The pipeline is :func:`rnnkit.tasks.toys.training_job`."""

from __future__ import annotations

import argparse

from rnnkit.batch import BatchingConfig
from rnnkit.checkpoint import load_weights, read_config
from rnnkit.commands.common import (
    common_parent,
    eval_parent,
    maybe_launch,
    print_metrics,
    run_job,
    setup,
    setup_inference,
    start_run,
)
from rnnkit.settings import COUNT, NATURAL, rule
from rnnkit.tasks.toys import CellKind, Problem, ToyConfig, build_model, evaluate, make_dataset, training_job


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    config = ToyConfig(problem=Problem(args.problem), cell=CellKind(args.cell), hidden_size=args.hidden,
                       num_layers=args.layers, train_size=args.train_size, max_length=args.max_length,
                       test_length=args.test_length)
    run = start_run(args)
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    return run_job(args, training_job(config, args.batch_size, args.seed, world), world, run)


def _eval(args: argparse.Namespace, argv: list[str]) -> int:
    setup_inference(args)
    ck = read_config(args.model)
    if ck.config.get("task") != "toy":
        raise ValueError(f"{ck.path} holds a {ck.config.get('task')!r} model, not a toy one")
    config = ToyConfig.from_dict(ck.config["toy"])
    model = build_model(config)
    load_weights(ck.path, model)
    length = args.length or config.test_length
    data = make_dataset(config.problem, args.count, length, length, args.seed)
    print_metrics(evaluate(model, config.problem, data), args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    toy = sub.add_parser("toy", help="binary addition, parity, the LSTM memory example")
    actions = toy.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", parents=[common_parent()], help="train on short sequences")
    train.add_argument("--problem", choices=[p.value for p in Problem], default="addition", help="the toy task")
    train.add_argument("--cell", choices=[c.value for c in CellKind], default="elman", help="the recurrence")
    train.add_argument("--hidden", type=rule(ToyConfig, "hidden_size"), default=16, help="hidden units")
    train.add_argument("--layers", type=rule(ToyConfig, "num_layers"), default=1, help="stacked layers")
    train.add_argument("--train-size", type=rule(ToyConfig, "train_size"), default=2000, help="training sequences")
    train.add_argument("--max-length", type=rule(ToyConfig, "max_length"), default=9,
                       help="longest training sequence")
    train.add_argument("--test-length", type=rule(ToyConfig, "test_length"), default=33,
                       help="length of the evaluation sequences")
    train.add_argument("--batch-size", type=rule(BatchingConfig, "batch_size"), default=32,
                       help="sequences per batch and per process")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="score on fresh, longer sequences")
    ev.add_argument("--length", type=COUNT, default=None, help="sequence length (default: the model's test length)")
    ev.add_argument("--count", type=COUNT, default=1000, help="sequences drawn")
    ev.add_argument("--seed", type=NATURAL, default=12345, help="the draws' seed")
    ev.set_defaults(run=_eval)
