/* pair_style mlff: see pair_mlff.h and engines/lammps/README.md.

   Usage:
     pair_style mlff model.pt [device cpu|cuda|cuda:N] [debug] [anymass]
                                 (device cuda: each MPI rank takes the GPU of its local
                                  rank, round robin; cuda:N pins GPU N)
     pair_style mlff m1.pt m2.pt m3.pt [out_freq N] [out_file FILE]   (a committee: m1
                                  drives; every N steps (default 100) the force deviation of
                                  the committee is written to FILE (default model_devi.out,
                                  created afresh by pair_style))
     pair_coeff * * O H          (one element symbol per atom type, NULL for types left to
                                  another style under pair_style hybrid/overlay)

   The model file is a TorchScript archive written by `mlff-distill export`; its metadata
   (elements, cutoff, dtype, versions) is read from the archive before anything runs. */

#include "pair_mlff.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

using namespace LAMMPS_NS;

namespace {

// What this plugin reads: the archive entry, format and version written by
// mlff_distiller.export (METADATA_FILE, "format", FORMAT_VERSION).
const char *const METADATA_FILE = "mlff_metadata.json";
const char *const FORMAT_NAME = "mlff_distiller.exported";
const int FORMAT_VERSION = 4;

// Two atoms closer than this (Å) are an error naming both, never an energy (the same
// minimum as mlff_distiller.models.graph.MIN_DISTANCE).
const double MIN_DISTANCE_ANGSTROM = 0.1;

// Standard atomic weights (g/mol) of elements 1-86, to compare with each type's mass.
const double ATOMIC_MASS[87] = {
    0.0,
    1.008, 4.003, 6.940, 9.012, 10.810, 12.011, 14.007, 15.999, 18.998, 20.180, 22.990, 24.305,
    26.982, 28.085, 30.974, 32.060, 35.450, 39.948, 39.098, 40.078, 44.956, 47.867, 50.941, 51.996,
    54.938, 55.845, 58.933, 58.693, 63.546, 65.380, 69.723, 72.630, 74.922, 78.971, 79.904, 83.798,
    85.468, 87.620, 88.906, 91.224, 92.906, 95.950, 97.907, 101.070, 102.906, 106.420, 107.868,
    112.414, 114.818, 118.710, 121.760, 127.600, 126.904, 131.293, 132.905, 137.327, 138.905,
    140.116, 140.908, 144.242, 144.913, 150.360, 151.964, 157.250, 158.925, 162.500, 164.930,
    167.259, 168.934, 173.054, 174.967, 178.490, 180.948, 183.840, 186.207, 190.230, 192.217,
    195.084, 196.967, 200.592, 204.380, 207.200, 208.980, 208.982, 209.987, 222.018};

const char *const USAGE =
    "usage: pair_style mlff <model.pt> [more model files: a committee] [device cpu|cuda|cuda:N] "
    "[out_freq N] [out_file FILE] [malloc keep|system] [debug] [anymass]";
const char *const COEFF_USAGE =
    "usage: pair_coeff * * <element per atom type, or NULL> (e.g. pair_coeff * * O H)";

// "2.9.1+cu128" -> {2, 9}; {-1, -1} if it cannot be read.
std::pair<int, int> major_minor(const std::string &version)
{
  int major = -1, minor = -1;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return {-1, -1};
  return {major, minor};
}

}    // namespace

PairMLFF::PairMLFF(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // The virial is tallied edge by edge in compute(), per atom as well as globally.
  no_virial_fdotr_compute = 1;
}

PairMLFF::~PairMLFF()
{
  if (out_) fclose(out_);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMLFF::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 1; i <= n; i++)
    for (int j = i; j <= n; j++) setflag[i][j] = 0;
}

