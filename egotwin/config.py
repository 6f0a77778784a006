"""Typed configs for every command-line entry point: a frozen dataclass, a JSON file, then `--field value` flags.

    @dataclasses.dataclass(frozen=True)
    class EvalConfig:
        checkpoint: str = "assets/egotwin-tiny"
        \"\"\"Pipeline folder to sample from.\"\"\"

    config = parse_config(EvalConfig, argv)          # python -m ... --config run.json --checkpoint DIR

The string under a field is its documentation: `--help` prints it. A JSON config may name a `base` config (a path
relative to itself) and list only the fields that differ from it, so a variant shows exactly what it changes.
A field whose metadata says `positional=True` is taken from positional arguments (a list field takes all of them);
a boolean flag may stand alone (`--ablation` means `--ablation true`).
The names are one vocabulary across the project: `data_root` (a clip folder), `output_dir` (what a command writes),
`checkpoint` (a pipeline folder), `seed`, `device`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import textwrap
import types
import typing
from pathlib import Path

BASE_KEY = "base"


def positional(default=dataclasses.MISSING, **kwargs):
    """A dataclass field read from positional command-line arguments (for inputs such as `SEQ_DIR [SEQ_DIR ...]`)."""
    return dataclasses.field(default=default, metadata={"positional": True}, **kwargs)


def field_docs(cls: type) -> dict[str, str]:
    """The documentation string written under each field of a dataclass (and its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for node, following in itertools.pairwise(body):
            is_doc = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _field_type(cls: type, name: str) -> type:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return hint


def _convert(cls: type, name: str, value):
    kind = _field_type(cls, name)
    if kind is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{cls.__name__}.{name}: expected a boolean, got '{value}'")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if typing.get_origin(kind) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(typing.get_args(kind)[0](v) for v in items)
    try:
        return kind(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{cls.__name__}.{name}: expected {kind.__name__}, got {value!r}") from error


def config_from_dict(cls: type, values: dict):
    """A config dataclass from a dict; unknown keys are an error (a typo must not be ignored silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}; fields are {sorted(names)}")
    return cls(**{key: _convert(cls, key, value) for key, value in values.items()})


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The field values of a JSON config, its `base` chain resolved (the file's own values win over its base's)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: config 'base' chain loops back to itself")
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file holds one JSON object")  # noqa: TRY004 (a bad file, not a bad type)
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    return {**read_config_file(path.parent / base, (*_seen, path)), **values}


def load_config(cls: type, path: str | Path | None = None, overrides: dict | None = None):
    """Defaults, then the JSON file at `path` (with its base), then `overrides` (field name -> value or string)."""
    values = read_config_file(path) if path else {}
    values.update(overrides or {})
    return config_from_dict(cls, values)


def _help(field: dataclasses.Field, doc: str) -> str:
    if field.default is not dataclasses.MISSING:
        default = f"default: {field.default!r}"
    elif field.default_factory is not dataclasses.MISSING:
        default = f"default: {field.default_factory()!r}"
    else:
        default = "required"
    return f"{doc} ({default})" if doc else f"({default})"


def parse_config(cls: type, argv: list[str] | None = None, prog: str | None = None):
    """The command line generated from a config dataclass: positional fields, `--config file.json`, then
    `--<field> value` for any field. `--help` shows each field's documentation and default."""
    parser = argparse.ArgumentParser(
        prog=prog, description=cls.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None, help="JSON file with field values (it may name a 'base' config)")
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("positional"):
            is_list = typing.get_origin(_field_type(cls, field.name)) is tuple
            parser.add_argument(
                field.name, nargs="*" if is_list else "?", default=None, help=_help(field, docs.get(field.name, ""))
            )
        else:
            # a boolean may stand alone (`--ablation`) or take a value (`--ablation false`)
            flag = {"nargs": "?", "const": "true"} if _field_type(cls, field.name) is bool else {}
            parser.add_argument(f"--{field.name}", default=None, help=_help(field, docs.get(field.name, "")), **flag)
    args = vars(parser.parse_args(argv))
    path = args.pop("config")
    values = {k: v for k, v in args.items() if v is not None and v != []}
    try:
        return load_config(cls, path, values)
    except (TypeError, ValueError, FileNotFoundError) as error:
        parser.error(str(error))


def save_config(config, path: str | Path) -> None:
    """Write the config's every field (no base: a saved config stands alone)."""
    Path(path).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
