"""Typed configs: dataclasses, TOML presets and `--key value` overrides.

A config is a plain dataclass (possibly holding other dataclasses, e.g. `TrainConfig.model`).
Values come, in order of precedence, from the dataclass defaults, a TOML file, then overrides
given on the command line as strings:

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     steps: int = 100
    >>> apply_overrides(Opt(), {"lr": "3e-4"})
    Opt(lr=0.0003, steps=100)

A key has one name everywhere: in the TOML file, on the command line, in the code. Nested fields
are addressed with dots (`--model.n_layer 4`), and a leaf name that is unique in the whole tree
may be given alone (`--n_layer 4`). An unknown key is an error that suggests the closest valid
key and lists them all.

Design choices:
- A config checks its own values in a `validate()` method, called from `__post_init__`: a bad
  value fails where the config is built (Python, a TOML file, the command line), before any data
  is prepared or any model is built. `check_number` words every range error the same way:
  the key, the value, the valid range.
- Overrides are applied all at once, so `--n_embd 96 --n_head 3` is checked as a pair (one at a
  time, `n_head = 3` alone would not divide the old `n_embd`).
- `to_toml` writes a config as TOML that reads back to an equal config (`--print-config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from byollm.errors import ByollmError

T = TypeVar("T")

# torch.manual_seed takes any integer in [-2**63, 2**64 - 1]; byollm's seeds are the
# non-negative part of that range.
MAX_SEED = 2**64 - 1


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning any problem into one clear `ByollmError`."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ByollmError(f"config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ByollmError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "TOML files are UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ByollmError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ByollmError(f"{path}: cannot read ({e.strerror})") from None


def field_names(cls_or_obj: Any, prefix: str = "") -> list[str]:
    """All addressable keys of a (nested) config, dotted: ['lr', 'model.n_layer', ...]."""
    names = []
    hints = _hints(cls_or_obj)
    for f in dataclasses.fields(cls_or_obj):
        sub = _dataclass_type(hints[f.name])
        if sub is not None:
            names += field_names(sub, prefix + f.name + ".")
        else:
            names.append(prefix + f.name)
    return names


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Build the dataclass `cls` from a (nested) dict, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ByollmError(f"{source}: expected a table of keys, got {type(data).__name__}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise unknown_key_error(key, sorted(known), source)
        sub = _dataclass_type(hints[key])
        if sub is not None:
            kwargs[key] = from_dict(sub, value, f"{source} [{key}]")
        else:
            kwargs[key] = coerce(value, hints[key], f"{source}: {key}")
    try:
        return cls(**kwargs)
    except ByollmError as e:  # a value out of range: say which file (or table) it came from
        raise ByollmError(f"{source}: {e}") from None


def apply_overrides(obj: T, overrides: dict[str, Any], source: str = "override") -> T:
    """Return a copy of `obj` with dotted (or unique bare) keys replaced; values may be strings.

    All overrides are applied together, so the config is validated once, with the final values.
    """
    all_keys = field_names(obj)
    changes = {}
    for key, value in overrides.items():
        changes[_resolve_key(key.replace("-", "_"), all_keys, source)] = value
    return _replace_all(obj, changes, source)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, TOML/JSON-friendly data (tuples become lists)."""
    return dataclasses.asdict(obj)


def to_toml(obj: Any) -> str:
    """A (nested) dataclass as TOML text; `from_dict(type(obj), tomllib.loads(text))` gives it back.

    Nested dataclasses become tables (`[model]`). TOML has no null: a field holding None is left
    out and reads back as its default, so optional fields default to None.

        >>> @dataclasses.dataclass
        ... class Opt:
        ...     lr: float = 1e-3
        ...     steps: int = 100
        >>> print(to_toml(Opt(lr=3e-4)))
        lr = 0.0003
        steps = 100
    """
    return _toml_table(to_dict(obj), prefix="").lstrip("\n")


