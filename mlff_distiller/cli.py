"""The ``mlff-distill`` command line.

Every subcommand has ``--help``; bad input ends with a one-line reason and a non-zero exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError, MlffDistillerError
from .files import to_json, write_text

#: Exit status for bad input (arguments, configs, files).
EXIT_USAGE = 2
#: Exit status of a validation whose verdict is FAIL (so it can gate a pipeline).
EXIT_FAIL = 1


class UsageError(InputError):
    """Bad command-line input or config."""


def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {path!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path!r} must hold a mapping of options")
    return data


# ----------------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    if args.path:
        return _info_file(Path(args.path))
    from .environment import environment_report

    report = environment_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"mlff_distiller {report['mlff_distiller']}")
    for name, version in report["versions"].items():
        print(f"  {name:<12} {version}")
    print("teachers:")
    for name, status in report["teachers"].items():
        print(f"  {name:<30} {status}")
    return 0


def _info_file(path: Path) -> int:
    from .data import summary

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.suffix in (".h5", ".hdf5"):
        print(json.dumps(summary(path), indent=2))
        return 0
    from .export import is_exported, load_exported

    if path.suffix == ".pt" and is_exported(path):
        _, metadata = load_exported(path)
        print(json.dumps(metadata, indent=2))
        return 0
    if path.suffix == ".pt":
        from .training import load_checkpoint

        data = load_checkpoint(path)
        keys = (
            "preset",
            "elements",
            "model_config",
            "dtype",
            "dataset",
            "dataset_hash",
            "teacher",
            "splits",
            "epoch",
            "metrics",
        )
        print(json.dumps({k: data.get(k) for k in keys}, indent=2, default=str))
        return 0
    raise UsageError(f"{path}: info reads datasets (.h5), exported models and checkpoints (.pt)")


# --------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from .export import export, load_exported

    path = export(args.checkpoint, args.out, dtype=args.dtype)
    _, metadata = load_exported(path)
    print(
        f"wrote {path}: {metadata['dtype']}, elements {' '.join(metadata['elements'])}, "
        f"cutoff {metadata['cutoff']} Å, {metadata['parameters']:,} parameters"
    )
    return 0


# -------------------------------------------------------------------------- dataset
def _label_options(args: argparse.Namespace) -> dict[str, Any]:
    config = _load_config(args.config)
    recipe = dict(config.get("structures") or {})
    if args.source:
        recipe["sources"] = args.source
    for key in ("conformers", "seed"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    if args.perturb:
        recipe.setdefault("sampling", []).append(
            {"method": "perturb", "n_samples": args.perturb, "amplitude": args.amplitude}
        )
    options = {
        "teacher": args.teacher or config.get("teacher") or "sevennet-0",
        "teacher_kwargs": dict(config.get("teacher_kwargs") or {}),
        "out": args.out or config.get("out"),
        "shard": args.shard or config.get("shard"),
        "max_force": args.max_force or config.get("max_force"),
        "recipe": recipe,
    }
    unknown = set(config) - {"structures", "teacher", "teacher_kwargs", "out", "shard", "max_force"}
    if unknown:
        raise UsageError(f"unknown config key(s) {', '.join(sorted(unknown))} in {args.config}")
    if not options["out"]:
        raise UsageError("no output file: pass --out data.h5 (or 'out:' in the config)")
    if not recipe.get("sources"):
        raise UsageError("no structures: pass --source (e.g. builtin:organic, smiles:CCO, a file)")
    # Everything that can be checked without the teacher is checked before it loads.
    from .data.labeling import parse_shard
    from .data.recipe import check_recipe

    check_recipe(recipe)
    parse_shard(options["shard"])
    out = Path(options["out"])
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the dataset file to write (.h5)")
    return options


def cmd_dataset_label(args: argparse.Namespace) -> int:
    from .data import build_structures, label
    from .data.labeling import DEFAULT_MAX_FORCE
    from .data.recipe import needs_calculator
    from .teachers import get_teacher

    options = _label_options(args)
    out = Path(options["out"])
    recipe = options["recipe"]
    teacher = (
        get_teacher(options["teacher"], **options["teacher_kwargs"])
        if needs_calculator(recipe)
        else None
    )
    structures = _cached_structures(out, options, lambda: build_structures(recipe, teacher))
    if teacher is None:  # built after the structures, so a bad source fails fast
        teacher = get_teacher(options["teacher"], **options["teacher_kwargs"])
    label(
        structures,
        teacher,
        out,
        overwrite=args.overwrite,
        shard=options["shard"],
        max_force=options["max_force"] or DEFAULT_MAX_FORCE,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
    )
    return 0


def _cached_structures(out: Path, options: dict[str, Any], build: Any) -> list:
    """Build the structures once per job: an interrupted run reuses them (sampling with the
    teacher is expensive), kept in the labeling journal until the dataset is complete."""
    from .data.cache import read_structure_cache, write_structure_cache

    inputs = {k: options[k] for k in ("recipe", "teacher", "teacher_kwargs")}
    # A retrained student under the same name drives other MD: key on its bytes too.
    drivers = [s["driver"] for s in options["recipe"].get("sampling") or [] if "driver" in s]
    inputs["drivers"] = [hashlib.sha256(Path(d).read_bytes()).hexdigest() for d in drivers]
    key = hashlib.sha256(to_json(inputs, sort_keys=True).encode()).hexdigest()[:16]
    cache = out.with_name(out.name + ".partial") / f"structures-{key}.json"
    if cache.exists():
        return read_structure_cache(cache)
    structures = build()
    if out.exists():
        return structures
    write_structure_cache(structures, cache)
    return read_structure_cache(cache)


def cmd_dataset_merge(args: argparse.Namespace) -> int:
    from .data import merge_datasets, summary

    out = merge_datasets(
        args.shards, args.out, overwrite=args.overwrite, allow_partial=args.allow_partial
    )
    print(json.dumps(summary(out), indent=2))
    return 0


def cmd_dataset_split(args: argparse.Namespace) -> int:
    from .data import read_dataset, split_indices

    fractions = tuple(float(x) for x in args.fractions.split(","))
    if len(fractions) != 3:
        raise UsageError(
            f"--fractions takes three numbers like 0.8,0.1,0.1, got {args.fractions!r}"
        )
    splits = split_indices(read_dataset(args.dataset), fractions, by=args.by, seed=args.seed)
    payload = {"dataset": str(args.dataset), "by": args.by, "seed": args.seed, **splits}
    text = json.dumps(payload, indent=1)
    if args.out:
        write_text(args.out, text)
        counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        print(f"wrote {args.out}: {counts}")
    else:
        print(text)
    return 0


def cmd_dataset_export(args: argparse.Namespace) -> int:
    from .data import write_extxyz

    print(f"wrote {write_extxyz(args.dataset, args.out)}")
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from .data import import_extxyz, summary

    out = import_extxyz(args.source, args.out, teacher=args.teacher, overwrite=args.overwrite)
    print(json.dumps(summary(out), indent=2))
    return 0


# ---------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from .training import parse_overrides, train

    config = _load_config(args.config)
    # The YAML may name them too; flags win, and they are not training options.
    from_file = {key: config.pop(key, None) for key in ("dataset", "out", "preset")}
    dataset = args.dataset or from_file["dataset"]
    out = args.out or from_file["out"]
    preset = args.preset or from_file["preset"] or "tiny"
    if not dataset:
        raise UsageError("no dataset: pass --dataset data.h5 (from `mlff-distill dataset label`)")
    if not out:
        raise UsageError("no output directory: pass --out runs/NAME")
    overrides = parse_overrides(args.set or [])
    best = train(
        dataset,
        preset,
        out,
        config=config,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **overrides,
    )
    report = Path(out) / "test_report.json"
    if report.exists():
        r = json.loads(report.read_text())
        print(
            f"best checkpoint: {best}\n"
            f"{r['split']} set ({r['frames']} frames): "
            f"energy MAE {r['energy_mae_meV_per_atom']:.1f} meV/atom, "
            f"force MAE {r['force_mae_eV_per_A']:.3f} eV/Å, "
            f"RMSE {r['force_rmse_eV_per_A']:.3f} eV/Å; parity plot {Path(out) / 'parity.png'}"
        )
    return 0


# --------------------------------------------------------------------------- lammps
def cmd_lammps(args: argparse.Namespace) -> int:
    from .engines import lammps

    try:
        if args.lammps_command == "build":
            path = lammps.build_plugin(force=args.force, verbose=args.verbose)
            print(
                f"pair_style mlff: {path}\n"
                "the `lmp` launcher loads it by itself; elsewhere use: plugin load " + str(path)
            )
        elif args.lammps_command == "path":
            print(lammps.plugin_path())
        else:
            from ase.io import read

            atoms = read(args.structure, index=args.index)
            data = lammps.write_data(
                atoms,
                args.out,
                elements=args.elements,
                units=args.units,
                atom_style=args.atom_style,
            )
            bonds = f", {len(data.bond_types)} bond types" if args.atom_style == "full" else ""
            deck = [
                f"units {args.units}",
                *data.deck_lines,
                "pair_style mlff MODEL.pt",
                data.pair_coeff,
            ]
            print(f"wrote {data.path} ({len(atoms)} atoms{bonds}); in the deck:")
            print("\n".join(f"  {line}" for line in deck))
    except lammps.PluginError as exc:
        print(f"mlff-distill: error: {exc}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from .validation import SuiteError, validate

    config = _load_config(args.config)
    model = args.model or config.get("model")
    if not model:
        raise UsageError("no student: pass --model student.pt (from `mlff-distill export`)")
    try:
        report = validate(
            model,
            teacher=args.teacher or config.get("teacher", "sevennet-0"),
            suite=args.suite or config.get("suite", "quick"),
            out=args.out or config.get("out", "validation_report"),
            cache=args.cache or config.get("cache"),
            progress=not args.quiet,
        )
    except SuiteError as exc:
        raise UsageError(str(exc)) from exc
    out = Path(args.out or config.get("out", "validation_report"))
    for system in report["systems"]:
        failed = [c["name"] for c in system["checks"] if c["verdict"] == "FAIL"]
        why = system.get("error") or (", ".join(failed) if failed else "all checks passed")
        print(f"{system['name']}: {system['verdict']} ({why})")
    print(f"verdict: {report['verdict']}; report: {out / 'report.md'} and {out / 'report.json'}")
    return 0 if report["verdict"] == "PASS" else EXIT_FAIL


# ------------------------------------------------------------------------ run, demo
def _run_pipeline(config: str, out: str | None, quiet: bool) -> int:
    from .pipeline import ConfigError, RunBusyError, run_pipeline
    from .pipeline.run import summary_text

    try:
        summary = run_pipeline(config, out, progress=not quiet)
    except (ConfigError, RunBusyError) as exc:
        raise UsageError(str(exc)) from exc
    print(summary_text(summary))
    validation = summary["validation"]
    return EXIT_FAIL if validation and validation["verdict"] == "FAIL" else 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run_pipeline(args.config, args.out, args.quiet)


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo shows the whole chain; a FAIL verdict is part of what it shows, not an error.
    _run_pipeline("demo-quick" if args.quick else "demo", args.out, args.quiet)
    return 0


# --------------------------------------------------------------------------- parser
def _count(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlff-distill",
        description=(
            "Distill large ML force fields into small, fast students for ASE, OpenMM and LAMMPS."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mlff_distiller {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, available teachers, or a file's metadata")
    p.add_argument(
        "path", nargs="?", help="a dataset (.h5), exported model or checkpoint (.pt) to describe"
    )
    p.add_argument("--json", action="store_true", help="print the environment report as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("dataset", help="label structures with a teacher; merge, split, convert")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    q = dsub.add_parser(
        "label",
        help="label structures with a teacher into an HDF5 dataset (resumable)",
        description="Label structures with a teacher. Rerun the same command to resume.",
    )
    q.add_argument("--config", help="YAML with teacher, teacher_kwargs, structures, out, shard")
    q.add_argument(
        "--source",
        action="append",
        help="builtin:organic, builtin:water-N, smiles:CCO,c1ccccc1 or a file (repeatable)",
    )
    q.add_argument("--teacher", help="registered name or package.module:Class (default sevennet-0)")
    q.add_argument("--out", help="the dataset file to write (.h5)")
    q.add_argument("--conformers", type=_count(1), help="conformers per SMILES (default 1)")
    q.add_argument("--seed", type=int, help="seed for conformers and sampling (default 0)")
    q.add_argument(
        "--perturb",
        type=_count(0),
        default=0,
        metavar="N",
        help="add N randomly displaced copies of each structure",
    )
    q.add_argument(
        "--amplitude", type=float, default=0.05, help="displacement std for --perturb (Å)"
    )
    q.add_argument(
        "--shard", help="label only part i of N ('i/N', 0-based); join with 'dataset merge'"
    )
    q.add_argument(
        "--max-force", type=float, help="reject frames with a force component above this (eV/Å)"
    )
    q.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    q.add_argument(
        "--chunk-size",
        type=_count(1),
        default=8,
        help="frames saved per journal chunk; at most this much is redone after a crash",
    )
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_dataset_label)

    q = dsub.add_parser("merge", help="join the shards of one labeling job")
    q.add_argument("shards", nargs="+", help="shard datasets")
    q.add_argument("--out", required=True)
    q.add_argument("--overwrite", action="store_true")
    q.add_argument("--allow-partial", action="store_true", help="merge even if shards are missing")
    q.set_defaults(func=cmd_dataset_merge)

    q = dsub.add_parser("split", help="reproducible train/val/test split (by molecule or frame)")
    q.add_argument("dataset")
    q.add_argument(
        "--fractions", default="0.8,0.1,0.1", help="train,val,test (default 0.8,0.1,0.1)"
    )
    q.add_argument("--by", choices=("group", "frame"), default="group")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="write the indices to this JSON file")
    q.set_defaults(func=cmd_dataset_split)

    q = dsub.add_parser("export-extxyz", help="write a dataset as extended XYZ")
    q.add_argument("dataset")
    q.add_argument("out")
    q.set_defaults(func=cmd_dataset_export)

    q = dsub.add_parser("import-extxyz", help="turn labelled extended XYZ into a dataset")
    q.add_argument("source")
    q.add_argument("out")
    q.add_argument("--teacher", default="external", help="where the labels came from")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_import)

    p = sub.add_parser(
        "train",
        help="distill a student from a labelled dataset (resumable; torchrun for data parallel)",
        description="Train a student. Rerun the same command to resume from last.pt.",
    )
    p.add_argument("--dataset", help="labelled dataset (.h5)")
    p.add_argument("--preset", choices=("standard", "tiny", "ultra-tiny"), help="default tiny")
    p.add_argument("--out", help="run directory for checkpoints, metrics and the test report")
    p.add_argument("--config", help="YAML with dataset, out, preset and any training option")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a training option, e.g. --set epochs=50 --set dtype=float64",
    )
    p.add_argument("--overwrite", action="store_true", help="discard a run with another config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "export",
        help="write a checkpoint as one TorchScript file for ASE, OpenMM and LAMMPS",
        description="Export a trained student (self-checked, metadata inside the file).",
    )
    p.add_argument(
        "checkpoint",
        help="a training checkpoint (best.pt), or an exported file to write again with this "
        "version (e.g. one older than format version 4, to run it on a GPU)",
    )
    p.add_argument("--out", required=True, help="the TorchScript file to write (model.pt)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("lammps", help="build the LAMMPS pair style plugin; write data files")
    lsub = p.add_subparsers(dest="lammps_command", required=True, metavar="ACTION")
    q = lsub.add_parser(
        "build",
        help="compile pair_style mlff for this environment (about a minute; skipped if current)",
    )
    q.add_argument("--force", action="store_true", help="rebuild even if the plugin is current")
    q.add_argument("--verbose", action="store_true", help="show the compiler's output")
    q.set_defaults(func=cmd_lammps)
    q = lsub.add_parser("path", help="print the built plugin's path (for `plugin load`)")
    q.set_defaults(func=cmd_lammps)
    q = lsub.add_parser("data", help="write a LAMMPS data file from any structure ase.io reads")
    q.add_argument("structure", help="a structure file (xyz, extxyz, cif, pdb, POSCAR, ...)")
    q.add_argument("--out", required=True, help="the data file to write")
    q.add_argument("--index", default="-1", help="frame of a trajectory (default: last)")
    q.add_argument(
        "--elements", nargs="+", help="element of each atom type in order (default: by Z)"
    )
    q.add_argument("--units", choices=("metal", "real"), default="metal")
    q.add_argument(
        "--atom-style",
        choices=("atomic", "full"),
        default="atomic",
        help="full: molecule ids, zero charges and covalent bonds, as classical decks use",
    )
    q.set_defaults(func=cmd_lammps)

    p = sub.add_parser(
        "validate",
        help="run a student and its teacher through a validation suite; PASS/FAIL report",
        description=(
            "Compare an exported student with its teacher: NVE drift, force errors, structure, "
            "stability and per-step latency in ASE, OpenMM and LAMMPS. Exits 1 on FAIL."
        ),
    )
    p.add_argument("--model", help="the exported student (model.pt)")
    p.add_argument("--teacher", help="teacher spec (default sevennet-0)")
    p.add_argument("--suite", help="quick, standard or a suite YAML file (default quick)")
    p.add_argument("--out", help="report directory (default validation_report)")
    p.add_argument("--cache", help="where teacher reference runs are kept (default OUT/cache)")
    p.add_argument("--config", help="YAML with any of: model, teacher, suite, out, cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_validate)

    from .benchmarking import cmd_benchmark, configure_parser

    p = sub.add_parser(
        "benchmark",
        help="student speed vs teacher and TIP3P per engine and size; memory over 1M calls",
        description=(
            "speed: ms/step and ns/day from 12 to 9,216 atoms for the teacher (ASE), each "
            "student in ASE, OpenMM and LAMMPS (1 and 2 ranks) and OpenMM TIP3P; memory: the "
            "RSS of a LAMMPS run over --calls student steps. Results: JSON, Markdown, PNG."
        ),
    )
    configure_parser(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser(
        "run",
        help="the whole chain from one YAML config: label, train, active learning, export, "
        "engine runs, validation (resumable)",
        description=(
            "Generate, label, train (with active learning rounds), export, run in OpenMM and "
            "LAMMPS, and validate, from one config (keys: mlff_distiller.pipeline.config). "
            "Rerunning skips every stage whose inputs are unchanged. Exits 1 on a FAIL verdict."
        ),
    )
    p.add_argument("config", help="pipeline YAML (or a built-in name: demo, demo-quick)")
    p.add_argument("--out", help="run directory (default: the config's out, else runs/NAME)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "demo",
        help="the main job on the built-in default (the demo config through `run`)",
        description="mlff-distill run demo --out demo_output: about 8 minutes on 2 idle cores.",
    )
    p.add_argument("--out", default="demo_output", help="output directory (default demo_output)")
    p.add_argument("--quick", action="store_true", help="a reduced run (minutes; a smoke test)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. The package's own errors (:mod:`mlff_distiller.errors`) and file
    errors on a path the command line named print as one line (exit 1, 2 for usage);
    anything else is a bug and keeps its traceback (``--debug`` shows it for all)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mlff-distill: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (MlffDistillerError, OSError) as exc:
        if args.debug or not (isinstance(exc, MlffDistillerError) or _names_an_argument(exc, args)):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mlff-distill: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else 1


def _names_an_argument(exc: OSError, args: argparse.Namespace) -> bool:
    """Whether ``exc`` is about a path the command line gave, a file inside it or a folder
    above it: a missing input or an unwritable ``--out`` is the user's to fix; other file
    errors are not."""
    if not exc.filename:
        return False
    failed = Path(os.fsdecode(exc.filename)).resolve()
    for value in vars(args).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, os.PathLike)) and str(item):
                given = Path(item).resolve()
                inside = given != Path.cwd() and given in failed.parents
                if failed == given or inside or failed in given.parents:
                    return True
    return False


if __name__ == "__main__":
    sys.exit(main())
