/*
 * pool.c: worker threads for one libuv loop (see pool.h).
 *
 * Objects and ownership:
 *  - fanns_pool_t owns its threads, a FIFO of submitted jobs (guarded by mu, workers sleep on
 *    cv), a lock-free LIFO of finished jobs, and three loop handles: an async handle (a worker
 *    wakes the loop for a job that is not quiet), a prepare handle (every loop turn, before the
 *    loop blocks, runs the finished jobs' completions) and a repeating sweep timer (armed only
 *    while jobs are in flight, so a quiet completion that finished while the loop was blocked
 *    runs within FANNS_POOL_SWEEP_MS even when nothing else happens).
 *  - Jobs belong to the caller; the pool only links them.  A worker must not touch a job after
 *    pushing it onto the finished list: from then on the loop may run done, which may free it.
 *
 * Invariants:
 *  - inflight (loop thread only) counts jobs submitted and not yet completed.  The async handle
 *    stays referenced until the pool is closed and inflight is 0, which keeps the loop running
 *    until every completion has run, as libuv does for uv_queue_work requests.
 *  - The loop signals a sleeping worker outside mu, so the woken worker does not immediately
 *    block on the mutex the loop still holds.
 *
 * Reference: libuv src/threadpool.c (the design this replaces for searches).
 */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fanns_pool {
    uv_loop_t *loop;
    uv_async_t async;
    uv_prepare_t prep;
    uv_timer_t sweep;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fanns_pool_job_t *qh, *qt;          /* submitted, not started (mu) */
    unsigned idle;                      /* workers waiting on cv (mu) */
    bool stop;                          /* workers exit once the queue is empty (mu) */
    _Atomic(fanns_pool_job_t *) fin;    /* finished, newest first */
    unsigned long inflight;             /* loop thread */
    bool closing, handles_closed;       /* loop thread */
    unsigned nthreads, started;
    char name[16];
    pthread_t *threads;
};

unsigned fanns_pool_default_threads(void) {
    unsigned n = uv_available_parallelism();
    return n ? n : 1;
}

static void *worker_main(void *arg) {
    fanns_pool_t *p = arg;
#ifdef __linux__
    pthread_setname_np(pthread_self(), p->name);
#endif
    pthread_mutex_lock(&p->mu);
    for (;;) {
        fanns_pool_job_t *j;
        while (!p->qh && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (!p->qh) break; /* stopping and nothing left */
        j = p->qh;
        p->qh = j->next;
        if (!p->qh) p->qt = NULL;
        pthread_mutex_unlock(&p->mu);

        j->quiet = false;
        j->work(j);
        bool quiet = j->quiet; /* read before the push: after it, j is the loop's */
        fanns_pool_job_t *head = atomic_load_explicit(&p->fin, memory_order_relaxed);
        do j->next = head;
        while (!atomic_compare_exchange_weak_explicit(&p->fin, &head, j, memory_order_release, memory_order_relaxed));
        if (!quiet) uv_async_send(&p->async);

        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void close_handles(fanns_pool_t *p) {
    if (p->handles_closed) return;
    p->handles_closed = true;
    if (!uv_is_closing((uv_handle_t *)&p->async)) uv_close((uv_handle_t *)&p->async, NULL);
    if (!uv_is_closing((uv_handle_t *)&p->prep)) uv_close((uv_handle_t *)&p->prep, NULL);
    if (!uv_is_closing((uv_handle_t *)&p->sweep)) uv_close((uv_handle_t *)&p->sweep, NULL);
}

/* Runs the completions of every finished job, oldest first. */
static void reap(fanns_pool_t *p) {
    fanns_pool_job_t *l = atomic_exchange_explicit(&p->fin, NULL, memory_order_acquire), *fifo = NULL;
    while (l) {
        fanns_pool_job_t *n = l->next;
        l->next = fifo;
        fifo = l;
        l = n;
    }
    while (fifo) {
        fanns_pool_job_t *n = fifo->next;
        p->inflight--;
        fifo->done(fifo); /* may free fifo */
        fifo = n;
    }
    if (p->closing && !p->inflight) close_handles(p);
}

static void on_async(uv_async_t *a) { reap(a->data); }

static void on_sweep(uv_timer_t *t) { reap(t->data); }

static void on_prepare(uv_prepare_t *h) {
    fanns_pool_t *p = h->data;
    reap(p);
    if (p->handles_closed) return;
    /* The timer only bounds how long a quiet completion can wait while the loop is blocked:
     * armed while something is in flight, idle otherwise. */
    if (p->inflight && !uv_is_active((uv_handle_t *)&p->sweep))
        uv_timer_start(&p->sweep, on_sweep, FANNS_POOL_SWEEP_MS, FANNS_POOL_SWEEP_MS);
    else if (!p->inflight && uv_is_active((uv_handle_t *)&p->sweep))
        uv_timer_stop(&p->sweep);
}

int fanns_pool_new(uv_loop_t *loop, unsigned nthreads, const char *name, fanns_pool_t **out, fanns_err_t *err) {
    fanns_pool_t *p;
    int rc = 0;
    *out = NULL;
    if (!loop || nthreads == 0 || nthreads > 4096)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "a worker pool needs 1 to 4096 threads (got %u)", nthreads);
    p = calloc(1, sizeof(*p));
    if (!p) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    p->threads = calloc(nthreads, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    }
    p->loop = loop;
    p->nthreads = nthreads;
    snprintf(p->name, sizeof(p->name), "%s", name ? name : "fanns-pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->fin, NULL);
    for (; p->started < nthreads; p->started++) {
        if (pthread_create(&p->threads[p->started], NULL, worker_main, p) != 0) {
            rc = fanns_err_set(err, FANNS_EIO, NULL, "cannot start worker thread %u of %u", p->started + 1, nthreads);
            goto fail;
        }
    }
    /* The handles come last: a failure above has none to close through the loop.  Workers
     * touch the async handle only after a job, and no job can come before we return. */
    uv_async_init(loop, &p->async, on_async);
    p->async.data = p;
    uv_prepare_init(loop, &p->prep);
    p->prep.data = p;
    uv_prepare_start(&p->prep, on_prepare);
    uv_unref((uv_handle_t *)&p->prep);
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    uv_unref((uv_handle_t *)&p->sweep);
    *out = p;
    return 0;
fail:
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
    return rc;
}

void fanns_pool_submit(fanns_pool_t *p, fanns_pool_job_t *j) {
    bool wake;
    j->next = NULL;
    p->inflight++;
    pthread_mutex_lock(&p->mu);
    if (p->qt) p->qt->next = j;
    else p->qh = j;
    p->qt = j;
    wake = p->idle > 0;
    pthread_mutex_unlock(&p->mu);
    if (wake) pthread_cond_signal(&p->cv);
}

unsigned long fanns_pool_inflight(const fanns_pool_t *p) { return p->inflight; }

unsigned fanns_pool_threads(const fanns_pool_t *p) { return p->nthreads; }

void fanns_pool_close(fanns_pool_t *p) {
    if (!p || p->closing) return;
    p->closing = true;
    if (!p->inflight) close_handles(p);
}

void fanns_pool_free(fanns_pool_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    p->qh = p->qt = NULL; /* never started: dropped (see pool.h) */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
