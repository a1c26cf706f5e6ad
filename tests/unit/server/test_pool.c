/*
 * test_pool.c: server/pool.c on a private libuv loop.
 *
 * Checks that every job's work runs on a worker and its done on the loop thread, once each;
 * that one worker runs jobs in submission order; that the loop keeps running until the last
 * completion after fanns_pool_close and then ends with no handle left; that a quiet job's
 * completion runs without any wake-up from the worker (through the sweep timer) within a
 * bounded time; and that work runs on all threads at once.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "pool.h"

typedef struct tjob {
    fanns_pool_job_t job;
    int id;
    bool quiet;
    int sleep_ms;
    pthread_t worker;
    int done_calls;
    bool done_on_loop;
    double finished_at, done_at;
} tjob_t;

static pthread_t g_loop_thread;
static atomic_int g_started_order[64];
static atomic_int g_nstarted;
static atomic_int g_running, g_max_running;
static int g_ndone;
static fanns_pool_t *g_pool;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tjob_work(fanns_pool_job_t *j) {
    tjob_t *t = (tjob_t *)j;
    int k = atomic_fetch_add(&g_nstarted, 1);
    if (k < 64) atomic_store(&g_started_order[k], t->id);
    int now = atomic_fetch_add(&g_running, 1) + 1;
    int m = atomic_load(&g_max_running);
    while (now > m && !atomic_compare_exchange_weak(&g_max_running, &m, now)) {}
    t->worker = pthread_self();
    if (t->sleep_ms) {
        struct timespec ts = {0, t->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_sub(&g_running, 1);
    t->finished_at = mono_s();
    j->quiet = t->quiet;
}

static void tjob_done(fanns_pool_job_t *j) {
    tjob_t *t = (tjob_t *)j;
    t->done_calls++;
    t->done_on_loop = pthread_equal(pthread_self(), g_loop_thread);
    t->done_at = mono_s();
    g_ndone++;
}

static void reset(void) {
    atomic_store(&g_nstarted, 0);
    atomic_store(&g_running, 0);
    atomic_store(&g_max_running, 0);
    g_ndone = 0;
    g_loop_thread = pthread_self();
}

static void submit_all(tjob_t *t, int n) {
    for (int i = 0; i < n; i++) {
        t[i].job.work = tjob_work;
        t[i].job.done = tjob_done;
        fanns_pool_submit(g_pool, &t[i].job);
    }
}

static void finish(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT); /* returns only once the pool closed its handles */
    ck_assert_int_eq(uv_loop_close(loop), 0);
    fanns_pool_free(g_pool);
}

START_TEST(test_fifo_and_threads) {
    uv_loop_t loop;
    fanns_err_t err;
    tjob_t t[40];
    reset();
    memset(t, 0, sizeof(t));
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(fanns_pool_new(&loop, 1, "test-pool", &g_pool, &err), 0);
    ck_assert_uint_eq(fanns_pool_threads(g_pool), 1);
    for (int i = 0; i < 40; i++) {
        t[i].id = i;
        t[i].quiet = i % 2;
    }
    submit_all(t, 40);
    ck_assert_uint_eq(fanns_pool_inflight(g_pool), 40);
    fanns_pool_close(g_pool);
    finish(&loop);
    ck_assert_int_eq(g_ndone, 40);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(atomic_load(&g_started_order[i]), i);
        ck_assert_int_eq(t[i].done_calls, 1);
        ck_assert(t[i].done_on_loop);
        ck_assert(!pthread_equal(t[i].worker, g_loop_thread));
        ck_assert(pthread_equal(t[i].worker, t[0].worker));
    }
    ck_assert_int_eq(atomic_load(&g_max_running), 1);
}
END_TEST

START_TEST(test_parallel) {
    uv_loop_t loop;
    fanns_err_t err;
    tjob_t t[12];
    reset();
    memset(t, 0, sizeof(t));
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(fanns_pool_new(&loop, 3, "test-pool", &g_pool, &err), 0);
    for (int i = 0; i < 12; i++) {
        t[i].id = i;
        t[i].sleep_ms = 40;
    }
    submit_all(t, 12);
    fanns_pool_close(g_pool);
    finish(&loop);
    ck_assert_int_eq(g_ndone, 12);
    /* Three at a time, never more (sleeping work overlaps even on one core). */
    ck_assert_int_eq(atomic_load(&g_max_running), 3);
}
END_TEST

/* A quiet job finishing while the loop is blocked with nothing else to do is completed by the
 * sweep timer, within a few of its periods, not left until some unrelated event. */
static void on_check_done(uv_timer_t *h) {
    if (g_ndone == 3) {
        fanns_pool_close(g_pool);
        uv_close((uv_handle_t *)h, NULL);
    }
}

START_TEST(test_quiet_completion_sweep) {
    uv_loop_t loop;
    uv_timer_t poll_done;
    fanns_err_t err;
    tjob_t t[3];
    reset();
    memset(t, 0, sizeof(t));
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(fanns_pool_new(&loop, 2, "test-pool", &g_pool, &err), 0);
    for (int i = 0; i < 3; i++) {
        t[i].id = i;
        t[i].quiet = true;
        t[i].sleep_ms = 30 + 20 * i;
    }
    /* A slow poll (1 s) that closes the pool once all three are done: nothing else wakes the
     * loop, so the completions can only come from the sweep timer. */
    uv_timer_init(&loop, &poll_done);
    uv_timer_start(&poll_done, on_check_done, 1000, 1000);
    submit_all(t, 3);
    finish(&loop);
    ck_assert_int_eq(g_ndone, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t[i].done_calls, 1);
        ck_assert(t[i].done_on_loop);
        double lag = t[i].done_at - t[i].finished_at;
        ck_assert_msg(lag >= 0 && lag < 0.25, "job %d completed %.3f s after its work", i, lag);
    }
}
END_TEST

START_TEST(test_bad_args_and_idle_close) {
    uv_loop_t loop;
    fanns_err_t err;
    fanns_pool_t *p = NULL;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(fanns_pool_new(&loop, 0, "x", &p, &err), FANNS_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_uint_ge(fanns_pool_default_threads(), 1);
    /* Closed with nothing in flight: the loop ends at once. */
    ck_assert_int_eq(fanns_pool_new(&loop, 2, NULL, &g_pool, &err), 0);
    fanns_pool_close(g_pool);
    fanns_pool_close(g_pool);
    finish(&loop);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server/pool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fifo_and_threads);
    tcase_add_test(tc, test_parallel);
    tcase_add_test(tc, test_quiet_completion_sweep);
    tcase_add_test(tc, test_bad_args_and_idle_close);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
