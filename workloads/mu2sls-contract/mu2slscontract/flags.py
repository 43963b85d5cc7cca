"""Command lines parsed as the real CLIs (cobra/pflag) parse theirs: --name value, --name=value,
-n value; bool flags take no value; an unknown flag is refused with the CLI's own kind of message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mu2slscontract.state import fail


@dataclass(frozen=True)
class Flag:
    name: str
    short: str = ""
    value: bool = True  # takes a value (else a bool switch)
    repeat: bool = False  # may be given many times (a list)


@dataclass
class Parsed:
    args: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)


def parse(argv: list[str], known: list[Flag], unknown: str) -> Parsed:
    """`unknown` formats the refusal of a flag not in `known` ({flag} is the flag as given)."""
    by_long = {f.name: f for f in known}
    by_short = {f.short: f for f in known if f.short}
    out = Parsed()
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            out.args += argv[i:]
            break
        if not a.startswith("-") or a == "-":
            out.args.append(a)
            continue
        name, eq, val = a.lstrip("-").partition("=")
        f = by_long.get(name) if a.startswith("--") else by_short.get(name)
        if f is None:
            fail(unknown.format(flag=a.split("=")[0] if a.startswith("--") else f"-{name}"))
        if f.value:
            if not eq:
                if i >= len(argv):
                    fail(f"Error: flag needs an argument: {a}")
                val = argv[i]
                i += 1
        elif eq and val not in ("true", "false"):
            flag = a.split("=")[0]
            fail(
                f'Error: invalid argument "{val}" for "{flag}" flag: strconv.ParseBool: parsing "{val}": invalid syntax'
            )
        else:
            val = val != "false"
        if f.repeat:
            out.flags.setdefault(f.name, []).append(val)
        else:
            out.flags[f.name] = val
    return out


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """--env/--annotation K=V (kn's message when the '=' is missing)."""
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k:
            fail(f"Error: Invalid --{flag}: argument requires a value that contains the '=' character; got \"{item}\"")
        out[k] = v
    return out


def integer(value: str, flag: str, cli: str) -> int:
    try:
        return int(value)
    except ValueError:
        fail(
            f'Error: invalid argument "{value}" for "--{flag}" flag: strconv.ParseInt: parsing "{value}": '
            "invalid syntax"
        )
        raise  # unreachable


def first_arg(argv: list[str], known: list[Flag]) -> str:
    """The first positional argument (the command), skipping flags and their values."""
    takes = {f"--{f.name}" for f in known if f.value} | {f"-{f.short}" for f in known if f.value and f.short}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            return a
        i += 2 if a in takes else 1
    return ""