void PairMLFF::settings(int narg, char **arg)
{
  // Model files first, then keywords.
  std::vector<std::string> paths;
  int k = 0;
  const auto keyword = [](const char *a) {
    return strcmp(a, "debug") == 0 || strcmp(a, "anymass") == 0 || strcmp(a, "out_freq") == 0 ||
        strcmp(a, "out_file") == 0 || strcmp(a, "device") == 0 || strcmp(a, "malloc") == 0;
  };
  // After the first, a word is another model only if it names a file or ends in ".pt", so
  // that a misspelt keyword is reported as one.
  const auto model_file = [](const std::string &a) {
    return platform::file_is_readable(a) ||
        (a.size() > 3 && a.compare(a.size() - 3, 3, ".pt") == 0);
  };
  for (; k < narg && !keyword(arg[k]) && (k == 0 || model_file(arg[k])); k++)
    paths.emplace_back(arg[k]);
  if (paths.empty()) error->all(FLERR, "pair_style mlff: no model file; {}", USAGE);
  bool committee_keyword = false;
  bool keep_freed_memory = true;
  device_name_ = "cpu";
  for (; k < narg; k++) {
    if (strcmp(arg[k], "debug") == 0)
      debug_ = true;
    else if (strcmp(arg[k], "malloc") == 0) {
      if (k + 1 >= narg || (strcmp(arg[k + 1], "keep") != 0 && strcmp(arg[k + 1], "system") != 0))
        error->all(FLERR, "pair_style mlff: malloc takes keep or system; {}", USAGE);
      keep_freed_memory = strcmp(arg[++k], "keep") == 0;
    }
    else if (strcmp(arg[k], "device") == 0) {
      if (k + 1 >= narg) error->all(FLERR, "pair_style mlff: device needs a value; {}", USAGE);
      device_name_ = arg[++k];
    }
    else if (strcmp(arg[k], "anymass") == 0)
      any_mass_ = true;
    else if (strcmp(arg[k], "out_freq") == 0 || strcmp(arg[k], "out_file") == 0) {
      if (k + 1 >= narg) error->all(FLERR, "pair_style mlff: {} needs a value; {}", arg[k], USAGE);
      if (strcmp(arg[k], "out_freq") == 0) {
        out_freq_ = utils::bnumeric(FLERR, arg[k + 1], false, lmp);
        if (out_freq_ < 1)
          error->all(FLERR, "pair_style mlff: out_freq must be at least 1, got {}", arg[k + 1]);
      } else {
        out_file_ = arg[k + 1];
      }
      committee_keyword = true;
      k++;
    } else {
      error->all(FLERR, "pair_style mlff: unknown keyword '{}'; {}", arg[k], USAGE);
    }
  }
  if (committee_keyword && paths.size() < 2)
    error->all(FLERR,
               "pair_style mlff: out_freq and out_file write a committee's force deviation; "
               "give two or more model files (the first drives the dynamics)");

  // The allocator is process-wide (glibc's mallopt), so this is a choice for the whole
  // process, which is why it is a keyword: 'malloc keep' (the default) or 'malloc system'.
  // Every step allocates and frees the same large tensors. With glibc's defaults, blocks
  // above the mmap threshold are mapped and unmapped each time and the heap top is trimmed,
  // so each step pays for fresh page faults (measured: 45 % of a 768-atom step). Keeping
  // freed memory in the process (32 MiB threshold, glibc's maximum; no trimming) makes
  // steps up to ~1.8x faster at the cost of holding on to the peak allocation. 'system'
  // sets glibc's starting thresholds (128 KiB) again, for processes that must give memory
  // back; glibc's own upward adjustment of the mmap threshold stays off once it is set.
  if (keep_freed_memory) {
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  } else {
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  }

  const std::string units = update->unit_style;
  if (units != "metal" && units != "real")
    error->all(FLERR,
               "pair_style mlff supports units metal and real only, not '{}'; put 'units metal' "
               "(Å, eV) or 'units real' (Å, kcal/mol) before the box is defined",
               units);
  // LAMMPS' own factors: force->angstrom is one Å in the length unit, force->qe2f turns
  // e·V (that is, eV) into the energy unit. metal: 1 and 1; real: 1 and 23.060549.
  length_to_angstrom_ = 1.0 / force->angstrom;
  ev_to_energy_ = force->qe2f;

  device_ = resolve_device(device_name_);
  members_.clear();
  cutoff_ = 0.0;
  for (size_t m = 0; m < paths.size(); m++) {
    members_.push_back(load_model(paths[m], m == 0));
    cutoff_ = std::max(cutoff_, members_.back().cutoff);
  }
  // A committee's reverse communication carries every member's force on each ghost atom.
  comm_reverse = members_.size() > 1 ? 3 * static_cast<int>(members_.size()) : 0;
  if (out_) fclose(out_), out_ = nullptr;
  last_written_ = -1;
  if (members_.size() > 1 && comm->me == 0) {
    out_ = fopen(out_file_.c_str(), "w");
    if (!out_)
      error->one(FLERR, "pair_style mlff: cannot write out_file '{}': {}", out_file_,
                 utils::getsyserror());
    fmt::print(out_, "# pair_style mlff committee of {} models (the first drives):", paths.size());
    for (const auto &path : paths) fmt::print(out_, " {}", path);
    fmt::print(out_,
               "\n# every {} steps; per atom, deviation = sqrt(mean over models of |F - mean F|^2)"
               "; energy deviation = std over models of the total energy / atoms\n"
               "# {:>10} {:>18} {:>18} {:>18} {:>18}\n",
               out_freq_, "step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e");
    fmt::print(out_, "# {:>10} {:>18} {:>18} {:>18} {:>18}\n", "", "eV/Angstrom",
               "eV/Angstrom", "eV/Angstrom", "eV/atom");
    fflush(out_);
  }
}

