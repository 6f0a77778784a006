"""Typed configs: field documentation in --help, `base` chains in JSON files, positional fields, clear errors."""

import dataclasses
import json

import pytest

from egotwin.config import field_docs, load_config, parse_config, positional


@dataclasses.dataclass(frozen=True)
class _Base:
    output_dir: str = "runs/x"
    """Where the run writes."""
    steps: int = 10


@dataclasses.dataclass(frozen=True)
class _Config(_Base):
    inputs: tuple[str, ...] = positional(default=())
    """Folders to read."""
    scale: float = 1.5
    """Guidance scale."""
    fast: bool = False


def test_help_shows_each_fields_documentation(capsys):
    assert field_docs(_Config) == {
        "output_dir": "Where the run writes.",
        "inputs": "Folders to read.",
        "scale": "Guidance scale.",
    }
    with pytest.raises(SystemExit):
        parse_config(_Config, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Where the run writes. (default: 'runs/x')" in text and "Guidance scale. (default: 1.5)" in text


def test_positional_fields_and_flags():
    config = parse_config(_Config, ["a", "b", "--scale", "2", "--steps", "3", "--fast"])
    assert config == _Config(inputs=("a", "b"), scale=2.0, steps=3, fast=True)
    assert parse_config(_Config, ["--fast", "false"]).fast is False


def test_a_config_names_its_base_and_lists_what_differs(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps({"steps": 100, "scale": 3.0}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "variant.json").write_text(json.dumps({"base": "../base.json", "scale": 4.0}))
    config = parse_config(_Config, ["--config", str(tmp_path / "sub" / "variant.json"), "--output_dir", "o"])
    assert config == _Config(output_dir="o", steps=100, scale=4.0)
    (tmp_path / "loop.json").write_text(json.dumps({"base": "loop.json"}))
    with pytest.raises(ValueError, match="loops back"):
        load_config(_Config, tmp_path / "loop.json")


def test_bad_values_name_the_field(capsys):
    with pytest.raises(SystemExit):
        parse_config(_Config, ["--steps", "many"])
    assert "_Config.steps: expected int, got 'many'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no fields \\['step'\\]"):
        load_config(_Config, None, {"step": 1})
