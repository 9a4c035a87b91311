/* pair_style mlff: a student exported by mlff_distiller, run as a LAMMPS pair style.

   The student is strictly local (interaction range = cutoff), so each rank evaluates the
   energies of its own atoms from a full neighbour list that includes ghost atoms, and the
   forces that land on ghost atoms are sent back to their owners by LAMMPS (newton pair on).
   The decomposition is exact: the result does not depend on the number of ranks. */

#ifdef PAIR_CLASS
// Registered by the plugin (mlff_plugin.cpp), not by a LAMMPS source tree.
#else

#ifndef MLFF_PAIR_MLFF_H
#define MLFF_PAIR_MLFF_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMLFF : public Pair {
 public:
  explicit PairMLFF(class LAMMPS *);
  ~PairMLFF() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int itype, int jtype) override;

 private:
  void allocate();
  void load_model(const std::string &path);

  torch::jit::Module model_;
  torch::Dtype dtype_ = torch::kFloat32;
  std::string model_path_;
  std::string dtype_name_;
  std::vector<std::string> elements_;    // model species order
  std::vector<int> type_species_;        // LAMMPS type (1-based) -> model species, -1 = NULL
  double cutoff_ = 0.0;                  // model cutoff in Å
  double length_to_angstrom_ = 1.0;      // from LAMMPS' force->angstrom
  double ev_to_energy_ = 1.0;            // from LAMMPS' force->qe2f
  bool debug_ = false;
  bool any_mass_ = false;                // 'anymass': skip the type-mass check
  std::vector<int> atomic_numbers_;      // model species order
  bigint debug_calls_ = 0;

  void check_masses();

  // Scratch buffers reused between steps.
  std::vector<double> vectors_;
  std::vector<int64_t> centre_, neighbour_species_, centre_species_;
  std::vector<int> edge_j_, centre_atom_;
};

}    // namespace LAMMPS_NS

#endif
#endif
