"""One command from teacher to validated student: ``mlff-distill run config.yaml``.

Stages, each in the run directory and each skipped when its inputs are unchanged
(:mod:`mlff_distiller.pipeline.stages`)::

    structures             structures/structures.json   the recipe's structures (steps/: per step)
    label-0                round-0/dataset.h5           teacher labels
    train-0[.k]            round-0/student[-k]/         the student (and committee member k)
    explore-R, label-R     round-R/                     active learning round R = 1..rounds
    train-R[.k]            round-R/student[-k]/         retrained on the grown data
    explore-final, ...     final/                       on-trajectory error of the last student
    export                 student.pt                   TorchScript for ASE, OpenMM, LAMMPS
    md-openmm, md-lammps   md/openmm/, md/lammps/       short runs in the production engines
    validate               validation/                  the validation suite's report
                           summary.json                 where everything is, and the numbers

>>> summary = run_pipeline("demo", "demo_output")                      # doctest: +SKIP
>>> summary["student"]                                                 # doctest: +SKIP
'demo_output/student.pt'
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .._progress import say
from ..files import write_json
from ..shipped import resolve_student
from ..training.config import DEFAULTS as TRAINING_DEFAULTS
from . import active, md
from .card import held_out_kind, write_model_card
from .config import load_config
from .stages import Stages, file_digest, run_lock


def _suite_key(suite: str) -> str:
    return file_digest(suite) if Path(suite).is_file() else str(suite)


class Pipeline:
    """The stages of one run directory; see the module docstring."""

    def __init__(self, config: dict[str, Any], run_dir: Path, progress: bool = True) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        self.stages = Stages(run_dir, progress)
        self._teacher = None
        self._model_key: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def teacher(self):
        if self._teacher is None:
            from ..teachers import get_teacher

            self._teacher = get_teacher(self.config["teacher"], **self.config["teacher_kwargs"])
        return self._teacher

    def _teacher_inputs(self) -> dict[str, Any]:
        return {"teacher": self.config["teacher"], "kwargs": self.config["teacher_kwargs"]}

    def _label(self, structures, path: Path, restart: bool) -> Path:
        from ..data import label

        labeling = self.config["labeling"]
        return label(
            structures,
            self.teacher(),
            path,
            overwrite=restart,
            max_force=labeling["max_force"],
            chunk_size=labeling["chunk_size"],
            progress=self.progress,
        )

    def _train(self, name: str, dataset: str, out: Path, seed_offset: int, epochs=None) -> str:
        """Train (or skip) one student on ``dataset``; returns its best checkpoint."""
        from ..training import train

        student = self.config["student"]
        training = dict(student["training"])
        training["seed"] = int(training.get("seed", 0)) + seed_offset
        if epochs is not None:
            training["epochs"] = epochs
        inputs = {"dataset": file_digest(dataset), "preset": student["preset"], **training}
        if "init_from" in training:  # the student it starts from, by content
            inputs["init_from_digest"] = file_digest(resolve_student(training["init_from"]))

        def work(restart: bool) -> dict[str, Any]:
            best = train(
                dataset,
                student["preset"],
                out,
                overwrite=restart,
                progress=self.progress,
                **training,
            )
            return {"checkpoint": str(best), "test_report": str(out / "test_report.json")}

        return self.stages.run(name, inputs, work, files=("checkpoint",))["checkpoint"]

    def _committee(self, round_index: int, dataset: str, main: str) -> list[str]:
        """The main student plus ``committee - 1`` students with other seeds."""
        al = self.config["active_learning"]
        members = [main]
        for k in range(1, al["committee"]):
            out = self.run_dir / f"round-{round_index}" / f"student-{k}"
            members.append(
                self._train(
                    f"train-{round_index}.{k}", dataset, out, k, epochs=al["committee_epochs"]
                )
            )
        return members

    # ------------------------------------------------------------------- stages
    def structures(self) -> str:
        from ..data import build_structures
        from ..data.cache import write_structure_cache
        from ..data.recipe import needs_calculator

        recipe = self.config["structures"]
        path = self.run_dir / "structures" / "structures.json"
        needs_teacher = needs_calculator(recipe)

        def work(restart: bool) -> dict[str, Any]:
            # Per-step caches: an interrupted build resumes at its step, and a recipe with
            # one more step computes only that one.
            built = build_structures(
                recipe,
                self.teacher() if needs_teacher else None,
                cache_dir=path.parent / "steps",
                calculator_key=self._teacher_inputs(),
            )
            write_structure_cache(built, path)
            return {"structures": str(path), "count": len(built)}

        inputs = {"recipe": recipe, **(self._teacher_inputs() if needs_teacher else {})}
        drivers = sorted({str(s["driver"]) for s in recipe.get("sampling") or [] if "driver" in s})
        if drivers:  # a retrained driver gives other samples
            inputs["drivers"] = {d: file_digest(d) for d in drivers if Path(d).is_file()}
        return self.stages.run("structures", inputs, work, files=("structures",))["structures"]

    def label_round(self, name: str, frames_file: str, previous: str | None, out: Path) -> str:
        """Label the frames in ``frames_file``; append them to ``previous`` (if any)."""
        from ..data import concat_datasets
        from ..data.cache import read_structure_cache

        inputs = {
            "frames": file_digest(frames_file),
            "previous": file_digest(previous) if previous else None,
            "labeling": self.config["labeling"],
            **self._teacher_inputs(),
        }

        def work(restart: bool) -> dict[str, Any]:
            new = self._label(read_structure_cache(Path(frames_file)), out / "labels.h5", restart)
            if previous is None:
                return {"dataset": str(new), "labels": str(new)}
            grown = concat_datasets([previous, new], out / "dataset.h5", overwrite=True)
            return {"dataset": str(grown), "labels": str(new)}

        return self.stages.run(name, inputs, work, files=("dataset",))["dataset"]

    def explore(self, name: str, round_index: int, committee: list[str]) -> str:
        """Student MD with ``committee[0]``, the committee's disagreement, and the frames to
        label (a JSON file). A committee of one (the final check) draws random frames only."""
        from ..data.cache import read_structure_cache, write_structure_cache

        al = self.config["active_learning"]
        final = name.endswith("final")
        out = self.run_dir / ("final" if final else f"round-{round_index}")
        inputs = {
            "students": [file_digest(p) for p in committee],
            "settings": al,
            "round": round_index,
            "final": final,
        }

        def work(restart: bool) -> dict[str, Any]:
            structures = read_structure_cache(self.run_dir / "structures" / "structures.json")
            settings = {**al, "select": 0} if final else al
            starts = active.pick_starts(structures, al["systems"], al["seed"] + round_index)
            seed = al["seed"] + round_index
            if al["engine"] == "lammps":
                pool, scores = active.explore_lammps(committee, starts, settings, seed, out / "md")
            else:
                pool, scores = active.explore(committee[0], starts, settings, seed=seed), None
            frames, summary, table = active.select_frames(
                pool, committee, settings, al["seed"], round_index, scores=scores
            )
            write_structure_cache(frames, out / "frames.json")
            write_json(out / "explore.json", {**summary, "pool": table})
            return {"frames": str(out / "frames.json"), **summary}

        self.stages.run(name, inputs, work, files=("frames",))
        return str(out / "frames.json")

    def trajectory_errors(self, name: str, student: str, labels: str) -> dict[str, Any]:
        """The force error of ``student`` on the labelled frames of its own trajectories."""
        from ..data import read_dataset

        def work(restart: bool) -> dict[str, Any]:
            frames = read_dataset(labels)
            by_role = {
                role: [f for f in frames if f.info["sampling"]["role"] == role]
                for role in ("eval", "selected")
            }
            return {role: active.student_force_errors(student, by_role[role]) for role in by_role}

        inputs = {"student": file_digest(student), "labels": file_digest(labels)}
        return self.stages.run(name, inputs, work)

    def export(self, checkpoint: str) -> str:
        from ..export import export

        dtype = self.config["export"]["dtype"]
        path = self.run_dir / "student.pt"

        def work(restart: bool) -> dict[str, Any]:
            return {"model": str(export(checkpoint, path, dtype=dtype)), "dtype": dtype}

        inputs = {"checkpoint": file_digest(checkpoint), "dtype": dtype}
        # What runs downstream depends on the weights and dtype, not on the export date in
        # the file's metadata: an export redone from the same checkpoint redoes nothing else.
        self._model_key = inputs
        return self.stages.run("export", inputs, work, files=("model",))["model"]

    def md_runs(self, model: str) -> dict[str, Any]:
        from ..data import load_source

        settings = self.config["md"]
        if settings is None:
            return {}
        results = {}
        for engine in settings["engines"]:
            out = self.run_dir / "md" / engine
            runner = md.run_openmm if engine == "openmm" else md.run_lammps

            def work(restart: bool, runner=runner, out=out) -> dict[str, Any]:
                if out.exists():
                    shutil.rmtree(out)
                atoms = load_source(settings["structure"])[0]
                return runner(Path(model), atoms, settings, out)

            inputs = {"model": self._model_key, "settings": settings}
            results[engine] = self.stages.run(f"md-{engine}", inputs, work)
        return results

    def validate(self, model: str) -> dict[str, Any] | None:
        from ..validation import validate

        settings = self.config["validation"]
        if settings is None:
            return None
        out = self.run_dir / "validation"
        cache = settings["cache"] or self.run_dir / "validation-cache"

        def work(restart: bool) -> dict[str, Any]:
            report = validate(
                model,
                teacher=self.config["teacher"],
                suite=settings["suite"],
                out=out,
                cache=cache,
                progress=self.progress,
                teacher_kwargs=self.config["teacher_kwargs"],
            )
            return {
                "report": str(out / "report.md"),
                "report_json": str(out / "report.json"),
                "verdict": report["verdict"],
                "systems": {s["name"]: s["verdict"] for s in report["systems"]},
            }

        inputs = {
            "model": self._model_key,
            "suite": _suite_key(settings["suite"]),
            **self._teacher_inputs(),
        }
        return self.stages.run("validate", inputs, work, files=("report_json",))

    # --------------------------------------------------------------------- all
    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        al = self.config["active_learning"]
        round0 = self.run_dir / "round-0"
        dataset = self.label_round("label-0", self.structures(), None, round0)
        student = self._train("train-0", dataset, round0 / "student", 0)
        rounds = []
        for r in range(1, al["rounds"] + 1):
            committee = self._committee(r - 1, dataset, student)
            frames = self.explore(f"explore-{r}", r, committee)
            out = self.run_dir / f"round-{r}"
            dataset = self.label_round(f"label-{r}", frames, dataset, out)
            errors = self.trajectory_errors(f"errors-{r}", student, str(out / "labels.h5"))
            rounds.append({"round": r - 1, "student": student, "on_trajectory": errors})
            student = self._train(f"train-{r}", dataset, out / "student", 0)
        if al["rounds"]:
            # Evaluation only: random frames of the last student's trajectories, no committee.
            frames = self.explore("explore-final", al["rounds"] + 1, [student])
            labels = self.label_round("label-final", frames, None, self.run_dir / "final")
            errors = self.trajectory_errors("errors-final", student, labels)
            rounds.append({"round": al["rounds"], "student": student, "on_trajectory": errors})
        model = self.export(student)
        md_runs = self.md_runs(model)
        validation = self.validate(model)
        return self._summary(student, dataset, model, rounds, md_runs, validation, start)

    def _summary(self, student, dataset, model, rounds, md_runs, validation, start):
        from ..data import summary as dataset_summary

        test = json.loads((Path(student).parent / "test_report.json").read_text())
        return {
            "name": self.config["name"],
            "run_dir": str(self.run_dir),
            "student": model,
            "checkpoint": student,
            "dataset": dataset,
            "dataset_frames": dataset_summary(dataset)["frames"],
            "test": {
                **{k: v for k, v in test.items() if k != "per_element"},
                # "group": whole molecules never trained on; "frame": random frames.
                "split_by": self.config["student"]["training"].get(
                    "split_by", TRAINING_DEFAULTS["split_by"]
                ),
            },
            "active_learning": rounds,
            "md": md_runs,
            "validation": validation,
            "stages": [
                {"name": s["name"], "seconds": s["seconds"], "skipped": s["skipped"]}
                for s in self.stages.done
            ],
            "seconds": round(time.perf_counter() - start, 1),
        }


def run_pipeline(
    config: str | os.PathLike | dict[str, Any],
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the pipeline of ``config`` in ``out`` and return its summary.

    Parameters
    ----------
    config
        A YAML file, a built-in config name (``demo``, ``demo-quick``) or a mapping.
    out
        The run directory (default: the config's ``out``, else ``runs/NAME``).
    progress
        Show stage lines and progress bars on stderr.
    """
    cfg = load_config(config)
    run_dir = Path(out or cfg["out"] or Path("runs") / cfg["name"])
    with run_lock(run_dir):
        return _run_locked(config, cfg, run_dir, progress)


