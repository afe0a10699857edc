"""Valid ranges of settings, one rule per setting.

A config dataclass declares each numeric field with its rule, ``size: int = setting(100, COUNT)``,
and calls :func:`check` in ``__post_init__``: a config built in Python with a value out of range
raises :class:`SettingError` naming the field. A command-line flag takes the same rule as its
argparse ``type`` (``type=rule(TaggerConfig, "hidden")``), so the flag, a ``--config`` file's
value and the Python argument meet one check, before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


class SettingError(ValueError):
    """A setting outside its range, or settings that contradict each other. ``name`` is the
    setting (a config field, the same word as its flag); ``reason`` says what is wrong."""

    def __init__(self, name: str, reason: str, owner: str = ""):
        self.name, self.reason, self.owner = name, reason, owner
        super().__init__(f"{owner + '.' if owner else ''}{name} {reason}")


@dataclass(frozen=True)
class Rule:
    """Numbers of ``kind`` (int or float, always finite) between ``low`` and ``high``; an open
    end excludes the bound itself. Calling a rule parses a flag's text (argparse ``type``)."""

    kind: type = int
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.open_low else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.open_high else '<='} {self.high:g}"
        return what

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.open_high and value == self.high))

    def check(self, name: str, value: Any, owner: str = "") -> None:
        """Raise :class:`SettingError` unless ``value`` is allowed (None always is: unset)."""
        if value is not None and not self.allows(value):
            raise SettingError(name, f"must be {self.describe()}, not {value!r}", owner)

    def __call__(self, text: str) -> int | float:
        import argparse  # the argparse type protocol: ArgumentTypeError carries the message
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.allows(value):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, not {text!r}")
        return value


COUNT = Rule(int, 1)  # sizes, layers, steps: at least one
NATURAL = Rule(int, 0)  # zero allowed (0 usually means "none" or "off")
POSITIVE = Rule(float, 0, open_low=True)
NONNEGATIVE = Rule(float, 0)
FRACTION = Rule(float, 0, 1, open_high=True)  # dropout, momentum, a held-out share: [0, 1)
SHARE = Rule(float, 0, 1, open_low=True)  # a decay factor, top-p: (0, 1]
REAL = Rule(float)  # any finite number (a bonus, an offset)


def setting(default: Any = MISSING, rule: Rule | None = None, **kw: Any) -> Any:
    """A dataclass field with its rule (``default`` MISSING: a required field)."""
    return field(default=default, metadata={"rule": rule}, **kw)


def rule(config: type, name: str) -> Rule:
    """The rule of ``config``'s field ``name`` (for a flag's argparse ``type``)."""
    for f in fields(config):
        if f.name == name and f.metadata.get("rule") is not None:
            return f.metadata["rule"]
    raise KeyError(f"{config.__name__}.{name} declares no rule")


def check(config: Any) -> None:
    """Check every field of ``config`` that declares a rule."""
    for f in fields(config):
        r = f.metadata.get("rule")
        if r is not None:
            r.check(f.name, getattr(config, f.name), type(config).__name__)