torch::Device PairMLFF::resolve_device(const std::string &name)
{
  if (name == "cpu") return torch::kCPU;
  const bool cuda = name == "cuda" || name.rfind("cuda:", 0) == 0;
  if (!cuda)
    error->all(FLERR, "pair_style mlff: device '{}' is not cpu, cuda or cuda:N; {}", name, USAGE);
  int index = -1;
  if (name.size() > 5) {
    char *end = nullptr;
    const long value = std::strtol(name.c_str() + 5, &end, 10);
    if (*end != '\0' || value < 0)
      error->all(FLERR, "pair_style mlff: device '{}': the GPU index must be a number >= 0",
                 name);
    index = static_cast<int>(value);
  }
  // The plugin links libtorch_cpu only, so that CPU runs never load the CUDA libraries.
  // libtorch_cuda registers torch's CUDA backend when it is loaded: load it now.
  const std::string library = std::string(MLFF_TORCH_LIB_DIR) + "/libtorch_cuda.so";
  if (!platform::file_is_readable(library))
    error->all(FLERR,
               "pair_style mlff: device {} needs a CUDA build of torch, but the libtorch {} this "
               "plugin was built against has no {}; install one and run `mlff-distill lammps "
               "build` again, or use device cpu",
               name, TORCH_VERSION, library);
  if (!dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char *why = dlerror();
    error->all(FLERR, "pair_style mlff: device {}: cannot load {} ({}); use device cpu", name,
               library, why ? why : "unknown error");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (count == 0)
    error->all(FLERR,
               "pair_style mlff: device {} asked for, but torch finds no CUDA GPU on this node "
               "(no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them); use device cpu",
               name);
  if (index >= count)
    error->all(FLERR, "pair_style mlff: device {} asked for, but this node has {} GPU(s)", name,
               count);
  if (index < 0) {
    // One GPU per MPI rank: this rank's index among the ranks of its node, round robin.
    MPI_Comm node;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
    int local_rank = 0;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_free(&node);
    index = local_rank % count;
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

PairMLFF::Member PairMLFF::load_model(const std::string &path, bool first)
{
  Member member;
  member.path = path;
  torch::jit::Module &model = member.module;
  if (!platform::file_is_readable(path))
    error->all(FLERR,
               "pair_style mlff: model file '{}' does not exist or cannot be read; export one "
               "with `mlff-distill export CHECKPOINT model.pt`, then {}",
               path, USAGE);

  torch::jit::ExtraFilesMap extra{{METADATA_FILE, ""}};
  try {
    model = torch::jit::load(path, device_, extra);
  } catch (const std::exception &err) {
    std::string what = err.what();
    what = what.substr(0, what.find('\n'));
    error->all(FLERR,
               "pair_style mlff: '{}' is not a TorchScript file ({}); pass the file written "
               "by `mlff-distill export`",
               path, what);
  }
  // The weights are constants here: without this, files written before export froze them
  // make every step's autograd record the weights' graph as well.
  for (const auto &parameter : model.parameters()) parameter.requires_grad_(false);
  const std::string text = extra[METADATA_FILE];
  if (text.empty())
    error->all(FLERR,
               "pair_style mlff: '{}' is TorchScript but has no {} entry, so it was not written "
               "by mlff_distiller; export it with `mlff-distill export`",
               path, METADATA_FILE);

  json meta;
  try {
    meta = json::parse(text);
  } catch (const std::exception &err) {
    std::string what = err.what();
    error->all(FLERR, "pair_style mlff: the metadata in '{}' is not valid JSON ({}); re-export it",
               path, what);
  }
  if (meta.value("format", std::string()) != FORMAT_NAME)
    error->all(FLERR, "pair_style mlff: '{}' is not an mlff_distiller export; re-export it", path);
  const int format_version = meta.value("format_version", -1);
  // Versions 2 to 4 changed only atomic_energies (what the Python engines call);
  // local_energies (what this plugin calls) is the same, and device-independent, in all.
  if (format_version < 1 || format_version > FORMAT_VERSION)
    error->all(FLERR,
               "pair_style mlff: '{}' has export format version {}, this plugin reads versions "
               "1 to {}; rebuild the plugin with `mlff-distill lammps build` from the same "
               "mlff_distiller that exported the model",
               path, format_version, FORMAT_VERSION);

  // The plugin is compiled against one libtorch; a model exported by a newer torch may use
  // operators this libtorch lacks, and a plugin left behind by a torch upgrade must be rebuilt.
  const std::string model_torch = meta["versions"].value("torch", std::string("unknown"));
  const std::string plugin_torch = TORCH_VERSION;
  const auto model_mm = major_minor(model_torch);
  const auto plugin_mm = major_minor(plugin_torch);
  if (model_mm.first < 0 || model_mm > plugin_mm)
    error->all(FLERR,
               "pair_style mlff: '{}' was exported with torch {} but this plugin is built "
               "against libtorch {}; export with torch <= {} or rebuild the plugin in the "
               "environment that exported it (`mlff-distill lammps build`)",
               path, model_torch, plugin_torch, plugin_torch);

  const double interaction_range = meta.value("interaction_range", -1.0);
  const double cutoff = meta.value("cutoff", -1.0);
  if (!(cutoff > 0.0))
    error->all(FLERR, "pair_style mlff: '{}' declares no positive cutoff; re-export it", path);
  if (interaction_range > cutoff * (1.0 + 1e-12))
    error->all(FLERR,
               "pair_style mlff: '{}' has interaction range {} Å beyond its cutoff {} Å (a "
               "message-passing model); this pair style runs strictly local models only",
               path, interaction_range, cutoff);
  member.cutoff = cutoff;

  const auto member_elements = meta["elements"].get<std::vector<std::string>>();
  if (first) {
    elements_ = member_elements;
    atomic_numbers_ = meta["atomic_numbers"].get<std::vector<int>>();
  } else if (member_elements != elements_) {
    std::string mine, theirs;
    for (const auto &e : member_elements) mine += " " + e;
    for (const auto &e : elements_) theirs += " " + e;
    error->all(FLERR,
               "pair_style mlff: committee member '{}' knows the elements{}, the first model "
               "knows{}; every member must know the same elements in the same order (students "
               "distilled from one dataset do)",
               path, mine, theirs);
  }
  member.dtype_name = meta.value("dtype", std::string("float32"));
  if (member.dtype_name == "float64")
    member.dtype = torch::kFloat64;
  else if (member.dtype_name == "float32")
    member.dtype = torch::kFloat32;
  else
    error->all(FLERR, "pair_style mlff: '{}' has dtype '{}'; expected float32 or float64", path,
               member.dtype_name);
  member.with_gradient = model.find_method("local_energies_and_gradient").has_value();
  member.with_padded = model.find_method("local_padded_energies_and_gradient").has_value() &&
      model.hasattr("all_pairs_limit");
  if (member.with_padded) member.padded_limit = model.attr("all_pairs_limit").toInt();
  if (!model.find_method("local_energies"))
    error->all(FLERR,
               "pair_style mlff: '{}' has no local_energies method; re-export it with this "
               "mlff_distiller",
               path);

  if (model.hasattr("model")) {
    const torch::jit::Module student = model.attr("model").toModule();
    member.inference = member.with_gradient && student.hasattr("gradient_written_out") &&
        student.attr("gradient_written_out").toBool();
  }

  model.eval();
  // Frozen: the weights and buffers become constants of the two methods LAMMPS calls, so a
  // step reads no attributes and runs fewer operators (about 0.1 ms of a 9-atom step). Safe
  // here because neither method raises: a frozen TorchScript graph crashed torch 2.9.1
  // while reporting some raises (the Python calculator does not freeze for that reason).
  // optimize_numerics off: the same operations in the same order as unfrozen.
  std::vector<std::string> methods{"local_energies"};
  if (member.with_gradient) methods.push_back("local_energies_and_gradient");
  if (member.with_padded) methods.push_back("local_padded_energies_and_gradient");
  model = torch::jit::freeze(model, methods, false);
  // One thread per MPI rank unless the user asks for more (OMP_NUM_THREADS, package omp).
  at::set_num_threads(std::max(1, comm->nthreads));

  if (comm->me == 0) {
    std::string elements;
    for (const auto &e : elements_) elements += " " + e;
    const std::string preset = meta.value("preset", std::string("unknown"));
    const long long parameters = meta.value("parameters", 0LL);
    std::string teacher = "unknown";
    if (meta.contains("teacher") && meta["teacher"].is_object())
      teacher = meta["teacher"].value("name", std::string("unknown"));
    const std::string exported = meta.value("exported", std::string("unknown"));
    const int threads = at::get_num_threads();
    utils::logmesg(lmp,
                   "pair_style mlff: {}{}\n"
                   "  elements:{}\n"
                   "  cutoff {} Å, interaction range {} Å, dtype {}, preset {}, {} parameters\n"
                   "  teacher {}, exported {} with torch {} (plugin libtorch {}), {} torch "
                   "thread(s) per rank, device {} on rank 0\n",
                   path, first ? "" : " (committee member: scores only)", elements, cutoff,
                   interaction_range, member.dtype_name, preset, parameters, teacher, exported,
                   model_torch, plugin_torch, threads, device_.str());
  }
  return member;
}

void PairMLFF::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR,
               "pair_coeff for mlff needs '* *' and {} element symbol(s), one per atom type, "
               "got {} symbol(s); {}",
               ntypes, narg - 2, COEFF_USAGE);
  // one_coeff = 1: LAMMPS itself insists on "pair_coeff * *".

  std::string known;
  for (const auto &e : elements_) known += " " + e;
  type_species_.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string symbol = arg[1 + t];
    if (symbol == "NULL") continue;
    const auto found = std::find(elements_.begin(), elements_.end(), symbol);
    if (found == elements_.end())
      error->all(FLERR,
                 "pair_coeff for mlff: element '{}' (atom type {}) is not in the model, which "
                 "knows{}; use one of those or NULL; {}",
                 symbol, t, known, COEFF_USAGE);
    type_species_[t] = static_cast<int>(found - elements_.begin());
  }

  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      setflag[i][j] = (type_species_[i] >= 0 && type_species_[j] >= 0) ? 1 : 0;
      count += setflag[i][j];
    }
  if (count == 0) error->all(FLERR, "pair_coeff for mlff maps no atom type to an element");

  if (comm->me == 0) {
    std::string table = "pair_style mlff: atom type -> element\n";
    for (int t = 1; t <= ntypes; t++)
      table += fmt::format("  {:>4} -> {}\n", t,
                           type_species_[t] >= 0 ? elements_[type_species_[t]] : "NULL");
    utils::logmesg(lmp, table);
  }
}

