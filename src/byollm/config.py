"""Typed configs: dataclasses, TOML presets and `--key value` overrides.

A config is a plain dataclass (possibly holding other dataclasses, e.g. `TrainConfig.model`).
Values come, in order of precedence, from the dataclass defaults, a TOML file, then overrides
given on the command line as strings:

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
"""

from __future__ import annotations

import dataclasses
import difflib
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


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning any problem into one clear `ByollmError`."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ByollmError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ByollmError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ByollmError(f"{path}: cannot read ({e.strerror})") from None


def field_names(cls_or_obj: Any, prefix: str = "") -> list[str]:
    """All addressable keys of a (nested) config, dotted: ['lr', 'model.n_layer', ...]."""
    names = []
    for f in dataclasses.fields(cls_or_obj):
        sub = _dataclass_type(_hints(cls_or_obj)[f.name])
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
    return cls(**kwargs)


def apply_overrides(obj: T, overrides: dict[str, Any], source: str = "override") -> T:
    """Return a copy of `obj` with dotted (or unique bare) keys replaced; values may be strings."""
    all_keys = field_names(obj)
    for key, value in overrides.items():
        path = _resolve_key(key.replace("-", "_"), all_keys, source)
        obj = _replace_path(obj, path.split("."), value, source)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, TOML/JSON-friendly data (tuples become lists)."""
    return dataclasses.asdict(obj)


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


def _replace_path(obj: Any, path: list[str], value: Any, source: str) -> Any:
    name = path[0]
    hints = _hints(obj)
    if len(path) == 1:
        new_value = coerce(value, hints[name], f"{source}: {name}")
    else:
        new_value = _replace_path(getattr(obj, name), path[1:], value, source)
    return dataclasses.replace(obj, **{name: new_value})
