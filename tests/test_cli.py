"""One command-line vocabulary: each entry point's config documents every field, and `--help` prints it."""

import dataclasses
import importlib

import pytest

from egotwin.config import field_docs, parse_config

ENTRY_POINTS = {
    "python -m egotwin.world generate": ("egotwin.world.__main__", "GenerateConfig"),
    "python -m egotwin.world preview": ("egotwin.world.__main__", "PreviewConfig"),
    "python -m egotwin.eval.directions": ("egotwin.eval.directions", "DirectionsConfig"),
    "python -m egotwin.eval.table": ("egotwin.eval.table", "TableConfig"),
    "python -m benchmarks.bench_motion": ("benchmarks.bench_motion", "BenchMotionConfig"),
    "python -m benchmarks.bench_render": ("benchmarks.bench_render", "BenchRenderConfig"),
    "python -m benchmarks.bench_sampling": ("benchmarks.bench_sampling", "BenchSamplingConfig"),
    "python -m benchmarks.bench_tokenizers": ("benchmarks.bench_tokenizers", "BenchTokenizersConfig"),
    "python -m benchmarks.bench_world": ("benchmarks.bench_world", "BenchWorldConfig"),
    "python -m training.train_evaluators": ("training.train_evaluators", "EvaluatorConfig"),
    "python scripts/make_readme_example.py": ("scripts.make_readme_example", "ReadmeExampleConfig"),
}
RETIRED = {"data", "out", "data_dir", "output_path"}
"""Names the vocabulary replaced: data_root (a clip folder), output_dir (a folder), output (one file)."""


def config_class(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)  # benchmarks/ and scripts/ import as namespace packages


@pytest.mark.parametrize("prog", sorted(ENTRY_POINTS))
def test_help_documents_every_field(prog, capsys):
    cls = config_class(*ENTRY_POINTS[prog])
    names = [field.name for field in dataclasses.fields(cls)]
    docs = field_docs(cls)
    assert set(docs) == set(names), f"{prog}: no documentation for {sorted(set(names) - set(docs))}"
    assert not RETIRED & set(names) and all("-" not in name for name in names)
    with pytest.raises(SystemExit) as exit_info:
        parse_config(cls, ["--help"], prog=prog)
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(f"usage: {prog}")
    for name in names:
        assert docs[name] in text, f"{prog} --help does not show the documentation of {name}"
