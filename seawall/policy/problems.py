"""Locating problems: every error names the file, the LINE, the dotted field and what is allowed.

pydantic reports a location as a tuple of keys; the YAML node tree (kept from parsing) turns that
into a line number, so an operator can jump straight to the typo.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from seawall.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One problem in a policy file, located."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '(top level)'}: {self.message}"


class PolicyError(ConfigError):
    """The policy file is invalid; `.problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"{problems[0]} (nothing deployed)", hint="fix it and run `seawall plan` again")
            return
        head = f"{len(problems)} problem(s) in the policy file, nothing deployed"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems),
                         hint="fix the lines above and run `seawall plan` again")


def locate(filename: str, root: yaml.Node | None, error: dict, model: type[BaseModel]) -> Problem:
    """A pydantic `error` (one of `ValidationError.errors()`) of `model`, located in the file."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        message = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif error["type"] == "missing":
        message = "required field is missing"
    elif "input" in error and error["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {error['input']!r})"
    return Problem(filename, line_of(root, loc), dotted(loc), message)


def dotted(loc: tuple) -> str:
    """`("datasets", "db", "rpo")` → `datasets.db.rpo`; list indexes as `[0]`."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def line_of(root: yaml.Node | None, loc: tuple) -> int:
    """1-based line of the node at `loc` (the deepest existing one; a key's own line for keys)."""
    node, line = root, (root.start_mark.line + 1 if root else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _allowed_keys(root_model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at `loc` (walking the models, skipping dict keys)."""
    model: Any = root_model
    for part in loc:
        model = _model_in(model)
        if model is None:
            return []
        if isinstance(part, str) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif typing.get_origin(model) is dict or isinstance(part, int):
            continue
    model = _model_in(model)
    return sorted(model.model_fields) if model else []


def _model_in(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return next((m for a in typing.get_args(tp) if (m := _model_in(a))), None)
    if origin in (dict, list):
        return _model_in(typing.get_args(tp)[-1])
    return None
