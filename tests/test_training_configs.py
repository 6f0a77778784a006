"""The shipped training configs: a variant names its base and lists only what differs, and each file loads exactly
the values its full copy had (tests/data/training_configs_full.json holds the full copies from before the rewrite)."""

import dataclasses
import json
from pathlib import Path

import pytest

from egotwin.config import BASE_KEY, load_config
from training.stage0_video_vae import Stage0Config
from training.stage1_motion_vae import Stage1Config
from training.stage2_t2m import Stage2Config
from training.stage3_joint import Stage3Config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
FULL_COPIES = json.loads((REPO / "tests" / "data" / "training_configs_full.json").read_text())
STAGES = {"stage0": Stage0Config, "stage1": Stage1Config, "stage2": Stage2Config, "stage3": Stage3Config}
STANDALONE = {"stage0_video_vae", "stage1_motion_vae", "stage2_t2m", "stage3_joint", "stage2_t2m_5b", "stage3_joint_5b"}
"""The configs that name no base: the first of each stage, and the 5B runs (another preset, another cache)."""


def config_class(path: Path) -> type:
    return STAGES[path.name.split("_")[0]]


@pytest.mark.parametrize("name", sorted(FULL_COPIES))
def test_each_file_loads_the_values_of_its_full_copy(name):
    cls = config_class(CONFIGS / name)
    loaded, full_copy = load_config(cls, CONFIGS / name), load_config(cls, None, FULL_COPIES[name])
    assert dataclasses.asdict(loaded) == dataclasses.asdict(full_copy)  # a dict: pytest names the fields that differ


def test_variants_name_a_base_and_list_only_what_differs():
    files = sorted(CONFIGS.glob("*.json"))
    assert {p.name for p in files} >= set(FULL_COPIES)  # no shipped config went missing
    for path in files:
        raw = json.loads(path.read_text())
        if BASE_KEY not in raw:
            assert path.stem in STANDALONE, f"{path.name} is a full copy: name a base and list what differs"
            continue
        cls = config_class(path)
        config, base = load_config(cls, path), load_config(cls, path.parent / raw[BASE_KEY])
        repeated = [key for key in raw if key != BASE_KEY and getattr(config, key) == getattr(base, key)]
        assert not repeated, f"{path.name} repeats its base's values of {repeated}"