void PairMLFF::init_style()
{
  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style mlff requires newton pair on (forces on ghost atoms are sent back to "
               "their owners); remove 'newton off' or use 'newton on'");
  if (elements_.empty()) error->all(FLERR, "pair_style mlff: no model loaded; {}", USAGE);
  // A special_bonds weight of 0 (for lj and coul both) removes bonded pairs from every
  // neighbour list: the model would silently miss its strongest interactions. Weights
  // between 0 and 1 keep the pairs (flagged), and the model takes them at full weight.
  if (atom->molecular != Atom::ATOMIC && atom->nbonds > 0) {
    const char *which[4] = {"", "1-2", "1-3", "1-4"};
    for (int k = 1; k <= 3; k++)
      if (force->special_lj[k] == 0.0 && force->special_coul[k] == 0.0)
        error->all(FLERR,
                   "pair_style mlff: special_bonds leaves out {} pairs (weight 0), so the model "
                   "would not see bonded neighbours; use 'special_bonds lj/coul 1.0 1.0 1.0' "
                   "(the student models bonded interactions itself)",
                   which[k]);
  }
  check_masses();
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

// A type whose mass is another model element's (type order swapped in pair_coeff or the
// data file) is an error unless 'anymass' is given; other differences (isotopes, heavy
// hydrogen) are a warning. Per-atom masses (rmass) are not checked.
void PairMLFF::check_masses()
{
  if (any_mass_ || atom->rmass_flag || atom->mass == nullptr) return;
  for (int t = 1; t <= atom->ntypes; t++) {
    const int s = type_species_[t];
    if (s < 0 || !atom->mass_setflag[t]) continue;
    const int z = atomic_numbers_[s];
    if (z < 1 || z > 86) continue;
    const double mass = atom->mass[t], expected = ATOMIC_MASS[z];
    int closest = s;
    double closest_gap = std::fabs(mass - expected);
    for (int k = 0; k < static_cast<int>(atomic_numbers_.size()); k++) {
      const int zk = atomic_numbers_[k];
      if (zk < 1 || zk > 86) continue;
      const double gap = std::fabs(mass - ATOMIC_MASS[zk]);
      if (gap < closest_gap) closest = k, closest_gap = gap;
    }
    if (closest != s && std::fabs(mass - expected) > 0.5)
      error->all(FLERR,
                 "pair_coeff for mlff maps atom type {} (mass {}) to {} (mass {:.3f}), but the "
                 "mass is {}'s: check the order of the elements in pair_coeff; add 'anymass' "
                 "to pair_style if the masses are meant",
                 t, mass, elements_[s], expected, elements_[closest]);
    if (comm->me == 0 && std::fabs(mass - expected) > 0.1 * expected)
      error->warning(FLERR,
                     "pair_style mlff: atom type {} ({}) has mass {}, not {:.3f}; fine for an "
                     "isotope, otherwise check the data file",
                     t, elements_[s], mass, expected);
  }
}

double PairMLFF::init_one(int i, int j)
{
  if (setflag[i][j] == 0 && !(type_species_[i] >= 0 && type_species_[j] >= 0))
    error->all(FLERR, "pair_coeff for mlff was not set for atom types {} {}; {}", i, j,
               COEFF_USAGE);
  // The ghost cutoff must cover the interaction range, which equals the cutoff here.
  return cutoff_ / length_to_angstrom_;
}

void PairMLFF::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;

  const double cut = cutoff_ / length_to_angstrom_;
  const double cutsq_lmp = cut * cut;
  const double closest = MIN_DISTANCE_ANGSTROM / length_to_angstrom_;
  const double closest_sq = closest * closest;
  const double angstrom_sq = length_to_angstrom_ * length_to_angstrom_;
  const tagint *tag = atom->tag;

  vectors_.clear();
  rsq_.clear();
  centre_.clear();
  neighbour_species_.clear();
  centre_species_.clear();
  edge_j_.clear();
  scratch_.clear();
  centre_atom_.clear();

  // Centres are this rank's own atoms of mapped types; edges reach ghosts too. Positions of
  // ghosts are already the right periodic images, so no shift vectors are needed.
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    const int si = type_species_[type[i]];
    if (si < 0) continue;
    if (!std::isfinite(x[i][0]) || !std::isfinite(x[i][1]) || !std::isfinite(x[i][2]))
      error->one(FLERR,
                 "pair_style mlff: atom {} has a non-finite position (NaN or inf); the data "
                 "file is broken or the simulation blew up",
                 tag[i]);
    const int64_t node = static_cast<int64_t>(centre_atom_.size());
    centre_atom_.push_back(i);
    centre_species_.push_back(si);
    const int *jlist = firstneigh[i];
    for (int jj = 0; jj < numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int sj = type_species_[type[j]];
      if (sj < 0) continue;
      const double dx = x[j][0] - x[i][0];
      const double dy = x[j][1] - x[i][1];
      const double dz = x[j][2] - x[i][2];
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_lmp) continue;
      if (!(rsq >= closest_sq)) {    // NaN lands here too
        if (!std::isfinite(rsq))
          error->one(FLERR,
                     "pair_style mlff: atom {} has a non-finite position (NaN or inf); the data "
                     "file is broken or the simulation blew up",
                     tag[j]);
        error->one(FLERR,
                   "pair_style mlff: atoms {} and {} are {:.3f} Angstrom apart, closer than "
                   "{} Angstrom: remove the duplicated atom and check the units of the data file",
                   tag[i], tag[j], std::sqrt(rsq) * length_to_angstrom_, MIN_DISTANCE_ANGSTROM);
      }
      scratch_.push_back({j, sj, dx, dy, dz, rsq});
    }
    // Emit this centre's edges grouped by neighbour species (a stable counting sort): the
    // model lays edges out by (centre, neighbour species) and skips its own sort when they
    // come so.
    const size_t n_species = atomic_numbers_.size();
    species_start_.assign(n_species + 1, 0);
    for (const auto &edge : scratch_) species_start_[edge.species + 1]++;
    for (size_t s = 0; s < n_species; s++) species_start_[s + 1] += species_start_[s];
    const size_t first = edge_j_.size();
    const size_t count = scratch_.size();
    vectors_.resize(3 * (first + count));
    rsq_.resize(first + count);
    centre_.resize(first + count, node);
    neighbour_species_.resize(first + count);
    edge_j_.resize(first + count);
    for (const auto &edge : scratch_) {
      const size_t k = first + static_cast<size_t>(species_start_[edge.species]++);
      vectors_[3 * k] = edge.dx * length_to_angstrom_;
      vectors_[3 * k + 1] = edge.dy * length_to_angstrom_;
      vectors_[3 * k + 2] = edge.dz * length_to_angstrom_;
      rsq_[k] = edge.rsq * angstrom_sq;
      neighbour_species_[k] = edge.species;
      edge_j_[k] = edge.j;
    }
    scratch_.clear();
  }

  const int64_t n_centres = static_cast<int64_t>(centre_atom_.size());
  const int64_t n_edges = static_cast<int64_t>(edge_j_.size());
  if (debug_) {
    utils::logmesg(lmp, "pair_style mlff debug: rank {} call {}: {} centres, {} edges, {}\n",
                   comm->me, debug_calls_, n_centres, n_edges,
                   padded_form(members_[0], n_centres) ? "padded rows" : "edge list");
    debug_calls_++;
  }
  // A committee scores this step: every rank takes part in the reductions, even one that
  // owns no atoms of mapped types.
  const bool score = members_.size() > 1 && update->ntimestep % out_freq_ == 0 &&
      update->ntimestep != last_written_;
  if (n_centres == 0 && !score) return;    // a rank that owns no atoms of mapped types

  std::vector<double> energies, gradient;
  if (n_centres > 0) evaluate(members_[0], energies, gradient);
  if (eflag_either) {
    for (int64_t c = 0; c < n_centres; c++) {
      const double ei = energies[c] * ev_to_energy_;
      if (eflag_global) eng_vdwl += ei;
      if (eflag_atom) eatom[centre_atom_[c]] += ei;
    }
  }

  // dE/d(r_j − r_i) in LAMMPS units: energy per length.
  const double scale = ev_to_energy_ * length_to_angstrom_;
  const double *g = gradient.data();
  for (int64_t k = 0; k < n_edges; k++) {
    const int i = centre_atom_[centre_[k]];
    const int j = edge_j_[k];
    const double gx = g[3 * k] * scale, gy = g[3 * k + 1] * scale, gz = g[3 * k + 2] * scale;
    f[i][0] += gx;
    f[i][1] += gy;
    f[i][2] += gz;
    f[j][0] -= gx;
    f[j][1] -= gy;
    f[j][2] -= gz;
    if (vflag_either) {
      // Virial of the edge, −(r_j − r_i) ⊗ dE/d(r_j − r_i), symmetrised, in LAMMPS order
      // xx yy zz xy xz yz; half goes to each end for the per-atom virial.
      const double rx = vectors_[3 * k] / length_to_angstrom_;
      const double ry = vectors_[3 * k + 1] / length_to_angstrom_;
      const double rz = vectors_[3 * k + 2] / length_to_angstrom_;
      const double v[6] = {-rx * gx,
                           -ry * gy,
                           -rz * gz,
                           -0.5 * (rx * gy + ry * gx),
                           -0.5 * (rx * gz + rz * gx),
                           -0.5 * (ry * gz + rz * gy)};
      if (vflag_global)
        for (int a = 0; a < 6; a++) virial[a] += v[a];
      if (vflag_atom)
        for (int a = 0; a < 6; a++) {
          vatom[i][a] += 0.5 * v[a];
          vatom[j][a] += 0.5 * v[a];
        }
    }
  }

  if (score) {
    // Every member's forces (eV/Å) on local and ghost atoms, then onto the owners.
    const int n_members = static_cast<int>(members_.size());
    const int nall = atom->nlocal + atom->nghost;
    member_forces_.assign(static_cast<size_t>(nall) * n_members * 3, 0.0);
    std::vector<double> member_energy(n_members, 0.0);
    for (int m = 0; m < n_members; m++) {
      std::vector<double> e_m, g_m;
      if (m > 0 && n_centres > 0) evaluate(members_[m], e_m, g_m);
      const std::vector<double> &em = m == 0 ? energies : e_m;
      const std::vector<double> &gm = m == 0 ? gradient : g_m;
      for (int64_t c = 0; c < n_centres; c++) member_energy[m] += em[c];
      for (int64_t k = 0; k < n_edges; k++) {
        const int i = centre_atom_[centre_[k]];
        const int j = edge_j_[k];
        for (int a = 0; a < 3; a++) {
          member_forces_[(static_cast<size_t>(i) * n_members + m) * 3 + a] += gm[3 * k + a];
          member_forces_[(static_cast<size_t>(j) * n_members + m) * 3 + a] -= gm[3 * k + a];
        }
      }
    }
    comm->reverse_comm(this);
    force_deviation(n_centres);
    std::vector<double> total(n_members, 0.0);
    MPI_Allreduce(member_energy.data(), total.data(), n_members, MPI_DOUBLE, MPI_SUM, world);
    double n_atoms_local = static_cast<double>(n_centres), n_atoms = 0.0;
    MPI_Allreduce(&n_atoms_local, &n_atoms, 1, MPI_DOUBLE, MPI_SUM, world);
    double mean = 0.0, var = 0.0;
    for (double t : total) mean += t / n_members;
    for (double t : total) var += (t - mean) * (t - mean) / n_members;
    if (out_) {
      fmt::print(out_, "{:>12} {:>18.10e} {:>18.10e} {:>18.10e} {:>18.10e}\n", update->ntimestep,
                 deviation_[0], deviation_[1], deviation_[2],
                 n_atoms > 0 ? std::sqrt(var) / n_atoms : 0.0);
      fflush(out_);
    }
    last_written_ = update->ntimestep;
  }
}

