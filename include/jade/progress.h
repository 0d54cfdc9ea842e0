/* Progress of long integrations (jade sample, jade validate) and their time-left estimate.
 *
 * Work is counted in draw-evaluations: one network evaluation for one draw. A Heun step of a
 * batch of B draws is 2B of them (B for the final Euler step), and the network is where the
 * time goes, so the estimator measures seconds per draw-evaluation. The work comes in tasks
 * (sampling batches, validation observations) that W workers take from a queue in index
 * order (OpenMP dynamic schedule): W threads each integrating whole tasks, or one worker
 * threaded inside the network. The time left is the makespan of the remaining work on the W
 * workers - not remaining / rate, which is too short when fewer tasks than workers remain -
 * and the cost per draw-evaluation leaves out each worker's first step, which also pays for
 * allocations, first-touch page faults and thread start-up. With steady per-step costs the
 * estimate is exact (tests/test_progress.c). Time that is not network evaluation but scales
 * with the tasks (validation statistics after each observation) is spread over the work.
 *
 * The library fills a jade_progress and calls the caller's jade_progress_fn; printing is the
 * caller's business (the CLI writes one stderr line; jade_format_duration formats times). */
#ifndef JADE_PROGRESS_H
#define JADE_PROGRESS_H
#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  long steps_done, steps_total; /* integration steps, all tasks of this process */
  long tasks_done, tasks_total; /* batches (sample) / observations (validate) finished */
  double work_done, work_total; /* draw-evaluations */
  double elapsed;               /* seconds since the start */
  double rate;                  /* draw-evaluations per second since the start */
  double eta;                   /* estimated seconds left (NaN before the first step) */
} jade_progress;

typedef void (*jade_progress_fn)(const jade_progress *p, void *user);

/* The estimator. Not thread-safe: callers serialise the calls (one critical section). */
typedef struct jade_eta jade_eta;
/* n_tasks tasks of task_work draw-evaluations and task_steps steps each, except the last,
 * of last_work draw-evaluations; n_workers >= 1; t0 the start time in seconds. */
jade_status jade_eta_create(int n_workers, long n_tasks, double task_work, double last_work, long task_steps,
                            double t0, jade_eta **out);
void jade_eta_free(jade_eta *e);
/* Worker w (0 .. n_workers - 1) takes the next task of the queue at time t. */
void jade_eta_begin(jade_eta *e, int w, double t);
/* Worker w finished one integration step of `work` draw-evaluations at time t. */
void jade_eta_step(jade_eta *e, int w, double work, double t);
/* Worker w finished its task (including any work after its last step) at time t. */
void jade_eta_end(jade_eta *e, int w, double t);
/* The state at time t. */
void jade_eta_get(const jade_eta *e, double t, jade_progress *p);

#ifdef __cplusplus
}
#endif
#endif
