"""The settings as people read them: ``agentbus config`` (effective values) and ``docs/configuration.md``.

Both come from the declarations in ``config/sections.py``; ``python -m agentbus.config`` prints the
Markdown reference, which a test compares with the checked-in file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentbus.config import Settings, _fields
from agentbus.config._fields import Spec, declared, mask_url
from agentbus.config.sections import SECTIONS

MASK = "***"


@dataclass(frozen=True)
class Entry:
    """One setting's effective value, safe to print: secrets masked, URLs without their password."""

    section: str
    name: str
    env: str
    value: Any
    source: str
    """``env`` when its variable is set (and not empty), else ``default``."""
    text: str
    """The value as one would write it in the environment (``8h``, ``640MiB``), for tables."""

    def to_json(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"section": self.section, "name": self.name, "env": self.env, "value": value, "source": self.source}


def shown(spec: Spec, value: Any) -> Any:
    """``value`` as it may be printed."""
    if spec.secret:
        return MASK if value else ""
    if spec.url and isinstance(value, str):
        return mask_url(value)
    return value


def effective(env: Mapping[str, str] | None = None) -> list[Entry]:
    """Every setting from ``env`` (``os.environ`` by default), checked as a role would at start."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    entries = []
    for section in SECTIONS:
        for f, spec in declared(section):
            source = "env" if env.get(spec.env, "").strip() else "default"
            value = shown(spec, getattr(settings, f.name))
            text = value if spec.secret or spec.url else _literal(spec, value)
            entries.append(Entry(section.__name__.lower(), f.name, spec.env, value, source, text))
    return entries


KINDS: dict[Callable[[str], Any], str] = {
    _fields._str: "text",
    _fields._lower: "word",
    _fields._int: "integer",
    _fields._float: "number",
    _fields._bool: "true or false",
    _fields._age: "age (90s, 15m, 12h, 30d)",
    _fields._size: "size (bytes, 768MiB, 1GB)",
    _fields._cidrs: "CIDRs, comma-separated",
}


def _age(seconds: float) -> str:
    for unit, n in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % n == 0:
            return f"{seconds / n:g}{unit}"
    return f"{seconds:g}s" if seconds else "0 (off)"


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _literal(spec: Spec, value: Any) -> str:
    """The default as one would write it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if spec.parse is _fields._age:
        return _age(value)
    if spec.parse is _fields._size:
        return _size(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def option_help(name: str, text: str, default: str | None = None) -> str:
    """A CLI option's help for the setting ``name``: ``text (env AGENTBUS_X; default)``, the variable and
    the default read from the declaration, so the CLI cannot drift from it (``default`` overrides the
    shown default where the role decides it, e.g. ``0: the role's default``)."""
    for section in SECTIONS:
        for f, spec in declared(section):
            if f.name == name:
                shown_default = default if default is not None else _literal(spec, getattr(Settings(), name))
                # parentheses, not brackets: typer's rich help reads "[env ...]" as markup and drops it
                return f"{text} (env {spec.env}; {shown_default})" if shown_default else f"{text} (env {spec.env})"
    raise KeyError(f"no setting named {name!r}")


def markdown() -> str:
    """docs/configuration.md: every setting by section, with its variable, type, default and help."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from agentbus/config/sections.py by `python -m agentbus.config`; do not edit.",
        "     tests/unit/test_config_reference.py fails when this file and the code differ. -->",
        "",
        "Every setting is an environment variable, read once when a role starts; an unset or empty",
        "variable keeps the default, and a bad value stops the role with an error naming the variable.",
        "`agentbus config` prints the values in effect where it runs and where each came from",
        "(`default` or `env`), secrets masked; `agentbus config -o json` for scripts.",
        "Sizes take units (`768MiB`, `1GB`), ages too (`30d`, `12h`), booleans are `true`/`false`.",
        "",
    ]
    for section in SECTIONS:
        lines += [f"## {section.__name__.lower()}", "", (section.__doc__ or "").strip(), ""]
        lines += ["| variable | setting | value | default | what |", "|---|---|---|---|---|"]
        for f, spec in declared(section):
            literal = _literal(spec, f.default)
            default = f"`{literal}`" if literal else "(empty)"
            if spec.secret and literal:
                default = "a development key: set your own"
            lines.append(f"| `{spec.env}` | `{f.name}` | {KINDS[spec.parse]} | {default} | {spec.help} |")
        lines.append("")
    return "\n".join(lines)


__all__ = ["Entry", "effective", "markdown"]
