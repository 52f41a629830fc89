"""One declared ``COMFYQ_*`` setting, and the kinds of value a setting can take."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .allowlist import parse_allowlist
from .checks import ConfigError
from .parsers import parse_capabilities, parse_instances, parse_names, parse_role_limits, with_default_role_limits

# What a parser or a computed default sees: the Config attributes read so far, in table order.
Read = Mapping[str, Any]


@dataclass(frozen=True)
class Kind:
    """A kind of value: how a setting's text is parsed, and what .env.example calls it."""

    label: str
    parse: Callable[[str, Read], Any]  # raise ConfigError saying what is wrong, or ValueError for ``problem``
    problem: str = "is not valid"
    blank_is_unset: bool = True  # an empty value means the default (else it is parsed, e.g. "no names")


TEXT = Kind("text", lambda raw, _: raw)
URL = Kind("URL", lambda raw, _: raw)
BASE_URL = Kind("URL", lambda raw, _: raw.rstrip("/"))
PATH = Kind("path", lambda raw, _: raw)
DIRECTORY = Kind("path", lambda raw, _: str(Path(raw)))
COMMAND = Kind("command line", lambda raw, _: raw)
NUMBER = Kind("number", lambda raw, _: float(raw), "is not a number")
WHOLE = Kind("whole number", lambda raw, _: int(float(raw)), "is not a number")
NAMES = Kind("names, comma-separated (- for none)", lambda raw, _: parse_names(raw), blank_is_unset=False)
INSTANCES = Kind("name=URL, comma-separated", lambda raw, _: parse_instances(raw))
CAPABILITIES = Kind("instance=cap+cap, comma-separated",
                    lambda raw, read: parse_capabilities(raw, read["INSTANCES"]))
ROLE_LIMITS = Kind("role:limit=N,…; separated",
                   lambda raw, _: with_default_role_limits(parse_role_limits(raw)))
ALLOWLIST = Kind("hosts, addresses, networks, comma-separated", lambda raw, _: parse_allowlist(raw))


def number_text(value: float) -> str:
    """Return ``value`` as a person writes it (16000000, 0.5), never in exponent form."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Setting:
    """One ``COMFYQ_*`` environment variable: its kind, default and one-line documentation."""

    name: str
    kind: Kind
    default: Any  # the value, or a function of the settings read before it (for mutable or derived ones)
    doc: str  # one line of reStructuredText, lowercase, no full stop
    shown: str = ""  # the default in words, where the value says too little ("the number of instances")
    attr: str = ""  # the Config attribute, when not the name without COMFYQ_
    reader: str = ""  # who reads it when not every process through Config ("``comfyq worker``", "CLI")
    example: str = ""  # the value .env.example shows instead of the default
    active: bool = False  # set in .env.example (else commented out)

    @property
    def attribute(self) -> str:
        """Return the Config attribute the setting fills."""
        return self.attr or self.name.removeprefix("COMFYQ_")

    def value(self, env: Mapping[str, str], read: Read) -> Any:
        """Return the setting's value in ``env`` (the default when unset); raise ConfigError when malformed."""
        raw = env.get(self.name)
        if raw is None or (raw == "" and self.kind.blank_is_unset):
            return self.default(read) if callable(self.default) else self.default
        try:
            return self.kind.parse(raw, read)
        except ConfigError:
            raise
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"{self.name}={raw!r} {self.kind.problem}") from exc

    def default_text(self) -> str:
        """Return the default as the README shows it (reStructuredText)."""
        if self.shown:
            return self.shown
        if self.default is None or self.default == "":
            return "none"
        if isinstance(self.default, (int, float)):
            return number_text(self.default)
        if isinstance(self.default, str):
            return f"``{self.default}``"
        raise TypeError(f"{self.name}: give the table's ``shown`` for a default of {self.default!r}")

    def env_value(self) -> str:
        """Return the value .env.example writes: the example, else the default when it is plain."""
        if self.example or self.default is None or callable(self.default):
            return self.example
        if isinstance(self.default, (int, float)):
            return number_text(self.default)
        return self.default if isinstance(self.default, str) else ""
