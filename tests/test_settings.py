"""Every setting has a range, checked in one place: the rules themselves; every train
command's numeric flags fed out-of-range values from the command line and from a --config
file (a one-line error naming the flag, exit 2, nothing written); the configs' own checks
from Python; settings that contradict each other."""

import argparse
import math
import re

import pytest

from rnnkit.cli import build_parser, main
from rnnkit.optim import Method, OptimizerConfig, ScheduleConfig
from rnnkit.settings import COUNT, FRACTION, NATURAL, POSITIVE, SHARE, Rule, SettingError
from rnnkit.tasks.lm import LMConfig
from rnnkit.tasks.tagger import TaggerConfig
from rnnkit.train import FitConfig

TRAIN_COMMANDS = [["classify", "train"], ["lm", "train"], ["tag", "train"], ["toy", "train"]]


def test_rules_parse_what_they_allow_and_name_what_they_refuse():
    assert COUNT("3") == 3 and NATURAL("0") == 0 and POSITIVE("1e-3") == 1e-3 and FRACTION("0") == 0.0
    assert SHARE("1") == 1.0
    for rule, bad in ((COUNT, "0"), (COUNT, "1.5"), (COUNT, "x"), (NATURAL, "-1"), (POSITIVE, "0"),
                      (POSITIVE, "nan"), (POSITIVE, "inf"), (FRACTION, "1"), (FRACTION, "-0.1"), (SHARE, "0")):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"must be {rule.describe()}")):
            rule(bad)
    assert COUNT.describe() == "an integer >= 1" and FRACTION.describe() == "a number in [0, 1)"
    assert SHARE.describe() == "a number in (0, 1]" and POSITIVE.describe() == "a number > 0"
    assert not COUNT.allows(True) and not POSITIVE.allows(math.nan) and POSITIVE.allows(3)


def test_configs_check_their_fields_when_built():
    for build, name in ((lambda: FitConfig(epochs=0), "epochs"), (lambda: FitConfig(clip_norm=-1.0), "clip_norm"),
                        (lambda: FitConfig(clip_value=0.0), "clip_value"), (lambda: FitConfig(bptt=0), "bptt"),
                        (lambda: FitConfig(max_minutes=-1.0), "max_minutes"),
                        (lambda: FitConfig(weight_noise=-0.1), "weight_noise"),
                        (lambda: OptimizerConfig(lr=math.inf), "lr"),
                        (lambda: OptimizerConfig(weight_decay=-1.0), "weight_decay"),
                        (lambda: ScheduleConfig(factor=0.0), "factor"),
                        (lambda: TaggerConfig(0, 0, 0, hidden=0), "hidden"),
                        (lambda: LMConfig(0, dropout=1.0), "dropout")):
        with pytest.raises(SettingError) as err:
            build()
        assert err.value.name == name and name in str(err.value)


def test_settings_that_contradict_each_other():
    with pytest.raises(SettingError, match="momentum has no effect with the adam optimizer"):
        OptimizerConfig(momentum=0.9)
    OptimizerConfig(method=Method.SGD, momentum=0.9)
    with pytest.raises(SettingError, match="tie_weights needs embed_size == hidden_size"):
        LMConfig(10, embed_size=4, hidden_size=8, tie_weights=True)


def _train_parsers():
    parser = build_parser()
    for words in TRAIN_COMMANDS:
        p = parser
        for w in words:
            p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[w]
        yield words, p


def _bad_values(rule: Rule) -> list[str]:
    """Values just outside the rule, and ones that are no number of its kind."""
    bad = ["nan"]
    if rule.low is not None:
        bad.append(f"{rule.low:g}" if rule.open_low else str(rule.kind(rule.low - 1)))
    if rule.high is not None:
        bad.append(f"{rule.high:g}" if rule.open_high else str(rule.kind(rule.high + 1)))
    bad.append("1.5" if rule.kind is int else "inf")
    return bad


def test_every_numeric_flag_of_every_train_command_has_a_rule():
    for words, parser in _train_parsers():
        for action in parser._actions:
            assert action.type not in (int, float), f"{' '.join(words)} {action.option_strings}: no range"


@pytest.mark.parametrize("words", TRAIN_COMMANDS, ids=" ".join)
def test_out_of_range_flags_and_config_values_fail_in_one_line_naming_them(words, tmp_path, capsys):
    parser = dict((tuple(w), p) for w, p in _train_parsers())[tuple(words)]
    out = tmp_path / "out"
    required = ["--out", str(out), "--train", str(tmp_path / "train.txt")] if words[0] != "toy" else \
        ["--out", str(out)]
    checked = 0
    for action in parser._actions:
        if not isinstance(action.type, Rule):
            continue
        flag = action.option_strings[0]
        for bad in _bad_values(action.type):
            with pytest.raises(SystemExit) as stop:
                main([*words, *required, flag, bad])
            err = capsys.readouterr().err
            assert stop.value.code == 2 and err.count("\n") == 1, (flag, bad, err)
            assert f"argument {flag}" in err and action.type.describe() in err, (flag, bad, err)
            config = tmp_path / "run.toml"
            config.write_text(f"{flag.removeprefix('--')} = {bad}\n", encoding="utf-8")  # TOML spells nan, inf so
            with pytest.raises(SystemExit) as stop:
                main([*words, *required, "--config", str(config)])
            err = capsys.readouterr().err
            assert stop.value.code == 2 and err.count("\n") == 1, (flag, bad, err)
            assert flag.removeprefix("--") in err and "must be" in err, (flag, bad, err)
            assert not out.exists(), (flag, bad)
            checked += 1
    assert checked >= 20


def test_config_values_of_the_wrong_kind_are_named(tmp_path, capsys):
    config = tmp_path / "run.toml"
    for text, message in (("epochs = true", "epochs must be a single value"),
                          ("tensorboard = 1", "tensorboard must be true or false"),
                          ("hidden = [1, 2]", "hidden must be"), ('optimizer = "newton"', "optimizer must be one of")):
        config.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(SystemExit) as stop:
            main(["toy", "train", "--out", str(tmp_path / "o"), f"--config={config}"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_contradictions_found_after_parsing_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    for argv, message in ((["--momentum", "0.9"], "--momentum: has no effect with the adam optimizer"),
                          (["--max-length", "1"], "--max-length: must be at least min_length"),
                          (["--bptt", "4", "--weight-noise-per", "sequence"], "--weight-noise-per: sequence draws"),
                          (["--bptt", "4", "--optimizer", "sgd", "--momentum", "0.5", "--resume"],
                           "--resume: no checkpoint")):
        assert main(["toy", "train", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err == f"rnnkit: error: {err.removeprefix('rnnkit: error: ')}" and message in err, err
        assert err.count("\n") == 1 and not out.exists()
