"""Validation suites: which systems to run, how, and what counts as a pass.

A suite is a YAML file. The minimal one is a list of systems with a name and a structure
(any file ``ase.io`` reads, periodic if it has a cell, or ``builtin:water-32``,
``smiles:CCO``); everything else has a default (:data:`PROTOCOL_DEFAULTS`,
:data:`THRESHOLD_DEFAULTS`)::

    systems:
      - name: my-molecule
        structure: my_molecule.xyz

Settings may be given suite-wide under ``protocol:`` and ``thresholds:`` and per system
(``protocol:`` / ``thresholds:`` inside a system entry). Built-in suites (``quick``,
``standard``) ship with the package in ``mlff_distiller/validation/suites/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms

from ..engines.runs import THERMOSTAT
from ..errors import InputError

#: How each system is run unless the suite says otherwise.
PROTOCOL_DEFAULTS: dict[str, Any] = {
    "temperature_K": 300.0,
    "timestep_fs": 0.5,
    # NVE from the same initial conditions: teacher (ASE) and student in every engine.
    "nve_steps": 200,
    # Per-engine overrides for the student, e.g. {lammps: 20000} for a long run in the
    # fastest engine while the others run nve_steps.
    "nve_steps_by_engine": {},
    # The teacher's NVE (its own drift, for reference); null means nve_steps.
    "teacher_nve_steps": None,
    # Langevin NVT, teacher and student in ASE: frames for force errors and structure.
    "nvt_steps": 200,
    "friction_per_ps": 10.0,
    "record_every": 5,
    # Student frames relabelled by the teacher (spread evenly over the student NVT run).
    "relabel_frames": 10,
    # Teacher frames evaluated in every engine for the cross-engine agreement.
    "cross_engine_frames": 4,
    # A longer student-only Langevin run for the stability checks (fastest engine).
    "stability_steps": 2000,
    "seed": 0,
    "engines": ["ase", "openmm", "lammps"],
}

#: What counts as a pass unless the suite says otherwise.
THRESHOLD_DEFAULTS: dict[str, Any] = {
    # |slope| of the NVE total energy, student, every engine. A float64 student drifts
    # ~0.001 (integration alone); 0.05 is what a float32 student should reach.
    "energy_drift_meV_per_atom_ps": 0.05,
    # Largest excursion of the NVE total energy from its start, as a fraction of the mean
    # kinetic energy per atom.
    "energy_excursion_fraction": 0.05,
    # Student vs teacher forces on student NVT frames relabelled by the teacher: the
    # field's distillations reach a few tens of meV/Å against their teacher.
    "force_rmse_eV_per_A": 0.08,
    # Engines against the ASE student on the same frames, per export dtype.
    "cross_engine": {
        "float64": {"energy_rel": 1e-8, "force_eV_per_A": 1e-6},
        "float32": {"energy_rel": 1e-5, "force_eV_per_A": 2e-3},
    },
    # Structure, student NVT vs teacher NVT.
    "rdf_distance": 0.25,
    "distribution_total_variation": 0.35,
    # Close contacts: the deepest energy well of an isolated pair of the system's elements
    # inside 0.8 x their covalent radii sum, beyond the teacher's own (validation.contacts).
    "close_contact_well_eV": 1.0,
    # Compression: a periodic system's pressure with its cell squeezed to 0.85-1 of its edge
    # (molecules whole), relative to the teacher's; the worst fraction (validation.compression).
    "compression_pressure_rel": 0.5,
    # Stability run.
    "min_distance_A": 0.6,
    "temperature_fraction": 0.1,  # mean temperature within ±10 % of the target
}

KINDS = ("auto", "molecule", "liquid")
ENGINES = ("ase", "openmm", "lammps")


class SuiteError(InputError):
    """A suite file that cannot be used; the message names the entry and the fix."""


@dataclass
class SystemSpec:
    """One system of a suite, with its protocol and thresholds resolved."""

    name: str
    structure: str
    kind: str = "auto"
    index: int = 0
    protocol: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    def load(self, base: Path) -> Atoms:
        """The initial structure (a relative path is taken from the suite file's folder)."""
        from ..data.structures import load_source

        spec = self.structure
        kind, sep, _ = spec.partition(":")
        if not (sep and kind in ("builtin", "smiles")):
            path = Path(spec).expanduser()
            spec = str(path if path.is_absolute() else base / path)
        structures = load_source(spec, seed=int(self.protocol["seed"]))
        if not -len(structures) <= self.index < len(structures):
            raise SuiteError(
                f"system {self.name!r}: index {self.index} but {self.structure!r} has "
                f"{len(structures)} structure(s)"
            )
        atoms = structures[self.index].copy()
        if atoms.pbc.any() and not atoms.pbc.all():
            raise SuiteError(
                f"system {self.name!r}: partly periodic structures are not supported; make it "
                "fully periodic (a cell in all three directions) or a molecule (no cell)"
            )
        return atoms

    def resolved_kind(self, atoms: Atoms) -> str:
        if self.kind != "auto":
            return self.kind
        return "liquid" if atoms.pbc.all() else "molecule"


@dataclass
class Suite:
    name: str
    description: str
    systems: list[SystemSpec]
    base: Path
    source: str

    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def _merge(defaults: dict[str, Any], given: Any, where: str) -> dict[str, Any]:
    if given is None:
        return copy.deepcopy(defaults)
    if not isinstance(given, dict):
        raise SuiteError(f"{where} must be a mapping of settings, got {type(given).__name__}")
    unknown = set(given) - set(defaults)
    if unknown:
        raise SuiteError(
            f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(defaults))}"
        )
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def builtin_suites_dir() -> Path:
    return Path(__file__).resolve().parent / "suites"


