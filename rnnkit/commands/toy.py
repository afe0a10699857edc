"""`rnnkit toy train|eval`: the toy problems (binary addition, parity, the LSTM memory
example) on the common engine. The pipeline is :func:`rnnkit.tasks.toys.training_job`."""

from __future__ import annotations

import argparse

from rnnkit.checkpoint import load_weights, read_config
from rnnkit.commands.common import (
    common_parent,
    eval_parent,
    maybe_launch,
    print_metrics,
    run_job,
    setup,
    setup_inference,
)
from rnnkit.tasks.toys import CellKind, Problem, ToyConfig, build_model, evaluate, make_dataset, training_job


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    if maybe_launch(args, argv):
        return 0
    world = setup(args)
    config = ToyConfig(problem=Problem(args.problem), cell=CellKind(args.cell), hidden_size=args.hidden,
                       num_layers=args.layers, train_size=args.train_size, max_length=args.max_length,
                       test_length=args.test_length)
    fit = run_job(args, training_job(config, args.batch_size, args.seed, world), world)
    if world.is_main and fit.metrics:
        print_metrics(fit.metrics, as_json=False)
    return 0


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
    train.add_argument("--problem", choices=[p.value for p in Problem], default="addition")
    train.add_argument("--cell", choices=[c.value for c in CellKind], default="elman")
    train.add_argument("--hidden", type=int, default=16)
    train.add_argument("--layers", type=int, default=1)
    train.add_argument("--train-size", type=int, default=2000)
    train.add_argument("--max-length", type=int, default=9)
    train.add_argument("--test-length", type=int, default=33)
    train.add_argument("--batch-size", type=int, default=32, help="sequences per batch and per process")
    train.set_defaults(run=_train)
    ev = actions.add_parser("eval", parents=[eval_parent()], help="score on fresh, longer sequences")
    ev.add_argument("--length", type=int, default=None, help="sequence length (default: the model's test length)")
    ev.add_argument("--count", type=int, default=1000)
    ev.add_argument("--seed", type=int, default=12345)
    ev.set_defaults(run=_eval)
