/*
 * bench_readbound.c: how fast one core can read given rows of a float32 matrix, the floor
 * under any exact filtered scan (driven by run_readbound.py; results in
 * docs/benchmarks-readbound.md).
 *
 * A filtered scan reads every matching row once, from rows spread over the whole
 * collection, so it is bound by how fast scattered rows come in from memory, not by the
 * arithmetic.  This program takes the very row sets the driver also hands numpy (ids.npy:
 * one set per row, ascending ids, -1 padding) and reads them the way storage/coll.c's scan
 * does: the matrix on fanns_mem (2 MiB aligned, huge pages advised), the whole of row
 * i + ahead prefetched while row i is read.  Per set it times
 *   read: one float of each of the row's cache lines (nothing but the loads), and
 *   dot:  fanns_dist_dot with a query (what the scan computes, without its heap),
 * and prints one JSON line per set and (mode, ahead): the median nanoseconds per row over
 * its reps.  All visits go in one shuffled order, so the rows are as cold for every
 * configuration (the matrix is far larger than the caches).
 *
 * usage: bench_readbound BASE.npy IDS.npy [--ahead 0,2,4,8] [--reps 3]
 */
/* bench_common.h is shared with the other harnesses; this program uses only its .npy reader
 * and clock, so its other static functions are unused here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_common.h"
#pragma GCC diagnostic pop
#include "distance.h"
#include "mem.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline void prefetch_row(const float *p, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch((const char *)p + i);
}

/* Seconds to read set (n ids) of m (dim columns), mode 0 sum, 1 dot with q. */
static double read_set(const float *m, size_t dim, const int32_t *set, size_t n, int mode, const float *q, int ahead,
                       volatile float *sink) {
    const size_t bytes = dim * sizeof(float);
    double t = bench_now();
    float acc = 0.0f;
    for (size_t i = 0; i < n && i < (size_t)ahead; i++) prefetch_row(m + (size_t)set[i] * dim, bytes);
    for (size_t i = 0; i < n; i++) {
        if (i + (size_t)ahead < n) prefetch_row(m + (size_t)set[i + ahead] * dim, bytes);
        const float *r = m + (size_t)set[i] * dim;
        if (mode) {
            acc += fanns_dist_dot(q, r, dim);
        } else {
            for (size_t d = 0; d < dim; d += 16) acc += r[d]; /* one float of every line */
        }
    }
    *sink += acc;
    return bench_now() - t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BASE.npy IDS.npy [--ahead 0,2,4,8] [--reps 3]\n", argv[0]);
        return 2;
    }
    int aheads[16] = {0, 2, 4, 8}, na = 4, reps = 3;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ahead")) {
            na = 0;
            for (char *s = argv[i + 1]; *s && na < 16;) {
                aheads[na++] = atoi(s);
                s = strchr(s, ',');
                if (!s) break;
                s++;
            }
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    bench_npy_t base, ids;
    if (bench_npy_read(argv[1], &base) || bench_npy_read(argv[2], &ids)) return 1;
    if (!base.is_float || ids.is_float || ids.cols == 0) {
        fprintf(stderr, "BASE must be float32, IDS int32 with one set per row\n");
        return 1;
    }
    fanns_dist_init();
    const size_t dim = base.cols, n = base.rows, bytes = n * dim * sizeof(float);
    float *m = fanns_mem_alloc(bytes); /* as storage/vecs.c keeps the vectors */
    if (!m) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memcpy(m, base.data, bytes);
    free(base.data);
    float *q = malloc(dim * sizeof(float));
    for (size_t d = 0; d < dim; d++) q[d] = m[d]; /* row 0: any finite query does */
    const int32_t *sets = ids.data;
    const size_t nsets = ids.rows;
    for (size_t s = 0; s < nsets; s++)
        for (size_t j = 0; j < ids.cols; j++)
            if (sets[s * ids.cols + j] >= (int32_t)n) {
                fprintf(stderr, "id %d out of range\n", sets[s * ids.cols + j]);
                return 1;
            }
    /* Every (set, mode, ahead) is read reps times; the visits go in one shuffled order, so
     * no configuration inherits another's cache lines more than any other does. */
    const size_t nconf = 2 * (size_t)na, nvis = nsets * nconf * (size_t)reps;
    double *ns = malloc(nvis * sizeof(double));
    size_t *order = malloc(nvis * sizeof(size_t));
    if (!ns || !order || !q) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    uint64_t rng = 88172645463325252ull;
    for (size_t v = 0; v < nvis; v++) order[v] = v;
    for (size_t v = nvis; v > 1; v--) { /* xorshift64 Fisher-Yates */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        size_t j = rng % v, t = order[v - 1];
        order[v - 1] = order[j];
        order[j] = t;
    }
    volatile float sink = 0;
    size_t total_rows = 0;
    for (size_t vi = 0; vi < nvis; vi++) {
        size_t v = order[vi], s = v / (nconf * (size_t)reps), c = (v / (size_t)reps) % nconf;
        const int32_t *set = sets + s * ids.cols;
        size_t len = 0;
        while (len < ids.cols && set[len] >= 0) len++;
        ns[v] = len ? read_set(m, dim, set, len, (int)(c % 2), q, aheads[c / 2], &sink) * 1e9 / (double)len : 0.0;
        total_rows += len;
    }
    /* One line per set and configuration: the median of its reps. */
    double med[64];
    for (size_t s = 0; s < nsets; s++)
        for (size_t c = 0; c < nconf; c++) {
            size_t base_v = (s * nconf + c) * (size_t)reps, k = 0;
            for (int r = 0; r < reps && k < 64; r++) med[k++] = ns[base_v + (size_t)r];
            qsort(med, k, sizeof(double), cmp_double);
            printf("{\"set\":%zu,\"mode\":\"%s\",\"ahead\":%d,\"ns_per_row\":%.1f}\n", s, c % 2 ? "dot" : "read",
                   aheads[c / 2], med[k / 2]);
        }
    fprintf(stderr, "bench_readbound: %zu rows read, sink %g\n", total_rows, (double)sink);
    fanns_mem_free(m, bytes);
    free(q);
    free(ns);
    free(order);
    free(ids.data);
    return 0;
}
