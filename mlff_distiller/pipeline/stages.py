"""Stages that remember what they did: skip when the inputs are unchanged, resume otherwise.

Each stage has a key, a hash of everything it depends on (its part of the config and the
digests of the files it reads). Its record, ``RUN/stages/NAME.json``, is written when it
starts (status ``running``) and again when it finishes (status ``finished``, its outputs
and their digests, the time it took). A rerun:

- skips a stage whose record is finished with the same key and whose output files still
  have the digests it recorded;
- resumes a stage that was interrupted with the same key (labeling and training continue
  from their journals and ``last.pt``);
- redoes a stage whose key changed, replacing what it wrote before.

Because keys include the digests of upstream outputs, an edit to one section of the config
redoes that stage and only the stages whose inputs really changed after it.

Records are portable: output paths inside the run directory are stored relative to it, so
a run directory that is moved or copied (or named from another working directory) is still
recognised as done.

One process at a time owns a run directory (:func:`run_lock`): two runs resuming the same
stage would write the same journals and checkpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._locking import BusyError, exclusive
from .._progress import say
from ..files import write_json


class RunBusyError(BusyError):
    """Another process holds the run directory's lock."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the duration of a run (see :mod:`mlff_distiller._locking`)."""
    busy = (
        f"{run_dir} is in use by a running `mlff-distill run` ({{holder}}); wait for it "
        "to end, or give this run another --out"
    )
    with exclusive(run_dir / ".lock", busy, RunBusyError):
        yield


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a file, or of a directory's files in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _key(inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stages:
    """Runs named stages under ``run_dir`` and keeps their records.

    Parameters
    ----------
    run_dir
        The run directory; records go to ``run_dir/stages/``.
    progress
        Print a line per stage (run, resumed or skipped) on stderr.
    """

    def __init__(self, run_dir: Path, progress: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.done: list[dict[str, Any]] = []

    def record_path(self, name: str) -> Path:
        return self.run_dir / "stages" / f"{name}.json"

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.record_path(name)
        return json.loads(path.read_text()) if path.is_file() else None

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        work: Callable[[bool], dict[str, Any]],
        files: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Run ``work(restart)`` unless a finished record with the same inputs exists.

        ``work`` returns the stage's outputs (JSON values; paths as strings); the outputs
        named in ``files`` are files or directories whose digests are recorded and checked
        on reruns. ``restart`` is true when an earlier attempt had other inputs, so the
        stage must replace (not resume) what that attempt left.
        """
        key = _key(inputs)
        previous = self.record(name)
        if previous and previous.get("key") == key and previous.get("status") == "finished":
            outputs = self.outputs(previous)
            if self._outputs_intact(outputs, previous.get("digests") or {}):
                say(self.progress, f"[{name}] up to date, skipped")
                self.done.append({**previous, "outputs": outputs, "skipped": True})
                return outputs
        restart = previous is not None and previous.get("key") != key
        verb = "redoing (inputs changed)" if restart else "resuming" if previous else "running"
        say(self.progress, f"[{name}] {verb}")
        start = time.time()
        write_json(
            self.record_path(name),
            {"name": name, "key": key, "status": "running", "started": _now()},
        )
        outputs = work(restart)
        stored, in_run_dir = self._portable(outputs)
        record = {
            "name": name,
            "key": key,
            "status": "finished",
            "started": _now(start),
            "finished": _now(),
            "seconds": round(time.time() - start, 2),
            "outputs": stored,
            "in_run_dir": in_run_dir,
            "digests": {k: file_digest(outputs[k]) for k in files},
            "inputs": inputs,
        }
        write_json(self.record_path(name), record)
        self.done.append({**record, "outputs": outputs, "skipped": False})
        return outputs

    def outputs(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record's outputs, its run-directory paths placed under this run directory."""
        inside = set(record.get("in_run_dir", ()))
        return {
            k: str(self.run_dir / v) if k in inside else v for k, v in record["outputs"].items()
        }

    def _portable(self, outputs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``outputs`` with the paths of existing files inside the run directory made
        relative to it, and the names of those outputs."""
        root = self.run_dir.resolve()
        stored, inside = dict(outputs), []
        for k, v in outputs.items():
            if not (isinstance(v, str) and os.sep in v and Path(v).exists()):
                continue
            try:
                stored[k] = Path(v).resolve().relative_to(root).as_posix()
            except ValueError:
                continue  # a path outside the run directory stays as it is
            inside.append(k)
        return stored, inside

    @staticmethod
    def _outputs_intact(outputs: dict[str, Any], digests: dict[str, str]) -> bool:
        for name, digest in digests.items():
            path = Path(outputs[name])
            if not path.exists() or file_digest(path) != digest:
                return False
        return True


def _now(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
