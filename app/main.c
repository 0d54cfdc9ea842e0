/* jade command-line interface: dispatch to the subcommands in app/cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jade/core.h"
#include "jade/nn.h"

static const jade_command commands[] = {
    {"cosmo", "print P(k), C_ell or the log-normal shifts for a cosmology", jade_cmd_cosmo},
    {"simulate", "simulate a dataset of (theta, convergence maps) pairs", jade_cmd_simulate},
    {"observe", "make one mock survey observation (noisy shear FITS + truth)", jade_cmd_observe},
    {"catalog", "bin a shear catalogue onto the survey grid (shear, mask, per-pixel noise)", jade_cmd_catalog},
    {"train", "train the JADE diffusion model on a simulated dataset", jade_cmd_train},
    {"sample", "draw posterior samples of maps and cosmology for an observation", jade_cmd_sample},
    {"validate", "calibration of a trained model over held-out simulations (MIRA, TARP, coverage)", jade_cmd_validate},
    {"report", "HTML report with figures for a sample, validate or mcmc output", jade_cmd_report},
    {"mcmc", "field-level NUTS baseline on the explicit log-normal model (and --compare)", jade_cmd_mcmc},
    {"model", "print a trained model's configuration; convert its weights to F16 or F32", jade_cmd_model},
    {"sed", "galaxy SED fitting under a diffusion prior (pop-cosmos): train-prior, mock, fit", jade_cmd_sed},
    {NULL, NULL, NULL}};

static void usage(FILE *f) {
  fprintf(f,
          "jade %s: joint field-level inference of weak-lensing maps and cosmology with "
          "diffusion models\n\nusage: jade <command> [options]   (jade <command> --help)\n\ncommands:\n",
          JADE_VERSION_STRING);
  for (const jade_command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
  fprintf(f, "\nenvironment:\n  OMP_NUM_THREADS  threads per process\n"
             "  JADE_MATMUL      auto (default: bf16 kernel if the CPU has AVX512-BF16), f32 or bf16\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("jade %s\n", JADE_VERSION_STRING);
    return 0;
  }
  /* Matmul backend for every command: JADE_MATMUL=auto (default: the bf16 AVX512-BF16 kernel
   * when the CPU has it, else fp32), f32 (bitwise the same results on every machine) or bf16. */
  const char *mm = getenv("JADE_MATMUL");
  jade_matmul_backend backend = JADE_MATMUL_AUTO;
  if (mm && *mm) {
    if (!strcmp(mm, "f32")) backend = JADE_MATMUL_F32;
    else if (!strcmp(mm, "bf16")) backend = JADE_MATMUL_BF16;
    else if (strcmp(mm, "auto")) {
      fprintf(stderr, "jade: JADE_MATMUL='%s': expected auto, f32 or bf16\n", mm);
      return 2;
    }
  }
  if (jade_matmul_set_backend(backend) != JADE_OK) {
    fprintf(stderr, "jade: JADE_MATMUL=%s: %s\n", mm, jade_last_error());
    return 2;
  }
  for (const jade_command *c = commands; c->name; c++)
    if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "jade: unknown command '%s' (see jade --help)\n", argv[1]);
  return 2;
}