// Max, min and mean over this step's atoms (all ranks) of each atom's force deviation.
void PairMLFF::force_deviation(int64_t n_centres)
{
  const int n_members = static_cast<int>(members_.size());
  double local_max = 0.0, local_min = std::numeric_limits<double>::infinity(), local_sum = 0.0;
  for (int64_t c = 0; c < n_centres; c++) {
    const double *fi = &member_forces_[static_cast<size_t>(centre_atom_[c]) * n_members * 3];
    double sq = 0.0;
    for (int a = 0; a < 3; a++) {
      double mean = 0.0;
      for (int m = 0; m < n_members; m++) mean += fi[3 * m + a] / n_members;
      for (int m = 0; m < n_members; m++)
        sq += (fi[3 * m + a] - mean) * (fi[3 * m + a] - mean) / n_members;
    }
    const double d = std::sqrt(sq);
    local_max = std::max(local_max, d);
    local_min = std::min(local_min, d);
    local_sum += d;
  }
  double count_local = static_cast<double>(n_centres), count = 0.0, sum = 0.0;
  MPI_Allreduce(&local_max, &deviation_[0], 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&local_min, &deviation_[1], 1, MPI_DOUBLE, MPI_MIN, world);
  MPI_Allreduce(&local_sum, &sum, 1, MPI_DOUBLE, MPI_SUM, world);
  MPI_Allreduce(&count_local, &count, 1, MPI_DOUBLE, MPI_SUM, world);
  deviation_[2] = count > 0 ? sum / count : 0.0;
  if (count == 0) deviation_[1] = 0.0;
}