def check_number(
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> None:
    """Refuse `value` unless it is a finite number in the range; the error names key, value, range.

    The bounds are closed unless `low_open`/`high_open`; None means unbounded on that side. NaN and
    infinities are always refused, and so are booleans; `integer=True` refuses fractions too.

        >>> check_number("dropout", 1.5, 0, 1, high_open=True)
        Traceback (most recent call last):
        byollm.errors.ByollmError: dropout=1.5 is out of range: must be a number in [0, 1)
    """
    kind = "an integer" if integer else "a number"
    wanted = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise ByollmError(f"{key}={value!r} is invalid: expected {kind}")
    # Python ints of any size compare exactly with the bounds; math.isfinite would overflow on them
    finite = isinstance(value, numbers.Integral) or math.isfinite(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not finite or too_low or too_high:
        note = f" ({hint})" if hint else ""
        raise ByollmError(
            f"{key}={value!r} is out of range: must be {kind} "
            f"{_interval(low, high, low_open, high_open)}{note}"
        )


def check_choice(key: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """Refuse `value` unless it is one of `choices`, listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ByollmError(
            f"{key}={value!r} is invalid: choose one of {', '.join(map(str, choices))}"
        )


def check_seed(key: str, seed: Any, high: int = MAX_SEED) -> None:
    """A random seed: an integer in [0, high] (the default `high` is torch's limit, 2**64 - 1)."""
    check_number(key, seed, 0, high, integer=True)


# 0 means greedy; the range keeps logits / temperature finite in float32 (see generate/processors)
TEMPERATURE_RANGE = (1e-4, 1e4)


def check_temperature(key: str, temperature: float) -> None:
    """0 (greedy), or a temperature in TEMPERATURE_RANGE; a ByollmError naming `key` otherwise."""
    if temperature == 0 and not isinstance(temperature, bool):
        return
    check_number(key, temperature, *TEMPERATURE_RANGE, hint="or 0 for greedy decoding")


def check_top_k(key: str, top_k: int | None) -> int | None:
    """top_k as a sampler uses it: None for no limit (0 means no limit too), else an int >= 1."""
    if top_k == 0 and type(top_k) is int:
        return None  # 0 = no limit, as in Hugging Face and `sample_top_k`
    if top_k is not None:
        check_number(key, top_k, 1, integer=True, hint="0 or None = no limit")
    return top_k


def parse_override_args(argv: list[str]) -> dict[str, str]:
    """Turn ['--lr', '3e-4', '--model.n_layer=4'] into {'lr': '3e-4', 'model.n_layer': '4'}."""
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ByollmError(f"unexpected argument {arg!r}: overrides look like --key value")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        else:
            raise ByollmError(f"--{key} needs a value")
        overrides[key] = value
    return overrides


def unknown_key_error(key: str, valid: list[str], source: str) -> ByollmError:
    """The error for a key that does not exist, with the closest valid key suggested."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # also try matching the last component, e.g. 'n_layers' vs 'model.n_layer'
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        leaf_close = difflib.get_close_matches(
            key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6
        )
        close = [leaves[leaf_close[0]]] if leaf_close else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ByollmError(f"{source}: unknown key {key!r}; {hint}valid keys: {', '.join(valid)}")


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert `value` (from TOML or a command-line string) to the annotated type, or explain why not."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except ByollmError as e:
                errors.append(str(e))
        raise ByollmError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if origin is typing.Literal:
        for option in args:
            if value == option or (isinstance(value, str) and str(option) == value):
                return option
        raise ByollmError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ByollmError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [coerce(v, item_type, where) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ByollmError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ByollmError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ByollmError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, bool):  # float(True) would quietly give 1.0
            raise ByollmError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ByollmError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ByollmError(f"{where}: expected a string, got {value!r}")
    return value


# --- internals ---------------------------------------------------------------------------------


def _hints(cls_or_obj: Any) -> dict[str, Any]:
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return _class_hints(cls)


@functools.cache
def _class_hints(cls: type) -> dict[str, Any]:
    # evaluating the annotations is slow (strings, with `from __future__ import annotations`)
    return typing.get_type_hints(cls)


def _dataclass_type(annotation: Any) -> type | None:
    return (
        annotation
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation)
        else None
    )


def _resolve_key(key: str, all_keys: list[str], source: str) -> str:
    if key in all_keys:
        return key
    by_leaf = [k for k in all_keys if k.rsplit(".", 1)[-1] == key]
    if len(by_leaf) == 1:
        return by_leaf[0]
    if len(by_leaf) > 1:
        raise ByollmError(f"{source}: key {key!r} is ambiguous; use one of {', '.join(by_leaf)}")
    raise unknown_key_error(key, all_keys, source)


def _replace_all(obj: Any, changes: dict[str, Any], source: str) -> Any:
    """`obj` with the dotted keys of `changes` replaced, each dataclass rebuilt (and so validated)
    once."""
    hints = _hints(obj)
    new_values = {}
    for f in dataclasses.fields(obj):
        inner = {k[len(f.name) + 1 :]: v for k, v in changes.items() if k.startswith(f.name + ".")}
        if f.name in changes:
            new_values[f.name] = coerce(changes[f.name], hints[f.name], f"{source}: {f.name}")
        elif inner:
            new_values[f.name] = _replace_all(getattr(obj, f.name), inner, source)
    return dataclasses.replace(obj, **new_values) if new_values else obj


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    """'in [0, 1)', '>= 1', '> 0', or 'that is finite'."""
    low, high = _bound(low), _bound(high)
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "that is finite"


def _bound(x):
    """A bound as people write it: 1e+12 rather than 1000000000000.0, 125 rather than 125.0."""
    return f"{x:g}" if isinstance(x, float) else x


def _toml_table(data: dict[str, Any], prefix: str) -> str:
    """The `key = value` lines of `data`, then its sub-tables as `[prefix.key]` sections."""
    lines = [
        f"{k} = {_toml_value(v, prefix + k)}"
        for k, v in data.items()
        if v is not None and not isinstance(v, dict)
    ]
    text = "\n".join(lines)
    for k, v in data.items():
        if isinstance(v, dict):
            name = prefix + k
            text += f"\n\n[{name}]\n" + _toml_table(v, name + ".")
    return text


def _toml_value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's repr of ints and floats (inf and nan included) is TOML
    if isinstance(value, str):
        return _toml_string(value, key)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise ByollmError(f"{key}: {value!r} cannot be written as TOML")


# TOML's short escapes; other control characters are written as \uXXXX
_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}


def _toml_string(text: str, key: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":  # e.g. a command-line argument that was not UTF-8
            raise ByollmError(f"{key}: {text!r} is not valid Unicode text; TOML cannot hold it")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
