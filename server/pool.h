/*
 * pool.h: a fixed set of worker threads that run jobs handed over by one libuv loop, and run
 * each job's completion back on that loop.
 *
 * Why not uv_queue_work: libuv's pool is shared by every kind of work, is sized once per
 * process, and wakes the loop for every completed job.  The server runs searches here on as
 * many threads as there are cores (more only adds preemption and cache thrash to CPU-bound
 * work), and most search responses are already in the socket when the job ends (the worker
 * wrote them), so their completion is bookkeeping that can wait for the loop's next turn
 * instead of costing a wake-up of its own.
 *
 * Threads: fanns_pool_new, _submit, _close and _threads are called on the loop thread only;
 * work runs on a worker, done on the loop thread.
 */
#ifndef FANNS_POOL_H
#define FANNS_POOL_H

#include <stdbool.h>

#include <uv.h>

#include "err.h"

/* A finished quiet job waits at most this long for its completion to run. */
#define FANNS_POOL_SWEEP_MS 5

typedef struct fanns_pool fanns_pool_t;
typedef struct fanns_pool_job fanns_pool_job_t;

typedef void (*fanns_pool_fn)(fanns_pool_job_t *job);

/* Embedded in the caller's own request object, which owns it; the pool links it into its
 * queues from fanns_pool_submit until done has been called. */
struct fanns_pool_job {
    fanns_pool_job_t *next;     /* the pool's */
    fanns_pool_fn work;         /* runs on a worker thread */
    fanns_pool_fn done;         /* runs on the loop thread, once work has returned */
    bool quiet;                 /* work may set it: done need not wake the loop, it runs on the
                                 * loop's next turn or within FANNS_POOL_SWEEP_MS */
};

/* Starts nthreads (>= 1) workers whose completions run on loop.  The pool's handles keep loop
 * alive until fanns_pool_close and the last job's completion.  Returns 0, FANNS_EINVAL or
 * FANNS_ENOMEM/FANNS_EIO (threads could not start); *out is the caller's, freed with
 * fanns_pool_free. */
int fanns_pool_new(uv_loop_t *loop, unsigned nthreads, const char *name, fanns_pool_t **out, fanns_err_t *err);

/* Queues job (work and done set) in FIFO order.  Must not be called after fanns_pool_close. */
void fanns_pool_submit(fanns_pool_t *p, fanns_pool_job_t *job);

/* Jobs submitted whose done has not run yet. */
unsigned long fanns_pool_inflight(const fanns_pool_t *p);

unsigned fanns_pool_threads(const fanns_pool_t *p);

/* No more submissions.  The pool closes its handles once every job submitted so far has
 * completed, so the loop can end.  Idempotent. */
void fanns_pool_close(fanns_pool_t *p);

/* Stops and joins the workers and frees p.  Call after the loop has stopped running (the
 * pool's handles closed, by fanns_pool_close or by a walk over the loop's handles).  Jobs
 * still queued then are dropped without their done being called. */
void fanns_pool_free(fanns_pool_t *p);

/* The number of worker threads for searches when the operator sets 0 ("auto"): the cores this
 * process may run on. */
unsigned fanns_pool_default_threads(void);

#endif
