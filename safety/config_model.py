"""One way to check a configuration file: a pydantic model per file, one error style for all.

The three configuration files (the drift monitor's, replay's, the regression suite) each have a
pydantic model (`controller.drift.config`, `adapters.replay`, `safety.suite`) built on `Strict`
below, and their errors are turned into one line by `describe`: the path to the bad field, what it
must be, what it got, e.g. ``page_hinkley.threshold_factor: must be > 0, got -1.0`` or
``scenarios[0] 'target': unknown key(s) ['metrc'] (did you mean 'metric'?); known: [...]``.

Why strict: a YAML typo must not silently become a default or a coerced value ("5" is not 5,
``yes`` is not a flag unless YAML made it one), and a float NaN is never a valid setting.
"""
from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Mapping

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError


class Strict(BaseModel):
    """Unknown keys are errors, types are not coerced, NaN / inf are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _integral(x: Any) -> Any:
    """YAML may write an integer setting as 30.0: accept a float with no fractional part."""
    if isinstance(x, float) and math.isfinite(x) and x.is_integer():
        return int(x)
    return x


def _none_is_empty(x: Any) -> Any:
    return "" if x is None else x


def as_list(x: Any) -> Any:
    """A tuple from code is as good as a YAML list (strict mode would refuse it)."""
    return list(x) if isinstance(x, tuple) else x


Listy = BeforeValidator(as_list)


Int = Annotated[int, BeforeValidator(_integral)]
Text = Annotated[str, BeforeValidator(_none_is_empty)]

_TYPE_WORDS = {
    "int_type": "expected an integer", "int_parsing": "expected an integer",
    "int_from_float": "expected an integer", "float_type": "expected a finite number",
    "float_parsing": "expected a finite number", "finite_number": "expected a finite number",
    "bool_type": "expected true/false", "bool_parsing": "expected true/false",
    "string_type": "expected a string", "dict_type": "expected a mapping", "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping", "list_type": "expected a list", "tuple_type": "expected a list",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def path_label(loc: tuple, doc: Any = None) -> str:
    """``('scenarios', 0, 'horizon')`` -> ``scenarios[0] 'target'.horizon`` (a list item is named by
    its `name` key when the document gives one)."""
    out, node = "", doc
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, Mapping) and isinstance(node.get("name"), str):
                out += f" {node['name']!r}"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return out


def _known(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys the model accepts at `loc` (for "known:" and "did you mean")."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _inner_model(field.annotation)
    return sorted(model.model_fields) if model is not None else []


def _inner_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        m = _inner_model(arg)
        if m is not None:
            return m
    return None


def describe(exc: ValidationError, model: type[BaseModel] | None = None, doc: Any = None) -> str:
    """The first error of `exc` as one line: ``path: must be ..., got ...``."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:    # all unknown keys of the first mapping that has any, in one message
        parent = unknown[0]["loc"][:-1]
        keys = [str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent]
        known = _known(model, parent)
        hint = difflib.get_close_matches(keys[0], known, n=1) if known else []
        msg = f"unknown key(s) {keys}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + \
            (f"; known: {known}" if known else "")
        return f"{path_label(parent, doc) or 'top level'}: {msg}"
    e = errors[0]
    loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(("function-", "lax-", "strict-"))))
    where = path_label(loc, doc) or "top level"
    kind = e["type"]
    ctx = e.get("ctx") or {}
    if kind == "missing":
        return f"{path_label(loc[:-1], doc) or 'top level'}: missing required key(s) [{loc[-1]!r}]"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        msg = f"must be {_BOUNDS[kind]} {bound}"
    elif kind in _TYPE_WORDS:
        msg = _TYPE_WORDS[kind]
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected', '')}".replace(" or ", ", ")
    elif kind == "value_error":
        return f"{where}: {str(ctx.get('error', e['msg']))}"
    elif kind == "too_short":
        msg = "must not be empty"
    else:
        msg = e["msg"][0].lower() + e["msg"][1:]
    return f"{where}: {msg}, got {e.get('input')!r}"


__all__ = ["Int", "Listy", "Strict", "as_list", "Text", "ValidationError", "describe", "path_label"]
