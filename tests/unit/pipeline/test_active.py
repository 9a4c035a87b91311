"""Frame selection without a committee: random frames of the student's trajectories, not the
first ones (which sit next to the starting structures)."""

from __future__ import annotations

from ase.build import molecule

from mlff_distiller.pipeline.active import select_frames


def test_without_a_committee_the_selected_frames_are_random_and_capped_per_trajectory():
    pool = [
        {"atoms": molecule("H2O"), "system": system, "step": 10 * (k + 1)}
        for system in range(3)
        for k in range(50)
    ]
    settings = {"select": 12, "max_per_system": 5, "eval_frames": 6, "temperature_K": 300.0}
    frames, summary, _ = select_frames(pool, ["student.pt"], settings, seed=0, round_index=1)
    selected = [f.info["sampling"] for f in frames if f.info["sampling"]["role"] == "selected"]
    assert summary["selected"] == 12 and summary["eval"] == 6 and len(frames) == 18
    per_system = [sum(1 for s in selected if s["system"] == k) for k in range(3)]
    assert max(per_system) <= 5 and sum(per_system) == 12
    # Random over each 500-step trajectory, not its first frames.
    assert max(s["step"] for s in selected) > 250
    again, _, _ = select_frames(pool, ["student.pt"], settings, seed=0, round_index=1)
    assert [f.info["sampling"]["step"] for f in again] == [
        f.info["sampling"]["step"] for f in frames
    ]
    evaluation = {(s["system"], s["step"]) for f in frames
                  if (s := f.info["sampling"])["role"] == "eval"}  # fmt: skip
    assert not evaluation & {(s["system"], s["step"]) for s in selected}