bool PairMLFF::padded_form(const Member &member, int64_t n_centres) const
{
  return member.with_padded && member.cutoff >= cutoff_ && n_centres > 0 &&
      n_centres <= member.padded_limit;
}

void PairMLFF::evaluate(Member &member, std::vector<double> &energies,
                        std::vector<double> &gradient)
{
  const int64_t n_centres = static_cast<int64_t>(centre_atom_.size());
  const int64_t n_edges = static_cast<int64_t>(edge_j_.size());
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor vectors = torch::from_blob(vectors_.data(), {n_edges, 3}, f64);
  torch::Tensor centre = torch::from_blob(centre_.data(), {n_edges}, i64);
  torch::Tensor centre_species = torch::from_blob(centre_species_.data(), {n_centres}, i64);
  torch::Tensor neighbour_species = torch::from_blob(neighbour_species_.data(), {n_edges}, i64);
  // A member with a shorter cutoff than the committee's largest sees only its own edges.
  std::vector<int64_t> kept;
  if (member.cutoff < cutoff_) {
    const double cutsq = member.cutoff * member.cutoff;
    for (int64_t k = 0; k < n_edges; k++)
      if (rsq_[k] < cutsq) kept.push_back(k);
    const torch::Tensor index =
        torch::from_blob(kept.data(), {static_cast<int64_t>(kept.size())}, i64);
    vectors = vectors.index_select(0, index);
    centre = centre.index_select(0, index);
    neighbour_species = neighbour_species.index_select(0, index);
  }
  const int64_t n_used = vectors.size(0);
  centre_species = centre_species.to(device_);
  // A rank of few centres: W rows per centre (W its most edges), the rest padding at twice
  // the cutoff, which adds nothing. The module then skips the layout it would build from
  // the edges (on ethanol about a third of the call). Not for a member with a shorter
  // cutoff: its rows are the edges it keeps.
  const bool padded = padded_form(member, n_centres);
  int64_t width = 0;
  if (!padded) {
    // Host buffers to the device (no copy on the CPU); the edge vectors are float64 until
    // here.
    vectors = vectors.to(device_, member.dtype);
    if (!member.with_gradient) vectors.requires_grad_(true);
    centre = centre.to(device_);
    neighbour_species = neighbour_species.to(device_);
  } else {
    std::vector<int64_t> &count = species_start_;    // free here: the edges are laid out
    count.assign(n_centres, 0);
    for (int64_t k = 0; k < n_edges; k++) count[centre_[k]]++;
    for (int64_t c = 0; c < n_centres; c++) width = std::max(width, count[c]);
    width = std::max<int64_t>(width, 1);
    padded_vectors_.assign(3 * n_centres * width, 0.0);
    padded_species_.assign(n_centres * width, 0);
    edge_row_.resize(n_edges);
    for (int64_t r = 0; r < n_centres * width; r++) padded_vectors_[3 * r] = 2.0 * cutoff_;
    count.assign(n_centres, 0);
    for (int64_t k = 0; k < n_edges; k++) {
      const int64_t c = centre_[k];
      const int64_t row = c * width + count[c]++;
      edge_row_[k] = row;
      for (int a = 0; a < 3; a++) padded_vectors_[3 * row + a] = vectors_[3 * k + a];
      padded_species_[row] = neighbour_species_[k];
    }
    vectors = torch::from_blob(padded_vectors_.data(), {n_centres * width, 3}, f64)
                  .to(device_, member.dtype);
    neighbour_species =
        torch::from_blob(padded_species_.data(), {n_centres * width}, i64).to(device_);
  }

  torch::Tensor out, grad;
  try {
    // Neighbour counts change every step; re-optimising the graph for each new shape would
    // cost far more than it saves on a model this small. Scoped: the switch is process-wide
    // and other TorchScript users in the process (OpenMM's TorchForce when LAMMPS runs
    // inside Python) must not inherit it.
    torch::jit::GraphOptimizerEnabledGuard no_optimization(false);
    // No autograd where the module takes its own derivative: inference mode skips autograd's
    // bookkeeping on every operator (about a fifth of a small molecule's call).
    c10::InferenceMode inference(member.inference);
    if (padded) {
      const auto both = member.module
                            .run_method("local_padded_energies_and_gradient", vectors,
                                        centre_species, neighbour_species)
                            .toTuple();
      out = both->elements()[0].toTensor();
      grad = both->elements()[1].toTensor();
    } else if (member.with_gradient) {
      // Format 4 on: the module takes its own derivative (the one place forces come from).
      const auto both = member.module
                            .run_method("local_energies_and_gradient", vectors, centre,
                                        centre_species, neighbour_species)
                            .toTuple();
      out = both->elements()[0].toTensor();
      grad = both->elements()[1].toTensor();
    } else {
      out = member.module
                .run_method("local_energies", vectors, centre, centre_species, neighbour_species)
                .toTensor();
      if (n_used > 0) grad = torch::autograd::grad({out.sum()}, {vectors})[0];
    }
  } catch (const std::exception &err) {
    std::string what = err.what();
    // A TorchScript `raise` arrives wrapped in the interpreter's trace; its own message is
    // the last "builtins.SomeError: ..." line. Keep that one line.
    const auto at = what.rfind("builtins.");
    if (at != std::string::npos) {
      const auto colon = what.find(": ", at);
      what = what.substr(colon == std::string::npos ? at : colon + 2);
      while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    }
    if (members_.size() > 1)
      error->one(FLERR, "pair_style mlff: the model '{}' failed on rank {}: {}", member.path,
                 comm->me, what);
    error->one(FLERR, "pair_style mlff: the model failed on rank {}: {}", comm->me, what);
  }

  const torch::Tensor energies64 = out.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double *e = energies64.data_ptr<double>();
  energies.assign(e, e + n_centres);
  for (int64_t c = 0; c < n_centres; c++)
    if (!std::isfinite(e[c]))
      error->one(FLERR,
                 "pair_style mlff: the model returned a non-finite energy for atom {}; its "
                 "inputs were finite, so the exported file is broken: export it again",
                 atom->tag[centre_atom_[c]]);
  gradient.assign(static_cast<size_t>(n_edges) * 3, 0.0);
  if (n_used == 0) return;
  const torch::Tensor gradient64 = grad.to(torch::kCPU, torch::kFloat64).contiguous();
  const double *g = gradient64.data_ptr<double>();
  if (padded) {
    for (int64_t k = 0; k < n_edges; k++)
      for (int a = 0; a < 3; a++) gradient[3 * k + a] = g[3 * edge_row_[k] + a];
  } else if (kept.empty() && n_used == n_edges) {
    std::copy(g, g + 3 * n_edges, gradient.begin());
  } else {
    for (int64_t u = 0; u < n_used; u++)
      for (int a = 0; a < 3; a++) gradient[3 * kept[u] + a] = g[3 * u + a];
  }
}

int PairMLFF::pack_reverse_comm(int n, int first, double *buf)
{
  const int width = 3 * static_cast<int>(members_.size());
  int m = 0;
  for (int i = first; i < first + n; i++)
    for (int a = 0; a < width; a++) buf[m++] = member_forces_[static_cast<size_t>(i) * width + a];
  return m;
}

void PairMLFF::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int width = 3 * static_cast<int>(members_.size());
  int m = 0;
  for (int i = 0; i < n; i++)
    for (int a = 0; a < width; a++)
      member_forces_[static_cast<size_t>(list[i]) * width + a] += buf[m++];
}
