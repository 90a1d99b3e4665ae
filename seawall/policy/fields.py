"""Field types and base models every section of the policy file shares.

Durations are written the way operators say them (`26h`, `7d`); env-var names are checked for
shape here so a typo is reported at `seawall plan`, not when a worker first needs the variable.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(value: Any) -> timedelta:
    """`90s`, `30m`, `26h`, `7d`, `2w`, or a number of seconds → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration (allowed: a positive number with s, m, h, d or w, e.g. 26h)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def human(delta: timedelta) -> str:
    """The shortest exact form in the file's own syntax (`26h`, not `93600s`), for messages."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="An environment variable name.")]


class Strict(BaseModel):
    """Frozen, and a typo'd key is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OneOf(Strict):
    """A section that takes exactly one of two alternative fields (`one_of`), e.g. url or block."""

    one_of: ClassVar[tuple[str, str]]

    @model_validator(mode="after")
    def _exactly_one(self) -> OneOf:
        first, second = self.one_of
        if (getattr(self, first) is None) == (getattr(self, second) is None):
            raise ValueError(f"give exactly one of {first} or {second}")
        return self