def builtin_suites() -> list[str]:
    folder = builtin_suites_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (``quick``, ``standard``) or a suite YAML file.

    Raises
    ------
    SuiteError
        If the file is missing or malformed, naming the entry and the fix.
    """
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        candidate = builtin_suites_dir() / f"{name_or_path}.yaml"
        if not candidate.is_file():
            known = ", ".join(builtin_suites()) or "none found"
            raise SuiteError(
                f"no suite {str(name_or_path)!r}: give a YAML file or a built-in name ({known})"
            )
        path = candidate
    source = path.read_text()
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("systems"), list) or not raw["systems"]:
        raise SuiteError(
            f"{path}: a suite needs a non-empty 'systems:' list, each entry with a name and a "
            "structure (e.g. '- {name: water, structure: water.xyz}')"
        )
    unknown = set(raw) - {"name", "description", "protocol", "thresholds", "systems"}
    if unknown:
        raise SuiteError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            "known: name, description, protocol, thresholds, systems"
        )
    protocol = _merge(PROTOCOL_DEFAULTS, raw.get("protocol"), f"{path}: protocol")
    thresholds = _merge(THRESHOLD_DEFAULTS, raw.get("thresholds"), f"{path}: thresholds")
    systems: list[SystemSpec] = []
    names: set[str] = set()
    for number, entry in enumerate(raw["systems"], start=1):
        where = f"{path}: system {number}"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("structure"):
            raise SuiteError(f"{where} needs a 'name' and a 'structure' (a file ase.io reads)")
        extra = set(entry) - {"name", "structure", "kind", "index", "protocol", "thresholds"}
        if extra:
            raise SuiteError(
                f"{where} ({entry['name']}): unknown key(s) {', '.join(sorted(extra))}; known: "
                "name, structure, kind, index, protocol, thresholds"
            )
        name = str(entry["name"])
        if name in names:
            raise SuiteError(f"{where}: the name {name!r} is used twice; names must be unique")
        names.add(name)
        kind = entry.get("kind", "auto")
        if kind not in KINDS:
            raise SuiteError(f"{where} ({name}): kind must be one of {', '.join(KINDS)}")
        system = SystemSpec(
            name=name,
            structure=str(entry["structure"]),
            kind=kind,
            index=int(entry.get("index", 0)),
            protocol=_merge(protocol, entry.get("protocol"), f"{where} ({name}) protocol"),
            thresholds=_merge(thresholds, entry.get("thresholds"), f"{where} ({name}) thresholds"),
        )
        engines = system.protocol["engines"]
        if not engines or set(engines) - set(ENGINES):
            raise SuiteError(
                f"{where} ({name}): engines must be a non-empty list of {', '.join(ENGINES)}"
            )
        steps = [system.protocol["nve_steps"], *system.protocol["nve_steps_by_engine"].values()]
        if system.protocol["teacher_nve_steps"] is not None:
            steps.append(system.protocol["teacher_nve_steps"])
        if min(steps) < 10 or system.protocol["record_every"] < 1:
            raise SuiteError(f"{where} ({name}): NVE steps must be >= 10 and record_every >= 1")
        if set(system.protocol["nve_steps_by_engine"]) - set(ENGINES):
            raise SuiteError(f"{where} ({name}): nve_steps_by_engine keys must be engines")
        systems.append(system)
    return Suite(
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")),
        systems=systems,
        base=path.parent,
        source=source,
    )


def initial_conditions_key(teacher: str, atoms: Atoms, protocol: dict[str, Any]) -> str:
    """A digest of everything a teacher reference run depends on (for reuse on rerun)."""
    digest = hashlib.sha256()
    digest.update(teacher.encode())
    for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc):
        digest.update(np.ascontiguousarray(array).tobytes())
    # Normalised, so that 300 and 300.0 in two suite files name the same run.
    settings = {
        "temperature_K": float(protocol["temperature_K"]),
        "timestep_fs": float(protocol["timestep_fs"]),
        "friction_per_ps": float(protocol["friction_per_ps"]),
        "nvt_steps": int(protocol["nvt_steps"]),
        "record_every": int(protocol["record_every"]),
        "seed": int(protocol["seed"]),
        "teacher_nve_steps": teacher_nve_steps(protocol),
        "thermostat": THERMOSTAT,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def teacher_nve_steps(protocol: dict[str, Any]) -> int:
    steps = protocol["teacher_nve_steps"]
    return int(protocol["nve_steps"] if steps is None else steps)


def student_nve_steps(protocol: dict[str, Any], engine: str) -> int:
    return int(protocol["nve_steps_by_engine"].get(engine, protocol["nve_steps"]))
