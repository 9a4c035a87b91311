"""The exported student: one TorchScript module that finds its own neighbours.

Inputs are what every engine has: positions (Å), atomic numbers, the cell (Å, rows are cell
vectors) and periodic flags. The energy is differentiable with respect to positions and
cell, so forces (−∂E/∂r) and stress (strain derivative) come from autograd wherever the
module runs (ASE, OpenMM's TorchForce, LAMMPS). Every tensor it makes lives on the device of
``positions``: move the module there (``torch.jit.load(path, map_location="cuda")``) and it
runs on that device (files of format version 4 on; earlier ones are CPU-only).

>>> module = torch.jit.load("model.pt")                                    # doctest: +SKIP
>>> energy = module(positions, numbers, cell, pbc)                         # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.graph import MIN_CELL_SPACING, MIN_DISTANCE, edge_forces, model_dtype
from ..models.segments import proxy_graph, row_sums


def _milli(value: float) -> str:
    """``value`` with three decimals (TorchScript has no format specifiers)."""
    thousandths = int(round(abs(value) * 1000.0))
    sign = "-" if value < 0 and thousandths > 0 else ""
    return sign + str(thousandths // 1000) + "." + str(1000 + thousandths % 1000)[1:]


def _edge_vectors(
    positions: torch.Tensor, cell: torch.Tensor, edges: torch.Tensor, shifts: torch.Tensor
) -> torch.Tensor:
    """``r_j − r_i + shifts @ cell`` of every edge, in the precision of ``positions``."""
    cell = cell.to(positions.dtype)
    return (
        positions.index_select(0, edges[1])
        - positions.index_select(0, edges[0])
        + shifts.to(cell.dtype) @ cell
    )


def _squared_lengths(vectors: torch.Tensor) -> torch.Tensor:
    """``|v|²`` of each row of ``vectors [E, 3]``."""
    return row_sums(vectors * vectors)


def _shortest(vectors: torch.Tensor) -> tuple[float, int]:
    """The smallest ``|v|²`` of the rows of ``vectors [E, 3]`` (E > 0) and its row."""
    r2 = _squared_lengths(vectors)
    k = int(torch.argmin(r2))
    return float(r2[k]), k


def script_error_message(error: Exception) -> str:
    """The message a TorchScript ``raise`` carried (its last line), without the trace the
    interpreter wraps it in; any other error's own text."""
    text = str(error)
    for line in reversed(text.strip().splitlines()):
        if line.startswith("builtins."):
            return line.split(": ", 1)[-1]
    return text


