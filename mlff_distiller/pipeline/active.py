"""Active learning: run the student, find where a committee of students disagrees, label that.

One round: the current student runs Langevin MD at the target temperature from structures of
the recipe; every ``every`` steps a frame goes into a pool. A committee of students trained
with different seeds evaluates the pool; a frame's disagreement is the largest, over atoms,
of the norm of the committee's force standard deviation (eV/Å). The ``select`` most
disagreed frames (at most ``max_per_system`` per trajectory) are labelled by the teacher
and added to the data; ``eval_frames`` frames drawn at random from the rest are labelled
too, to measure the student's force error on its own trajectories without the bias of the
selection.

With ``engine: lammps`` the MD runs in LAMMPS instead (``pair_style mlff`` with the whole
committee: the student drives, and LAMMPS writes the committee's force deviation every
``every`` steps, so nothing is evaluated again in Python; periodic boxes of any size, on
``nprocs`` MPI ranks).

>>> pool = explore(student, starts, settings, seed=1)                   # doctest: +SKIP
>>> picked = select_frames(pool, committee, settings, seed=1)           # doctest: +SKIP
>>> pool, scores = explore_lammps(committee, starts, settings, 1, "w")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin

from ..engines.runs import initial_velocities
from ..errors import InputError, RunError

#: Closest approach (Å) before a student trajectory counts as broken and stops.
BROKEN_DISTANCE_A = 0.5
#: Words of the LAMMPS plugin's errors that mean the trajectory itself blew up.
BLOWN_UP = ("Angstrom apart", "non-finite")


def pick_starts(structures: list[Atoms], n: int, seed: int) -> list[Atoms]:
    """``n`` unsampled structures of the recipe: periodic ones first (up to half), then
    molecules at random (seeded), so both kinds of system are explored."""
    originals = [a for a in structures if "sampling" not in a.info]
    rng = np.random.default_rng(seed)
    periodic = [a for a in originals if a.pbc.any()]
    molecules = [a for a in originals if not a.pbc.any()]
    n_periodic = min(len(periodic), n // 2 if molecules else n)
    chosen = [periodic[i] for i in rng.permutation(len(periodic))[:n_periodic]]
    chosen += [molecules[i] for i in rng.permutation(len(molecules))[: n - n_periodic]]
    return [a.copy() for a in chosen]


def _min_distance(atoms: Atoms) -> float:
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    return float(d[np.triu_indices(len(atoms), 1)].min())


def explore(
    student: str | Path, starts: list[Atoms], settings: dict[str, Any], seed: int
) -> list[dict[str, Any]]:
    """Student Langevin MD from each start; returns the pool of recorded frames.

    Each pool entry holds the frame (``atoms``, with the start's ``info``), the ``system``
    index and the ``step``. A trajectory that produces a non-finite energy or brings two
    atoms closer than :data:`BROKEN_DISTANCE_A` stops there; its frames up to that point stay.
    """
    from ..calculators import StudentCalculator

    calc = StudentCalculator(student)
    pool: list[dict[str, Any]] = []
    for system, start in enumerate(starts):
        atoms = start.copy()
        atoms.calc = calc
        atoms.set_velocities(
            initial_velocities(atoms, settings["temperature_K"], seed * 100_003 + system)
        )
        rng = np.random.default_rng([seed, system])
        dyn = Langevin(
            atoms,
            timestep=settings["timestep_fs"] * units.fs,
            temperature_K=settings["temperature_K"],
            friction=settings["friction_per_ps"] / (1000 * units.fs),
            fixcm=False,  # a fixed centre of mass runs small molecules hot
            rng=rng,
        )
        for step in range(settings["every"], settings["steps"] + 1, settings["every"]):
            dyn.run(settings["every"])
            energy = atoms.get_potential_energy()
            if not np.isfinite(energy) or _min_distance(atoms) < BROKEN_DISTANCE_A:
                break
            frame = Atoms(
                numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
            )
            frame.info.update(start.info)
            pool.append({"atoms": frame, "system": system, "step": step})
    return pool


def explore_lammps(
    committee: list[str | Path],
    starts: list[Atoms],
    settings: dict[str, Any],
    seed: int,
    workdir: str | Path,
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Student Langevin MD in LAMMPS from each start: the pool (as :func:`explore` returns
    it) and each pool frame's committee disagreement as LAMMPS computed it (``None`` for a
    committee of one).

    Members given as training checkpoints are exported first (in their own dtype) to
    ``workdir/models/``. Each start runs in ``workdir/system-K/`` (data file, deck, log,
    dump, ``devi.out``) on ``settings["nprocs"]`` ranks. A run that LAMMPS stops (atoms on
    top of each other, a non-finite energy) keeps the frames it wrote; as in
    :func:`explore`, a trajectory's frames end before the first one with two atoms closer
    than :data:`BROKEN_DISTANCE_A`.
    """
    from ..engines import lammps
    from ..export import export, is_exported, load_exported
    from ..models.checkpoint import load_checkpoint
    from .md import langevin_deck, relative_path

    files = []
    for k, member in enumerate(committee):
        if is_exported(member):
            files.append(Path(member))
        else:
            dtype = load_checkpoint(member).get("dtype", "float32")
            files.append(export(member, Path(workdir) / "models" / f"member-{k}.pt", dtype=dtype))
    elements = load_exported(files[0])[1]["elements"]
    pool: list[dict[str, Any]] = []
    scores: list[float] = []
    for system, start in enumerate(starts):
        out = Path(workdir) / f"system-{system}"
        out.mkdir(parents=True, exist_ok=True)
        data = lammps.write_data(start, out / "data.lammps", elements=elements)
        models = " ".join(relative_path(m, out) for m in files)
        deviation = f"out_freq {settings['every']} out_file devi.out" if len(committee) > 1 else ""
        deck = langevin_deck(
            data.student_deck(models, keywords=deviation, relative=True),
            data.elements,
            temperature_K=settings["temperature_K"],
            seed=lammps.lammps_seed(seed * 100_003 + system),
            timestep_fs=settings["timestep_fs"],
            damp_ps=1.0 / settings["friction_per_ps"],
            every=settings["every"],
            steps=settings["steps"],
        )
        try:
            lammps.run_lammps(deck, out, nprocs=int(settings.get("nprocs", 1)), timeout=3600)
        except RuntimeError as failure:
            # A trajectory that blew up (the plugin stops at atoms on top of each other or a
            # non-finite energy) keeps the frames written before; any other failure (no
            # plugin, a bad deck) is the user's to see.
            if not any(word in str(failure) for word in BLOWN_UP):
                raise
        deviation: dict[int, float] = {}
        if len(committee) > 1 and (out / "devi.out").is_file():
            for line in (out / "devi.out").read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    step, largest = line.split()[:2]
                    deviation[int(step)] = float(largest)
        for step, positions in read_dump_positions(out / "dump.lammpstrj"):
            if step == 0:
                continue
            frame = Atoms(
                numbers=start.numbers, positions=positions @ data.rotation, cell=start.cell,
                pbc=start.pbc,
            )  # fmt: skip
            if not np.isfinite(frame.positions).all() or _min_distance(frame) < BROKEN_DISTANCE_A:
                break
            if len(committee) > 1 and step not in deviation:
                break  # LAMMPS stopped between the dump and the deviation of this step
            frame.info.update(start.info)
            pool.append({"atoms": frame, "system": system, "step": step})
            scores.append(deviation.get(step, 0.0))
    return pool, (np.array(scores) if len(committee) > 1 else None)


def read_dump_positions(path: str | Path) -> list[tuple[int, np.ndarray]]:
    """``(step, positions)`` of every complete frame of a LAMMPS text dump with columns
    ``id ... x y z`` (rows put in ``id`` order); a frame cut short at the end is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    frames = []
    k = 0
    while k < len(lines) and lines[k].startswith("ITEM: TIMESTEP"):
        if k + 9 > len(lines):
            break
        step = int(lines[k + 1])
        n_atoms = int(lines[k + 3])
        columns = lines[k + 8].split()[2:]
        body = lines[k + 9 : k + 9 + n_atoms]
        if len(body) < n_atoms:
            break
        table = np.array([row.split() for row in body])
        ids = table[:, columns.index("id")].astype(int)
        xyz = table[:, [columns.index(c) for c in ("x", "y", "z")]].astype(float)
        frames.append((step, xyz[np.argsort(ids)]))
        k += 9 + n_atoms
    return frames


def disagreement(committee: list[str | Path], frames: list[Atoms]) -> np.ndarray:
    """Per frame: max over atoms of |std over the committee of the force vector| (eV/Å)."""
    from ..calculators import StudentCalculator

    forces = []
    for member in committee:
        calc = StudentCalculator(member)
        forces.append([calc.get_forces(a.copy()) for a in frames])
    out = np.empty(len(frames))
    for k in range(len(frames)):
        stack = np.stack([member[k] for member in forces])  # (members, atoms, 3)
        out[k] = np.linalg.norm(stack.std(axis=0), axis=1).max()
    return out


def select_frames(
    pool: list[dict[str, Any]],
    committee: list[str | Path],
    settings: dict[str, Any],
    seed: int,
    round_index: int,
    scores: np.ndarray | None = None,
) -> tuple[list[Atoms], dict[str, Any], list[dict[str, Any]]]:
    """The frames to label this round, a summary, and every pool frame's score.

    ``scores``: the pool's disagreements when the exploration already computed them
    (:func:`explore_lammps`); otherwise the committee evaluates the pool here.

    With a committee of one nothing is scored: the ``select`` frames are drawn at random
    (still at most ``max_per_system`` per trajectory), as are the ``eval`` frames. The
    returned frames carry ``info["sampling"]`` (method
    ``active_learning``, the round, ``role`` ``selected`` or ``eval``, the step, the
    disagreement).
    """
    if not pool:
        raise RunError(
            "active learning found no usable frame: every student trajectory broke at once; "
            "train the first student longer or lower active_learning: temperature_K"
        )
    frames_in_pool = [p["atoms"] for p in pool]
    scored = len(committee) > 1
    if not scored:
        scores = np.zeros(len(pool))
    elif scores is None:
        scores = disagreement(committee, frames_in_pool)
    elif len(scores) != len(pool):
        raise InputError(f"got {len(scores)} scores for a pool of {len(pool)} frames")
    per_system: dict[int, int] = {}
    selected: list[int] = []
    order = (
        np.argsort(-scores, kind="stable")
        if scored
        else np.random.default_rng([seed, round_index, 5]).permutation(len(pool))
    )
    for k in order:
        if len(selected) == settings["select"]:
            break
        if per_system.get(pool[k]["system"], 0) < settings["max_per_system"]:
            selected.append(int(k))
            per_system[pool[k]["system"]] = per_system.get(pool[k]["system"], 0) + 1
    rest = [k for k in range(len(pool)) if k not in set(selected)]
    rng = np.random.default_rng([seed, round_index, 7])
    evaluation = [rest[i] for i in rng.permutation(len(rest))[: settings["eval_frames"]]]
    frames = []
    for role, indices in (("selected", selected), ("eval", sorted(evaluation))):
        for k in indices:
            atoms = pool[k]["atoms"].copy()
            atoms.info["sampling"] = {
                "method": "active_learning",
                "round": round_index,
                "role": role,
                "system": pool[k]["system"],
                "step": pool[k]["step"],
                "temperature_K": settings["temperature_K"],
                "disagreement_eV_per_A": float(scores[k]) if scored else None,
            }
            frames.append(atoms)
    summary = {
        "pool_frames": len(pool),
        "trajectories": len({p["system"] for p in pool}),
        "committee": len(committee),
        "disagreement_eV_per_A": {
            "median": float(np.median(scores)),
            "max": float(scores.max()),
            "selected_min": float(scores[selected].min()) if selected else None,
        }
        if scored
        else None,
        "selected": len(selected),
        "eval": len(evaluation),
    }
    pool_table = [
        {"system": p["system"], "step": p["step"], "disagreement_eV_per_A": float(scores[k])}
        for k, p in enumerate(pool)
    ]
    return frames, summary, pool_table


def student_force_errors(student: str | Path, frames: list[Atoms]) -> dict[str, Any]:
    """Force RMSE and MAE (eV/Å) of ``student`` against the labels on ``frames``."""
    from ..calculators import StudentCalculator

    if not frames:
        return {"frames": 0, "force_rmse_eV_per_A": None, "force_mae_eV_per_A": None}
    calc = StudentCalculator(student)
    diff = np.concatenate(
        [calc.get_forces(_unlabelled(a)) - a.get_forces() for a in frames]
    ).ravel()
    return {
        "frames": len(frames),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(diff**2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(diff))),
    }


def _unlabelled(atoms: Atoms) -> Atoms:
    copy = atoms.copy()
    copy.calc = None
    return copy
