"""LAMMPS decks for a student, written in one place.

A deck opens with :meth:`LammpsData.student_deck` (units, box, ``read_data``, ``pair_style
mlff``, ``pair_coeff``) and goes on with the commands of :class:`Deck`, one method per thing
a run does (velocities, integrator, thermostat, output, runs). Every caller in the package and
in ``benchmarks/`` builds its deck here, so a change to how LAMMPS is driven is made once.

>>> deck = (Deck(data.student_deck("model.pt"))  # doctest: +SKIP
...         .velocities(300, seed=1).timestep(0.5).nve().thermo(100).run(1000).text())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: LAMMPS' seeds are positive ints below 2**30; seeds of any size are folded into this range.
_SEED_RANGE = 900_000_000


def lammps_seed(seed: int) -> int:
    """A LAMMPS random seed (1 <= seed < 9e8) for any non-negative ``seed``, one to one on
    ``0 <= seed < 9e8``."""
    return int(seed) % _SEED_RANGE + 1


class Deck:
    """A LAMMPS input script built command by command; each method returns the deck."""

    def __init__(self, opening: Iterable[str] = ()):
        self.lines: list[str] = list(opening)

    def text(self) -> str:
        """The script, one command per line, ending in a newline."""
        return "\n".join(self.lines) + "\n"

    def add(self, *commands: str) -> Deck:
        """Commands as they are (for what no method covers)."""
        self.lines.extend(commands)
        return self

    def comment(self, text: str) -> Deck:
        self.lines.extend(f"# {line}" if line else "#" for line in text.splitlines())
        return self

    def velocities(
        self, temperature_K: float, seed: int, rotation: bool = False, dist: str = "gaussian"
    ) -> Deck:
        """Velocities drawn at ``temperature_K`` with no centre-of-mass motion (and no net
        rotation unless ``rotation``); ``dist`` is ``gaussian`` or ``uniform``."""
        rot = "yes" if rotation else "no"
        self.lines.append(
            f"velocity all create {temperature_K} {seed} mom yes rot {rot} dist {dist}"
        )
        return self

    def timestep(self, fs: float, units: str = "metal") -> Deck:
        """The time step in fs (written in ps for ``units metal``, fs for ``real``)."""
        self.lines.append(f"timestep {float(fs) / 1000 if units == 'metal' else float(fs)!r}")
        return self

    def neighbor(self, skin_A: float = 2.0) -> Deck:
        """A neighbour list rebuilt whenever an atom moved half the skin (checked each step)."""
        self.lines += [f"neighbor {skin_A} bin", "neigh_modify every 1 delay 0 check yes"]
        return self

    def nve(self, name: str = "integrate") -> Deck:
        """Velocity Verlet (``fix nve``)."""
        self.lines.append(f"fix {name} all nve")
        return self

    def nph(
        self, pressure_bar: float, damp_ps: float, units: str = "metal", name: str = "integrate"
    ) -> Deck:
        """Isotropic constant-pressure integration (``fix nph iso``, Nose-Hoover barostat with
        time scale ``damp_ps``) at ``pressure_bar``, in place of :meth:`nve`; add
        :meth:`langevin` for NPT. ``units real`` takes atm and fs, ``metal`` bar and ps."""
        pressure = pressure_bar if units == "metal" else pressure_bar / 1.01325
        damp = damp_ps if units == "metal" else 1000.0 * damp_ps
        self.lines.append(f"fix {name} all nph iso {pressure!r} {pressure!r} {damp!r}")
        return self

    def langevin(
        self,
        temperature_K: float,
        damp_ps: float,
        seed: int,
        zero: bool = False,
        all_dof: bool = False,
        name: str = "thermostat",
    ) -> Deck:
        """A Langevin thermostat on top of the integrator (``fix langevin``). ``zero``: its
        random forces sum to zero; ``all_dof``: the temperature counts all 3N degrees of
        freedom (``compute_modify thermo_temp extra/dof 0``), as for a molecule whose centre
        of mass the thermostat leaves free."""
        line = f"fix {name} all langevin {temperature_K} {temperature_K} {damp_ps} {seed}"
        self.lines.append(line + (" zero yes" if zero else ""))
        if all_dof:
            self.lines.append("compute_modify thermo_temp extra/dof 0")
        return self

    def unfix(self, name: str) -> Deck:
        self.lines.append(f"unfix {name}")
        return self

    def thermo(
        self,
        every: int,
        columns: Sequence[str] | None = None,
        precise: bool = False,
        extensive: bool = False,
        lost_error: bool = False,
    ) -> Deck:
        """Thermo output every ``every`` steps (0: at the start and end of each run), with
        ``columns`` (``thermo_style custom``), all digits (``precise``), totals rather than
        per-atom values (``extensive``), stopping on a lost atom (``lost_error``)."""
        if columns:
            self.lines.append("thermo_style custom " + " ".join(columns))
        modify = []
        if precise:
            modify.append("format float %.17g")
        if extensive:
            modify.append("norm no")
        if lost_error:
            modify.append("lost error")
        if modify:
            self.lines.append("thermo_modify " + " ".join(modify))
        self.lines.append(f"thermo {every}")
        return self

    def variable(self, name: str, expression: str) -> Deck:
        self.lines.append(f"variable {name} equal {expression}")
        return self

    def halt_above(self, every: int, variable: str, limit: float) -> Deck:
        """Stop the run (softly, with a message) when ``v_variable`` exceeds ``limit``."""
        self.lines.append(
            f"fix halt all halt {every} v_{variable} > {limit:.17g} error soft message yes"
        )
        return self

    def dump(
        self,
        every: int,
        path: str,
        columns: Sequence[str] = ("id", "type", "x", "y", "z"),
        elements: Sequence[str] | None = None,
        digits: int = 10,
        name: str = "frames",
    ) -> Deck:
        """Per-atom ``columns`` every ``every`` steps to ``path`` (text), sorted by atom id;
        with ``elements``, the ``element`` column names each type."""
        self.lines.append(f"dump {name} all custom {every} {path} " + " ".join(columns))
        element = f" element {' '.join(elements)}" if elements else ""
        self.lines.append(f"dump_modify {name}{element} sort id format float %.{digits}g")
        return self

    def reset_timestep(self) -> Deck:
        self.lines.append("reset_timestep 0")
        return self

    def run(self, steps: int) -> Deck:
        self.lines.append(f"run {int(steps)}")
        return self