def _run_locked(config, cfg: dict[str, Any], run_dir: Path, progress: bool) -> dict[str, Any]:
    write_json(run_dir / "config.json", cfg)
    say(progress, f"pipeline {cfg['name']}: {run_dir}")
    summary = Pipeline(cfg, run_dir, progress).run()
    command = (
        f"mlff-distill run {config} --out {run_dir}"
        if not isinstance(config, dict)
        else f"run_pipeline(<the config in {run_dir / 'config.json'}>, {str(run_dir)!r})"
    )
    summary["model_card"] = str(write_model_card(summary, cfg, run_dir / "MODEL_CARD.md", command))
    write_json(run_dir / "summary.json", summary)
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """The final lines of a run: where the student and the report are, and the numbers."""
    test = summary["test"]
    lines = [
        f"{summary['name']}: done in {summary['seconds']:.0f} s ({summary['run_dir']})",
        f"  student:     {summary['student']} (TorchScript; checkpoint {summary['checkpoint']})",
        f"  data:        {summary['dataset']} ({summary['dataset_frames']} frames)",
        f"  held-out:    {test['split']} {held_out_kind(test)} ({test['frames']} frames): "
        "energy MAE "
        f"{test['energy_mae_meV_per_atom']:.1f} meV/atom, force RMSE "
        f"{test['force_rmse_eV_per_A']:.3f} eV/Å",
    ]
    for entry in summary["active_learning"]:
        errors = entry["on_trajectory"]["eval"]
        if errors["frames"]:
            lines.append(
                f"  round {entry['round']}:     force RMSE on its own MD frames "
                f"{errors['force_rmse_eV_per_A']:.3f} eV/Å ({errors['frames']} random frames)"
            )
    for engine, run in summary["md"].items():
        where = run.get("deck") or run.get("script")
        lines.append(
            f"  {engine + ':':<12} {run['steps']} steps in {run['wall_seconds']:.0f} s, "
            f"mean T {run['mean_temperature_K']:.0f} K; {where}"
        )
    validation = summary["validation"]
    if validation:
        lines.append(f"  validation:  {validation['verdict']}; report {validation['report']}")
    lines.append(f"  model card:  {summary['model_card']}")
    return "\n".join(lines)
