"""Small helpers shared by the command modules: parameter parsing with the right error."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

from smss.sim.atparse import EXEC, READ, TEST, AtSyntaxError, Command, split_args
from smss.sim.results import AtError, plain


def args(command: Command, error: Optional[AtError] = None) -> List[Optional[str]]:
    try:
        return split_args(command.args)
    except AtSyntaxError:
        raise error or plain() from None


def integer(value: Optional[str], low: int, high: int, error: Optional[AtError] = None,
            default: Optional[int] = None) -> int:
    """``value`` as an int within low..high; ``default`` when empty; else ``error``."""
    if value is None:
        if default is not None:
            return default
        raise error or plain()
    try:
        number = int(value.strip())
    except ValueError:
        raise error or plain() from None
    if not low <= number <= high:
        raise error or plain()
    return number


def arg(values: List[Optional[str]], position: int) -> Optional[str]:
    return values[position] if position < len(values) else None


def registry(table: Dict[str, Callable]) -> Callable:
    """A decorator ``@handles("+CMGF", ...)`` that files a handler in ``table``."""

    def handles(*names: str):
        def register(fn):
            for name in names:
                table[name] = fn
            return fn

        return register

    return handles


def numeric_setting(name: str, attr: str, high: int, test: str = "") -> Callable:
    """The handler of a plain numeric setting (AT+CMEE, AT+CMGF ...): read it, list its
    range, set it (0..high), or reset it to 0 without arguments."""

    def handler(session, command):
        settings = session.modem.settings
        if command.kind == READ:
            return [f"{name}: {getattr(settings, attr)}"]
        if command.kind == TEST:
            return [f"{name}: {test or f'(0-{high})'}"]
        setattr(settings, attr, 0 if command.kind == EXEC else integer(command.args, 0, high))
        return []

    return handler