class ExportedStudent(nn.Module):
    """A trained :class:`~mlff_distiller.models.MomentStudent` plus its neighbour search."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        numbers = [int(z) for z in model.atomic_numbers.tolist()]
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(numbers):
            lookup[z] = index
        self.register_buffer("species_lookup", lookup)
        self.register_buffer("atomic_numbers", model.atomic_numbers.clone())
        # A scalar in the student's dtype: edge vectors are cast to it (and it follows any
        # later .to() of this module).
        self.register_buffer("model_dtype", torch.zeros((), dtype=model_dtype(model)))
        self.cutoff = float(model.cutoff)
        #: Above this many atoms the neighbour search uses a cell list (linear cost).
        self.brute_force_limit = 128
        #: Up to this many atoms, a structure with no periodic direction goes to the
        #: student as every ordered pair (``padded_energies_and_gradient``) in
        #: :meth:`compute`: no neighbour search or layout, which on a small molecule cost
        #: more than the student's arithmetic. 0 turns it off.
        self.all_pairs_limit = 32
        #: Closer pairs (Å) are an error, not an energy (see models.graph.MIN_DISTANCE).
        self.min_distance = float(MIN_DISTANCE)
        #: Thinner periodic cells (Å) are an error (see models.graph.MIN_CELL_SPACING).
        self.min_cell_spacing = float(MIN_CELL_SPACING)
        #: Verlet skin (Å) of the neighbour cache: pairs within cutoff + skin are kept and
        #: reused while no atom has moved more than skin / 2 since they were found and the
        #: cell and periodicity are the same; each call then only filters them by distance.
        #: 0 searches afresh every call.
        self.skin = 1.0
        self._cache_positions = torch.zeros(0, 3, dtype=torch.float64)
        self._cache_cell = torch.zeros(3, 3, dtype=torch.float64)
        self._cache_pbc = torch.zeros(3, dtype=torch.bool)
        self._cache_edges = torch.zeros(2, 0, dtype=torch.long)
        self._cache_shifts = torch.zeros(0, 3, dtype=torch.float64)

    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Model species index of every atom; an element the model does not know is an error."""
        # Out-of-range numbers look up entry 0 or 118: -1 like an unknown element (no teacher
        # here knows oganesson, Z = 118), so one check covers both; the message says which.
        species = self.species_lookup[numbers.clamp(0, 118)]
        if bool((species < 0).any()):
            inside = (numbers >= 1) & (numbers < 119)
            if not bool(inside.all()):
                raise ValueError("atomic numbers must lie between 1 and 118")
            unknown: list[int] = torch.unique(numbers[species < 0]).tolist()
            known: list[int] = self.atomic_numbers.tolist()
            raise ValueError(
                "atomic numbers "
                + str(unknown)
                + " are not in this model (it knows atomic numbers "
                + str(known)
                + ")"
            )
        return species

    @torch.jit.export
    def neighbours(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair (both directions) within the cutoff, over all periodic images.

        Returns ``edge_index [2, E]`` and integer ``shifts [E, 3]`` such that the edge vector
        is ``r_j − r_i + shifts @ cell``. Up to ``brute_force_limit`` atoms all pairs are
        tested against each needed image; above it a cell list keeps the cost linear in N.
        Any cell size works (cells shorter than twice the cutoff included). A fresh search
        on every call (:meth:`atomic_energies` goes through the cache of
        :meth:`cached_neighbours`).
        """
        return self.search(positions, cell, pbc, self.cutoff)

    @torch.jit.export
    def cached_neighbours(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        species: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`neighbours`, from the pairs within ``cutoff + skin`` found at an earlier
        call while they still hold every pair within the cutoff (no atom has moved more than
        ``skin / 2``, same atom count, cell, periodicity, device and precision); otherwise a
        fresh search with ``cutoff + skin`` refills the cache. Given the atoms' model
        ``species``, a refilled cache is ordered by centre and then neighbour species, the
        order in which the student lays edges out without sorting them again."""
        edge_index, shifts, _ = self._cached_edges(positions.detach(), cell, pbc, species)
        return edge_index, shifts

    def _cached_edges(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        species: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`cached_neighbours` and the edge vectors ``r_j − r_i + shifts @ cell`` (in
        the precision of ``positions``, differentiable with respect to them and the cell):
        each candidate's vector is formed once, and the kept ones are the result."""
        pos = positions.detach()
        if self.skin <= 0.0:
            edges, shifts = self.search(pos, cell, pbc, self.cutoff)
            return edges, shifts, _edge_vectors(positions, cell, edges, shifts)
        if not self._cache_holds(pos, cell.detach(), pbc):
            edges, shifts = self.search(pos, cell, pbc, self.cutoff + self.skin)
            if species is not None and edges.shape[1] > 0:
                key = edges[0] * self.atomic_numbers.shape[0] + species[edges[1]]
                order = torch.argsort(key, stable=True)
                edges = edges.index_select(1, order)
                shifts = shifts.index_select(0, order)
            self._cache_positions = pos.clone()
            self._cache_cell = cell.detach().to(pos.dtype).clone()
            self._cache_pbc = pbc.clone()
            self._cache_edges = edges
            self._cache_shifts = shifts
        edges = self._cache_edges
        shifts = self._cache_shifts
        vectors = _edge_vectors(positions, cell, edges, shifts)
        keep = (_squared_lengths(vectors.detach()) < self.cutoff * self.cutoff).nonzero().squeeze(1)
        return (
            edges.index_select(1, keep),
            shifts.index_select(0, keep),
            vectors.index_select(0, keep),
        )

    def _cache_holds(self, pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor) -> bool:
        cached = self._cache_positions
        if cached.shape[0] != pos.shape[0] or cached.device != pos.device:
            return False
        if cached.dtype != pos.dtype or self._cache_pbc.device != pbc.device:
            return False
        if not bool(torch.equal(self._cache_pbc, pbc)):
            return False
        if bool(pbc.any()) and not bool(torch.equal(self._cache_cell, cell.to(pos.dtype))):
            return False
        moved = _squared_lengths(pos - cached).max()
        return float(moved) < 0.25 * self.skin * self.skin

    def search(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, radius: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair within ``radius`` (see :meth:`neighbours`)."""
        dtype = positions.dtype
        device = positions.device
        pos = positions.detach()
        if bool(pbc.any()):
            cell_d = cell.detach()
            if float(torch.linalg.det(cell_d).abs()) < 1e-9:
                raise ValueError("a periodic structure needs a 3-dimensional cell")
            inverse = torch.linalg.inv(cell_d)
            # Wrap into the cell along periodic directions (wrap: whole cells moved).
            fractional = pos @ inverse
            wrap = torch.where(pbc, torch.floor(fractional), torch.zeros_like(fractional))
            pos = pos - wrap @ cell_d
            # Images needed per direction: cutoff over the spacing of lattice planes.
            spacing = 1.0 / torch.linalg.norm(inverse, dim=0)
            for k in range(3):
                if bool(pbc[k]) and float(spacing[k]) < self.min_cell_spacing:
                    raise ValueError(
                        "the periodic cell's lattice planes along cell vector "
                        + str(k)
                        + " are "
                        + _milli(float(spacing[k]))
                        + " Å apart (less than "
                        + _milli(self.min_cell_spacing)
                        + " Å): check that the cell is in Å"
                    )
            reps = torch.where(pbc, torch.ceil(radius / spacing), torch.zeros_like(spacing))
            r0, r1, r2 = int(reps[0]), int(reps[1]), int(reps[2])
            grid = torch.stack(
                torch.meshgrid(
                    torch.arange(-r0, r0 + 1, dtype=dtype, device=device),
                    torch.arange(-r1, r1 + 1, dtype=dtype, device=device),
                    torch.arange(-r2, r2 + 1, dtype=dtype, device=device),
                    indexing="ij",
                ),
                dim=-1,
            ).reshape(-1, 3)
            margin = torch.where(pbc, radius / spacing, torch.zeros_like(spacing))
        else:
            wrap = torch.zeros_like(pos)
            grid = torch.zeros(1, 3, dtype=dtype, device=device)
            cell_d = torch.zeros(3, 3, dtype=dtype, device=device)
            inverse = torch.zeros(3, 3, dtype=dtype, device=device)
            margin = torch.zeros(3, dtype=dtype, device=device)
        if pos.shape[0] <= self.brute_force_limit:
            i, j, shifts = self._all_pairs(pos, cell_d, grid, radius)
        else:
            i, j, shifts = self._cell_list(pos, cell_d, inverse, pbc, grid, margin, radius)
        # Back to the caller's unwrapped positions: r_j − r_i + (S − w_j + w_i) @ cell.
        shifts = shifts - wrap[j] + wrap[i]
        return torch.stack([i, j]), shifts

    def _all_pairs(
        self, pos: torch.Tensor, cell: torch.Tensor, grid: torch.Tensor, radius: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = pos.shape[0]
        cutoff2 = radius * radius
        centres: list[torch.Tensor] = []
        others: list[torch.Tensor] = []
        images: list[torch.Tensor] = []
        eye = torch.eye(n, dtype=torch.bool, device=pos.device)
        for k in range(grid.shape[0]):
            shift = grid[k]
            delta = pos.unsqueeze(0) + (shift @ cell) - pos.unsqueeze(1)  # [i, j, 3]
            close = (delta * delta).sum(dim=2) < cutoff2
            if bool((shift == 0).all()):
                close = close & ~eye
            pair = close.nonzero()
            centres.append(pair[:, 0])
            others.append(pair[:, 1])
            images.append(shift.expand(pair.shape[0], 3))
        return torch.cat(centres), torch.cat(others), torch.cat(images)

    def _cell_list(
        self,
        pos: torch.Tensor,
        cell: torch.Tensor,
        inverse: torch.Tensor,
        pbc: torch.Tensor,
        grid: torch.Tensor,
        margin: torch.Tensor,
        radius: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Linear-cost search: image atoms within the cutoff of the cell, Cartesian bins of
        the cutoff's size, and each atom's candidates from its 27 surrounding bins."""
        n = pos.shape[0]
        # Image copies ("ghosts") that can be within the cutoff of an atom in the cell.
        fractional = (pos @ inverse).unsqueeze(0) + grid.unsqueeze(1)  # [G, N, 3]
        keep = ((fractional >= -margin) & (fractional < 1.0 + margin)) | ~pbc
        keep = keep.all(dim=2)
        image, atom = keep.nonzero().unbind(1)
        ghost_shift = grid[image]
        ghost_pos = pos[atom] + ghost_shift @ cell
        home = (ghost_shift == 0).all(dim=1)
        home_ghost = torch.zeros(n, dtype=torch.long, device=pos.device)
        home_ghost[atom[home]] = home.nonzero().squeeze(1)

        lower = ghost_pos.min(dim=0).values
        bins = torch.floor((ghost_pos - lower) / radius).long()
        dims = bins.max(dim=0).values + 1
        key = (bins[:, 0] * dims[1] + bins[:, 1]) * dims[2] + bins[:, 2]
        order = torch.argsort(key)
        counts = torch.bincount(key, minlength=int(dims.prod()))
        starts = torch.cumsum(counts, 0) - counts

        step = torch.arange(-1, 2, device=pos.device)
        offsets = torch.stack(torch.meshgrid(step, step, step, indexing="ij"), dim=-1).reshape(
            27, 3
        )
        around = bins[home_ghost].unsqueeze(1) + offsets.unsqueeze(0)  # [N, 27, 3]
        inside = ((around >= 0) & (around < dims)).all(dim=2)
        around = torch.where(inside.unsqueeze(2), around, torch.zeros_like(around))
        around_key = (around[:, :, 0] * dims[1] + around[:, :, 1]) * dims[2] + around[:, :, 2]
        count = torch.where(inside, counts[around_key], torch.zeros_like(around_key))
        slot = torch.arange(int(count.max()), device=pos.device)
        candidate = starts[around_key].unsqueeze(2) + slot  # [N, 27, M]
        valid = slot < count.unsqueeze(2)
        ghost = order[torch.where(valid, candidate, torch.zeros_like(candidate))]
        delta = ghost_pos[ghost] - pos.unsqueeze(1).unsqueeze(1)
        close = valid & ((delta * delta).sum(dim=3) < radius * radius)
        close = close & (ghost != home_ghost.view(-1, 1, 1))
        found = close.nonzero()
        i = found[:, 0]
        g = ghost[found[:, 0], found[:, 1], found[:, 2]]
        return i, atom[g], ghost_shift[g]

    @torch.jit.export
    def atomic_energies(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> torch.Tensor:
        """Per-atom energies (eV), differentiable with respect to positions and cell.

        Edge vectors are formed in the precision of ``positions`` and only then cast to the
        student's dtype: pass float64 positions (as every engine here does) and a float32
        student loses nothing to the size of the coordinates (a molecule 10⁶ Å from the
        origin gets the same forces as at the origin). The energies come back in the
        precision of ``positions``.
        """
        species, edge_index, vectors = self._edges(positions, numbers, cell, pbc)
        energies = self.model(vectors.to(self.model_dtype.dtype), edge_index, species)
        self._check_energies(energies.detach())
        return energies.to(positions.dtype)

    def _edges(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Species, ``edge_index`` and edge vectors (in the precision of ``positions``, and
        differentiable with respect to positions and cell) of a checked structure."""
        species = self._checked_species(positions, numbers, cell, pbc)
        edge_index, vectors = self._neighbour_edges(positions, species, cell, pbc)
        self._check_distance(self._closest(vectors.detach(), edge_index))
        return species, edge_index, vectors

    def _neighbour_edges(
        self, positions: torch.Tensor, species: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``edge_index`` and edge vectors of :meth:`_edges`, unchecked."""
        cell = cell.to(positions.device)
        pbc = pbc.to(positions.device)
        edge_index, _, vectors = self._cached_edges(positions, cell, pbc, species)
        return edge_index, vectors

    def _checked_species(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> torch.Tensor:
        """The atoms' model species, once the positions (and a periodic cell) are finite
        and the model is on the positions' device."""
        if positions.shape[0] == 0:
            raise ValueError("no atoms")
        device = positions.device
        if self.species_lookup.device != device:
            raise ValueError(
                "the positions are on "
                + str(device)
                + " but the model is on "
                + str(self.species_lookup.device)
                + ": load it with torch.jit.load(path, map_location=...) on the positions' device"
            )
        species = self.species(numbers.to(device))
        self.check_finite(positions, cell, pbc.to(device))
        return species

    def _pair_vectors(self, positions: torch.Tensor) -> tuple[torch.Tensor, tuple[float, int, int]]:
        """``r_j − r_i`` of every ordered pair of atoms (row ``i N + j``, ``[N * N, 3]``, in
        the precision of ``positions``), the rows ``i = j`` replaced by a vector twice the
        cutoff long (exactly nothing to the student), and the closest pair
        (:meth:`_closest`)."""
        n_atoms = positions.shape[0]
        vectors = (positions.unsqueeze(0) - positions.unsqueeze(1)).reshape(n_atoms * n_atoms, 3)
        vectors[:: n_atoms + 1, 0] = 2.0 * self.cutoff
        r2, k = _shortest(vectors)
        return vectors, (r2, k // n_atoms, k % n_atoms)

    def _check_energies(self, energies: torch.Tensor) -> None:
        finite = torch.isfinite(energies)
        if not bool(finite.all()):
            atom = int((~finite).nonzero()[0, 0])
            raise ValueError(
                "the student returned a non-finite energy for atom " + str(atom) + "; "
                "its inputs were finite, so the exported file is broken: export it again"
            )

    def check_finite(self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor) -> None:
        """NaN or infinite positions (and periodic cells) are errors naming the first atom."""
        finite = torch.isfinite(positions.detach()).all(dim=1)
        if not bool(finite.all()):
            atom = int((~finite).nonzero()[0, 0])
            raise ValueError(
                "atom " + str(atom) + " has a non-finite position (NaN or inf); "
                "the structure is broken or the simulation blew up"
            )
        if bool(pbc.any()) and not bool(torch.isfinite(cell.detach()).all()):
            raise ValueError("the periodic cell has non-finite entries (NaN or inf)")

    def check_distances(self, vectors: torch.Tensor, edge_index: torch.Tensor) -> None:
        """Two atoms (or an atom and its own image) closer than ``min_distance`` are an
        error naming both: at zero distance a force has no direction."""
        self._check_distance(self._closest(vectors, edge_index))

    def _closest(self, vectors: torch.Tensor, edge_index: torch.Tensor) -> tuple[float, int, int]:
        """The squared length of the shortest edge and its two atoms (``inf`` and ``-1``
        where there is no edge)."""
        if vectors.shape[0] == 0:
            return float("inf"), -1, -1
        r2, k = _shortest(vectors)
        return r2, int(edge_index[0, k]), int(edge_index[1, k])

    def _check_distance(self, closest: tuple[float, int, int]) -> None:
        """The closest pair (``r²`` in Å², atoms ``i`` and ``j``, :meth:`_closest`) closer
        than ``min_distance``: an error naming both (one call site per method: with a raise
        inlined at two places, torch 2.9.1 crashed while reporting it in a frozen module
        and through OpenMM's TorchForce)."""
        r2, i, j = closest
        if r2 < self.min_distance * self.min_distance:
            pair = "atoms " + str(i) + " and " + str(j)
            if i == j:
                pair = "atom " + str(i) + " and its own periodic image"
            raise ValueError(
                pair
                + " are "
                + _milli(r2**0.5)
                + " Å apart, closer than "
                + _milli(self.min_distance)
                + " Å: remove the duplicated atom (or enlarge the "
                "cell) and check that positions are in Å"
            )

    def forward(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> torch.Tensor:
        """Total energy (eV) of one structure: positions ``[N, 3]`` in Å, atomic numbers
        ``[N]``, cell ``[3, 3]`` in Å (rows are cell vectors; ignored where ``pbc`` is false)
        and ``pbc [3]`` booleans."""
        return self.atomic_energies(positions, numbers, cell, pbc).sum()

    @torch.jit.export
    def compute(
        self,
        positions: torch.Tensor,
        numbers: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        compute_virial: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Everything an engine needs from one call: ``energy`` (eV, 0-dim), per-atom
        ``energies`` ``[N]``, ``forces`` ``[N, 3]`` (−∂E/∂r, eV/Å) and, with
        ``compute_virial``, ``virial`` ``[3, 3]`` (∂E/∂ε under a homogeneous strain ε of
        positions and cell, eV; the stress is ``virial / volume``). All of them come from
        the student's gradient with respect to its edge vectors
        (``energies_and_gradient``; the weights are frozen), summed in the precision of
        ``positions``; nothing is left attached to an autograd graph."""
        dtype = positions.dtype
        positions = positions.detach()
        cell = cell.detach().to(device=positions.device, dtype=dtype)
        n_atoms = positions.shape[0]
        # Each check is called once here, outside the branches (see _check_distance).
        species = self._checked_species(positions, numbers, cell, pbc)
        all_pairs = n_atoms <= self.all_pairs_limit and not bool(pbc.any())
        if all_pairs:
            # A small molecule: every ordered pair at once, no neighbour search.
            vectors, closest = self._pair_vectors(positions)
            edge_index = species[:0].view(2, 0)
        else:
            edge_index, vectors = self._neighbour_edges(positions, species, cell, pbc)
            closest = self._closest(vectors, edge_index)
        self._check_distance(closest)
        if all_pairs:
            energies, gradient = self.model.padded_energies_and_gradient(
                vectors.to(self.model_dtype.dtype), species
            )
        else:
            energies, gradient = self.model.energies_and_gradient(
                vectors.to(self.model_dtype.dtype), edge_index, species
            )
        self._check_energies(energies)
        energies = energies.to(dtype)
        gradient = gradient.to(dtype)
        if all_pairs:
            # Row i N + j is r_j − r_i: its gradient pulls on atom i and pushes atom j.
            pairs = gradient.view(n_atoms, n_atoms, 3)
            forces = pairs.sum(dim=1) - pairs.sum(dim=0)
        else:
            forces = edge_forces(gradient, edge_index, positions)
        out = {"energy": energies.sum(), "energies": energies, "forces": forces}
        if compute_virial:
            # Under a strain ε every edge vector becomes v (1 + ε): ∂E/∂ε = Σ_e v_eᵀ g_e.
            out["virial"] = vectors.t() @ gradient
        return out

    @torch.jit.export
    def local_energies_and_gradient(
        self,
        vectors: torch.Tensor,
        centre: torch.Tensor,
        centre_species: torch.Tensor,
        neighbour_species: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`local_energies` and their sum's gradient with respect to every edge vector
        (``[E, 3]``, eV/Å; LAMMPS turns it into forces on both atoms of each edge and into
        the per-atom virial)."""
        n_centres = centre_species.shape[0]
        species, edge_index = proxy_graph(
            centre, centre_species, neighbour_species, self.atomic_numbers.shape[0]
        )
        energies, gradient = self.model.energies_and_gradient(vectors.detach(), edge_index, species)
        return energies[:n_centres], gradient

    @torch.jit.export
    def local_padded_energies_and_gradient(
        self, vectors: torch.Tensor, centre_species: torch.Tensor, neighbour_species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`local_energies_and_gradient` of edges handed over as ``W`` rows per
        centre: row ``c W + k`` of ``vectors [C * W, 3]`` is an edge of centre ``c`` (``r_j −
        r_i``, Å) to a neighbour of species ``neighbour_species[c W + k]``, or padding, a
        vector at least the cutoff long that adds exactly nothing. The energies ``[C]`` and
        the gradient ``[C * W, 3]`` in the same rows. LAMMPS uses it for ranks of at most
        :attr:`all_pairs_limit` atoms, where it skips the layout that the edge form builds."""
        return self.model.padded_energies_and_gradient(
            vectors.detach(), centre_species, neighbour_species
        )

    @torch.jit.export
    def local_energies(
        self,
        vectors: torch.Tensor,
        centre: torch.Tensor,
        centre_species: torch.Tensor,
        neighbour_species: torch.Tensor,
    ) -> torch.Tensor:
        """Energies (eV) of the centre atoms of a neighbour list an engine built (LAMMPS).

        ``vectors [E, 3]`` are ``r_j − r_i`` in Å, ``centre [E]`` indexes ``centre_species
        [C]`` (model species of the atoms whose energy is wanted, e.g. a rank's local atoms)
        and ``neighbour_species [E]`` is the species of each edge's neighbour. The student
        is strictly local: an atom's energy depends on its own edges and on its neighbours'
        species only, so neighbours (ghost atoms, periodic images) need no node of their own.
        Each edge points at one proxy node per species instead; the result has ``C`` entries.
        """
        n_centres = centre_species.shape[0]
        species, edge_index = proxy_graph(
            centre, centre_species, neighbour_species, self.atomic_numbers.shape[0]
        )
        return self.model(vectors, edge_index, species)[:n_centres]
