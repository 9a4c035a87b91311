"""Pipeline configs: the README's example, the built-in configs and the shipped students'
configs load, with every default filled in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlff_distiller.pipeline import DEFAULTS, load_config

ROOT = Path(__file__).resolve().parents[3]


def test_the_readme_tour_config_loads():
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("**1. Distill.**") :]
    block = re.search(r"```yaml\n(.*?)```", tour, re.S).group(1)
    config = load_config(yaml.safe_load(block))
    assert config["active_learning"]["rounds"] == 2
    # Keys the example leaves out come from the defaults.
    assert config["active_learning"]["select"] == DEFAULTS["active_learning"]["select"]
    assert config["labeling"] == DEFAULTS["labeling"]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "torchscript_exports" / "configs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_shipped_student_configs_load(path):
    config = load_config(path)
    assert config["name"] == path.stem
    assert config["teacher"] == "sevennet-0"


def test_active_learning_takes_a_committee_of_one_but_not_of_none():
    from mlff_distiller.pipeline import ConfigError

    base = {"structures": {"sources": ["smiles:O"]}}
    one = load_config({**base, "active_learning": {"rounds": 1, "committee": 1}})
    assert one["active_learning"]["committee"] == 1
    with pytest.raises(ConfigError, match="committee: must be at least 1 for rounds > 0"):
        load_config({**base, "active_learning": {"rounds": 1, "committee": 0}})


def test_active_learning_engine_and_ranks_are_checked():
    from mlff_distiller.pipeline import ConfigError

    base = {"structures": {"sources": ["smiles:O"]}}
    config = load_config({**base, "active_learning": {"engine": "lammps", "nprocs": 2}})
    assert config["active_learning"]["engine"] == "lammps"
    assert load_config(base)["active_learning"]["engine"] == "ase"
    with pytest.raises(ConfigError, match="engine: must be ase or lammps .* got 'openmm'"):
        load_config({**base, "active_learning": {"engine": "openmm"}})
    with pytest.raises(ConfigError, match="nprocs: must be a whole number >= 1"):
        load_config({**base, "active_learning": {"engine": "lammps", "nprocs": 0}})
