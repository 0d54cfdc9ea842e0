/* jade distribution over processes (MPI). Without mpirun (or when built without MPI) a
 * single process is rank 0 of 1 and every call is a no-op, so no mpirun is ever needed.
 * MPI is initialised only when the process was started by a launcher (mpirun / srun). */
#ifndef JADE_DIST_H
#define JADE_DIST_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int rank, size;
  int mpi_active;
} jade_dist;

jade_status jade_dist_init(int *argc, char ***argv, jade_dist *d);
void jade_dist_finalize(jade_dist *d);
void jade_dist_barrier(const jade_dist *d);
/* In-place sums over ranks (deterministic: reduced in rank order by MPI_Allreduce on a fixed
 * communicator; for bit-reproducibility across rank counts, callers sum in a fixed tree). */
jade_status jade_dist_sum_double(const jade_dist *d, double *x, size_t n);
jade_status jade_dist_sum_float(const jade_dist *d, float *x, size_t n);
jade_status jade_dist_sum_long(const jade_dist *d, long *x, size_t n);
/* Gather equal-size float blocks from every rank to every rank: out[rank*n .. ]. */
jade_status jade_dist_allgather_float(const jade_dist *d, const float *in, size_t n, float *out);
/* Broadcast an int status from rank 0 / combine error status (max over ranks). */
int jade_dist_max_int(const jade_dist *d, int v);
void jade_dist_abort(const jade_dist *d, int code);

#ifdef __cplusplus
}
#endif
#endif
