/* pair_style mlff: a student exported by mlff_distiller, run as a LAMMPS pair style.

   The student is strictly local (interaction range = cutoff), so each rank evaluates the
   energies of its own atoms from a full neighbour list that includes ghost atoms, and the
   forces that land on ghost atoms are sent back to their owners by LAMMPS (newton pair on).
   The decomposition is exact: the result does not depend on the number of ranks.

   With several model files the style is a committee: the first model drives the dynamics
   and, every out_freq steps, every model evaluates the same configuration and the spread of
   their forces is written to out_file (as DeePMD-kit's model deviation), for active
   learning inside LAMMPS. */

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
  int pack_reverse_comm(int n, int first, double *buf) override;
  void unpack_reverse_comm(int n, int *list, double *buf) override;

 private:
  // One exported student: the first drives the dynamics, the others only score.
  struct Member {
    torch::jit::Module module;
    torch::Dtype dtype = torch::kFloat32;
    std::string path;
    std::string dtype_name;
    double cutoff = 0.0;    // Å
    // local_energies_and_gradient (format 4 on): the module returns dE/d(edge vector) itself;
    // older files are differentiated here.
    bool with_gradient = false;
    // local_padded_energies_and_gradient (files exported since 2026-12-07): a rank of at
    // most padded_limit centres hands its edges over as W rows per centre.
    bool with_padded = false;
    int64_t padded_limit = 0;
    // The student writes its chain rule out (MomentStudent's gradient_written_out): its
    // gradient methods need no autograd and run under c10::InferenceMode.
    bool inference = false;
  };

  void allocate();
  Member load_model(const std::string &path, bool first);
  // The torch device named by the 'device' keyword ("cpu", "cuda", "cuda:N"); "cuda" is
  // the GPU of this rank's local rank (round robin over the node's GPUs).
  torch::Device resolve_device(const std::string &name);
  // Per-centre energies (eV) and dE/d(edge vector) (eV/Å, zero for edges beyond the
  // member's cutoff) of one member on this step's edges.
  void evaluate(Member &member, std::vector<double> &energies, std::vector<double> &gradient);
  // Whether a member takes this rank's n_centres as padded rows (few centres, a file that
  // has the method, the member's cutoff the neighbour list's).
  bool padded_form(const Member &member, int64_t n_centres) const;
  // Max, min and mean force deviation over all ranks' atoms into deviation_.
  void force_deviation(int64_t n_centres);

  std::vector<Member> members_;
  std::vector<std::string> elements_;    // model species order
  std::vector<int> type_species_;        // LAMMPS type (1-based) -> model species, -1 = NULL
  double cutoff_ = 0.0;                  // largest member cutoff in Å (the neighbour cutoff)
  double length_to_angstrom_ = 1.0;      // from LAMMPS' force->angstrom
  double ev_to_energy_ = 1.0;            // from LAMMPS' force->qe2f
  bool debug_ = false;
  bool any_mass_ = false;                // 'anymass': skip the type-mass check
  std::string device_name_ = "cpu";      // 'device': where every member runs
  torch::Device device_ = torch::kCPU;
  std::vector<int> atomic_numbers_;      // model species order
  bigint debug_calls_ = 0;

  void check_masses();

  // Committee output (rank 0 writes): every out_freq_ steps, to out_file_.
  bigint out_freq_ = 100;
  std::string out_file_ = "model_devi.out";
  FILE *out_ = nullptr;
  bigint last_written_ = -1;
  double deviation_[3] = {0.0, 0.0, 0.0};
  // Forces of every member on local and ghost atoms while a deviation is computed, in eV/Å:
  // [atom][member][3]; summed onto owners by reverse communication.
  std::vector<double> member_forces_;

  // Scratch buffers reused between steps.
  std::vector<double> vectors_, rsq_;
  std::vector<int64_t> centre_, neighbour_species_, centre_species_;
  std::vector<int> edge_j_, centre_atom_;
  // One centre's neighbours before they are emitted grouped by species (the separation is
  // kept from the cutoff test, not computed twice), and the per-species counts of that
  // grouping.
  struct Neighbour {
    int j, species;
    double dx, dy, dz, rsq;
  };
  std::vector<Neighbour> scratch_;
  // The padded form's rows: vectors (Å), neighbour species, and each edge's row.
  std::vector<double> padded_vectors_;
  std::vector<int64_t> padded_species_, edge_row_;
  std::vector<int64_t> species_start_;
};

}    // namespace LAMMPS_NS

#endif
#endif
