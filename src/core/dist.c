/* MPI wrapper: see include/jade/dist.h. */
#include "jade/dist.h"

#include <stdlib.h>

#ifdef JADE_HAVE_MPI
#include <mpi.h>
#endif

static int launched_by_mpi(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") ||
         getenv("MPI_LOCALNRANKS") || getenv("SLURM_STEP_NUM_TASKS");
}

jade_status jade_dist_init(int *argc, char ***argv, jade_dist *d) {
  d->rank = 0;
  d->size = 1;
  d->mpi_active = 0;
#ifdef JADE_HAVE_MPI
  if (launched_by_mpi()) {
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return jade_error(JADE_ERR_INTERNAL, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->mpi_active = 1;
  }
#else
  (void)argc;
  (void)argv;
  (void)launched_by_mpi;
#endif
  return JADE_OK;
}

void jade_dist_finalize(jade_dist *d) {
#ifdef JADE_HAVE_MPI
  if (d->mpi_active) MPI_Finalize();
#endif
  d->mpi_active = 0;
}

void jade_dist_barrier(const jade_dist *d) {
#ifdef JADE_HAVE_MPI
  if (d->mpi_active) MPI_Barrier(MPI_COMM_WORLD);
#else
  (void)d;
#endif
}

#ifdef JADE_HAVE_MPI
static jade_status sum(const jade_dist *d, void *x, size_t n, MPI_Datatype t) {
  if (!d->mpi_active || d->size == 1) return JADE_OK;
  if (n > (size_t)0x7fffffff) return jade_error(JADE_ERR_INVALID, "allreduce of %zu elements too large", n);
  if (MPI_Allreduce(MPI_IN_PLACE, x, (int)n, t, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
    return jade_error(JADE_ERR_INTERNAL, "MPI_Allreduce failed");
  return JADE_OK;
}
#endif

jade_status jade_dist_sum_double(const jade_dist *d, double *x, size_t n) {
#ifdef JADE_HAVE_MPI
  return sum(d, x, n, MPI_DOUBLE);
#else
  (void)d; (void)x; (void)n;
  return JADE_OK;
#endif
}

jade_status jade_dist_sum_float(const jade_dist *d, float *x, size_t n) {
#ifdef JADE_HAVE_MPI
  return sum(d, x, n, MPI_FLOAT);
#else
  (void)d; (void)x; (void)n;
  return JADE_OK;
#endif
}

jade_status jade_dist_sum_long(const jade_dist *d, long *x, size_t n) {
#ifdef JADE_HAVE_MPI
  return sum(d, x, n, MPI_LONG);
#else
  (void)d; (void)x; (void)n;
  return JADE_OK;
#endif
}

jade_status jade_dist_allgather_float(const jade_dist *d, const float *in, size_t n, float *out) {
#ifdef JADE_HAVE_MPI
  if (d->mpi_active && d->size > 1) {
    if (n > (size_t)0x7fffffff) return jade_error(JADE_ERR_INVALID, "allgather of %zu elements too large", n);
    if (MPI_Allgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, MPI_COMM_WORLD) != MPI_SUCCESS)
      return jade_error(JADE_ERR_INTERNAL, "MPI_Allgather failed");
    return JADE_OK;
  }
#endif
  (void)d;
  for (size_t i = 0; i < n; i++) out[i] = in[i];
  return JADE_OK;
}

int jade_dist_max_int(const jade_dist *d, int v) {
#ifdef JADE_HAVE_MPI
  if (d->mpi_active && d->size > 1) {
    int r;
    MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return r;
  }
#endif
  (void)d;
  return v;
}

void jade_dist_abort(const jade_dist *d, int code) {
#ifdef JADE_HAVE_MPI
  if (d->mpi_active && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  (void)d;
  exit(code);
}
