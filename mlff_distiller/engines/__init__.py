"""Python side of the MD engines the students run in: OpenMM (TorchForce), LAMMPS (pair style)."""
