/* Time-left estimate of integrations split into tasks on workers (include/jade/progress.h).
 *
 * Model: a task of work u on one worker takes c u + o seconds: c per draw-evaluation (the
 * network), o after its last step (per-task work outside the steps, e.g. the statistics of a
 * validation observation).
 *  c = sum of the durations of the steps / their work, leaving out each worker's first step
 *      (a step lasts from the worker's previous event: its previous step or the start of its
 *      task). Before any worker has two steps: the first steps, from t0.
 *  o = mean over finished tasks of (end - last step); 0 before the first task ends.
 * Time left: a busy worker needs c x (its task's remaining work) + o minus the time since its
 * latest event (o alone, less the time since its last step, once its steps are done); the
 * queued tasks go, in order, to whichever worker is free first (list scheduling, as OpenMP's
 * dynamic schedule does); the answer is the latest finish. */
#include "jade/progress.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  int busy;                /* in a task */
  long task;               /* its index */
  double task_done;        /* draw-evaluations of that task done */
  int n_steps;             /* steps seen (all tasks) */
  double t_first, w_first; /* end of the first step and its work */
  double step_time, step_work; /* the later steps: total duration and work */
  double t_last;           /* latest event (a step or the start of the task) */
  double t_last_step;      /* latest step */
} eta_worker;

struct jade_eta {
  int n_workers;
  long n_tasks, next, done, task_steps, steps_done;
  double task_work, last_work, t0, work_done;
  double over_sum; /* sum of (end - last step) over finished tasks */
  long over_n;
  eta_worker *w;
  double *finish; /* scratch for the makespan */
};

jade_status jade_eta_create(int n_workers, long n_tasks, double task_work, double last_work, long task_steps, double t0,
                            jade_eta **out) {
  *out = NULL;
  if (n_workers < 1 || n_tasks < 0 || !(task_work >= 0) || !(last_work >= 0) || task_steps < 0 || !isfinite(t0))
    return jade_error(JADE_ERR_INVALID, "progress: %d workers, %ld tasks of %g (last %g) draw-evaluations", n_workers,
                      n_tasks, task_work, last_work);
  jade_eta *e = calloc(1, sizeof *e);
  if (!e) return jade_error(JADE_ERR_NOMEM, "progress: out of memory");
  e->w = calloc((size_t)n_workers, sizeof *e->w);
  e->finish = calloc((size_t)n_workers, sizeof *e->finish);
  if (!e->w || !e->finish) {
    jade_eta_free(e);
    return jade_error(JADE_ERR_NOMEM, "progress: out of memory");
  }
  e->n_workers = n_workers;
  e->n_tasks = n_tasks;
  e->task_work = task_work;
  e->last_work = last_work;
  e->task_steps = task_steps;
  e->t0 = t0;
  *out = e;
  return JADE_OK;
}

void jade_eta_free(jade_eta *e) {
  if (!e) return;
  free(e->w);
  free(e->finish);
  free(e);
}

static double task_size(const jade_eta *e, long k) { return k == e->n_tasks - 1 ? e->last_work : e->task_work; }

void jade_eta_begin(jade_eta *e, int w, double t) {
  if (!e || w < 0 || w >= e->n_workers) return;
  eta_worker *x = &e->w[w];
  x->busy = 1;
  x->task = e->next < e->n_tasks ? e->next++ : e->n_tasks - 1;
  x->task_done = 0;
  x->t_last = t;
}

void jade_eta_step(jade_eta *e, int w, double work, double t) {
  if (!e || w < 0 || w >= e->n_workers) return;
  eta_worker *x = &e->w[w];
  if (x->n_steps == 0) {
    x->t_first = t, x->w_first = work;
  } else {
    x->step_time += t - x->t_last;
    x->step_work += work;
  }
  x->n_steps++;
  x->t_last = x->t_last_step = t;
  x->task_done += work;
  e->work_done += work;
  e->steps_done++;
}

void jade_eta_end(jade_eta *e, int w, double t) {
  if (!e || w < 0 || w >= e->n_workers) return;
  eta_worker *x = &e->w[w];
  if (!x->busy) return;
  e->done++;
  x->busy = 0;
  if (x->task_done > 0) {
    e->over_sum += t - x->t_last_step;
    e->over_n++;
  }
  x->t_last = t;
}

/* seconds per draw-evaluation of one worker (NaN: nothing measured yet) */
static double cost(const jade_eta *e) {
  double num = 0, den = 0, num1 = 0, den1 = 0;
  for (int w = 0; w < e->n_workers; w++) {
    const eta_worker *x = &e->w[w];
    if (x->n_steps == 0) continue;
    num1 += x->t_first - e->t0;
    den1 += x->w_first;
    num += x->step_time;
    den += x->step_work;
  }
  if (den > 0) return num / den;
  return den1 > 0 ? num1 / den1 : NAN;
}

/* index of the smallest of n values */
static int argmin(const double *v, int n) {
  int k = 0;
  for (int i = 1; i < n; i++)
    if (v[i] < v[k]) k = i;
  return k;
}

void jade_eta_get(const jade_eta *e, double t, jade_progress *p) {
  if (!e || !p) return;
  p->steps_done = e->steps_done;
  p->steps_total = e->n_tasks * e->task_steps;
  p->tasks_done = e->done;
  p->tasks_total = e->n_tasks;
  p->work_done = e->work_done;
  p->work_total = e->n_tasks > 0 ? (e->n_tasks - 1) * e->task_work + e->last_work : 0;
  p->elapsed = t - e->t0;
  p->rate = p->elapsed > 0 ? e->work_done / p->elapsed : NAN;
  double c = cost(e);
  if (!isfinite(c)) {
    p->eta = NAN;
    return;
  }
  const double o = e->over_n > 0 ? e->over_sum / e->over_n : 0.0;
  /* each worker's finish time from now with its current task */
  const int W = e->n_workers;
  double *f = e->finish;
  for (int w = 0; w < W; w++) {
    const eta_worker *x = &e->w[w];
    f[w] = 0;
    if (!x->busy) continue;
    double left = task_size(e, x->task) - x->task_done;
    if (left > 0) f[w] = c * left + o - (t - x->t_last);
    else f[w] = o - (t - x->t_last_step);
    if (f[w] < 0) f[w] = 0;
  }
  /* queued tasks e->next .. n_tasks - 1 to the first free worker. Equal tasks of duration d
   * once every finish lies within d of the smallest: each round of W tasks then adds d to
   * every worker (the smallest plus d is >= all others), so whole rounds are added at once. */
  long k = e->next;
  const long last = e->n_tasks - 1;
  const double d = c * e->task_work + o;
  while (k < last) {
    double lo = f[argmin(f, W)], hi = lo;
    for (int w = 0; w < W; w++) hi = f[w] > hi ? f[w] : hi;
    long n_equal = last - k; /* tasks k .. last - 1 are equal */
    if (hi - lo <= d && n_equal >= W) {
      long rounds = n_equal / W;
      for (int w = 0; w < W; w++) f[w] += rounds * d;
      k += rounds * W;
      continue;
    }
    f[argmin(f, W)] += d;
    k++;
  }
  if (k == last) f[argmin(f, W)] += c * e->last_work + o;
  double eta = 0;
  for (int w = 0; w < W; w++) eta = f[w] > eta ? f[w] : eta;
  p->eta = eta;
}
