/*
 * bench_common.h: helpers shared by the in-process benchmark programs (bench_hnsw.c, a C
 * program, and bench_hnswlib.cpp, a C++ one), so both read the data, time the queries and
 * measure recall and memory the same way.
 *
 * What it holds: a minimal reader for NumPy .npy files (format versions 1-3, little-endian
 * float32 '<f4' or int32 '<i4', C order, one or two dimensions; that is what the workload
 * generator writes), a monotonic clock, recall@k against exact ground truth, peak and current
 * resident memory, and the command-line parsing both programs use.
 *
 * Everything is static: the header is included by exactly one translation unit per program.
 * Reference for the file format: numpy/lib/format.py ("NPY format" description).
 */
#ifndef FANNS_BENCH_COMMON_H
#define FANNS_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct bench_npy {
    void *data;      /* rows * cols elements, owned: free() it */
    size_t rows, cols;
    int is_float;    /* 1 for '<f4', 0 for '<i4' */
} bench_npy_t;

/* Reads path into *out.  Returns 0, or -1 with a message on stderr. */
static int bench_npy_read(const char *path, bench_npy_t *out) {
    unsigned char pre[12];
    char *hdr = NULL;
    FILE *f = fopen(path, "rb");
    memset(out, 0, sizeof(*out));
    if (!f) {
        perror(path);
        return -1;
    }
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto bad;
    {
        size_t hlen;
        if (pre[6] == 1) {
            hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        } else if (pre[6] == 2 || pre[6] == 3) {
            if (fread(pre + 10, 1, 2, f) != 2) goto bad;
            hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        } else {
            goto bad;
        }
        hdr = (char *)malloc(hlen + 1);
        if (!hdr || fread(hdr, 1, hlen, f) != hlen) goto bad;
        hdr[hlen] = 0;
    }
    if (strstr(hdr, "'<f4'"))
        out->is_float = 1;
    else if (strstr(hdr, "'<i4'"))
        out->is_float = 0;
    else
        goto bad;
    if (!strstr(hdr, "'fortran_order': False")) goto bad;
    {
        const char *s = strstr(hdr, "'shape': (");
        char *end;
        if (!s) goto bad;
        s += strlen("'shape': (");
        out->rows = strtoull(s, &end, 10);
        if (end == s) goto bad;
        out->cols = 1;
        if (*end == ',' && end[1] == ' ' && end[2] >= '0' && end[2] <= '9') out->cols = strtoull(end + 2, &end, 10);
    }
    {
        size_t n = out->rows * out->cols;
        out->data = malloc(n * 4 + 1);
        if (!out->data || fread(out->data, 4, n, f) != n) goto bad;
    }
    free(hdr);
    fclose(f);
    return 0;
bad:
    fprintf(stderr, "%s: not a supported .npy file (need little-endian <f4 or <i4, C order)\n", path);
    free(hdr);
    free(out->data);
    out->data = NULL;
    fclose(f);
    return -1;
}

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak resident set size of this process so far, in bytes (Linux reports ru_maxrss in KiB). */
static long long bench_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_maxrss * 1024;
}

/* Current resident set size in bytes, from /proc/self/statm; -1 if unreadable. */
static long long bench_cur_rss(void) {
    long long pages_total = 0, pages_res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%lld %lld", &pages_total, &pages_res) != 2) pages_res = -1;
    fclose(f);
    return pages_res < 0 ? -1 : pages_res * sysconf(_SC_PAGESIZE);
}

/* Hits of got[0..ngot) among the first k ids of truth (ids < 0 in truth are padding). */
static int bench_hits(const int32_t *truth, size_t k, const long long *got, size_t ngot) {
    int hits = 0;
    for (size_t i = 0; i < ngot && i < k; i++)
        for (size_t j = 0; j < k; j++)
            if (truth[j] >= 0 && (long long)truth[j] == got[i]) {
                hits++;
                break;
            }
    return hits;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Options common to the in-process programs. */
typedef struct bench_opts {
    const char *base, *queries, *gt;
    size_t efs[32], nef;
    unsigned m, efc, threads, k, reps;
    double min_time; /* seconds per ef: repeat passes until both reps and min_time are reached */
} bench_opts_t;

static void bench_usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --base B.npy --queries Q.npy --gt G.npy [--ef 16,32,...] [--m 16] [--efc 200]\n"
            "          [--threads N (0 = all cores)] [--k 10] [--reps 5] [--min-time 0.5]\n"
            "Builds the index over B, then for each ef runs every query of Q single-threaded,\n"
            "repeating whole passes, and prints JSON lines (build, one per ef, memory).\n",
            prog);
}

/* Returns 0, or -1 after printing the usage. */
static int bench_parse(int argc, char **argv, bench_opts_t *o) {
    static const size_t def_efs[] = {16, 32, 64, 96, 128, 192, 256, 384};
    memset(o, 0, sizeof(*o));
    o->m = 16;
    o->efc = 200;
    o->k = 10;
    o->reps = 5;
    o->min_time = 0.5;
    for (size_t i = 0; i < sizeof(def_efs) / sizeof(def_efs[0]); i++) o->efs[o->nef++] = def_efs[i];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        i++;
        if (!strcmp(a, "--base")) o->base = v;
        else if (!strcmp(a, "--queries")) o->queries = v;
        else if (!strcmp(a, "--gt")) o->gt = v;
        else if (!strcmp(a, "--m")) o->m = (unsigned)atoi(v);
        else if (!strcmp(a, "--efc")) o->efc = (unsigned)atoi(v);
        else if (!strcmp(a, "--threads")) o->threads = (unsigned)atoi(v);
        else if (!strcmp(a, "--k")) o->k = (unsigned)atoi(v);
        else if (!strcmp(a, "--reps")) o->reps = (unsigned)atoi(v);
        else if (!strcmp(a, "--min-time")) o->min_time = atof(v);
        else if (!strcmp(a, "--ef")) {
            char *end;
            o->nef = 0;
            for (const char *s = v; *s && o->nef < 32; s = *end ? end + 1 : end) {
                o->efs[o->nef++] = strtoull(s, &end, 10);
                if (end == s) goto usage;
            }
        } else goto usage;
    }
    if (!o->base || !o->queries || !o->gt || o->m == 0 || o->efc == 0 || o->k == 0 || o->reps == 0 || o->nef == 0)
        goto usage;
    if (o->threads == 0) o->threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    return 0;
usage:
    bench_usage(argv[0]);
    return -1;
}

/* Loads the three files and checks their shapes agree.  Returns 0 or -1. */
static int bench_load(const bench_opts_t *o, bench_npy_t *base, bench_npy_t *q, bench_npy_t *gt) {
    if (bench_npy_read(o->base, base) || bench_npy_read(o->queries, q) || bench_npy_read(o->gt, gt)) return -1;
    if (!base->is_float || !q->is_float || gt->is_float || base->cols != q->cols || gt->rows != q->rows ||
        gt->cols < o->k) {
        fprintf(stderr, "inconsistent inputs: base %zux%zu, queries %zux%zu, gt %zux%zu, k %u\n", base->rows, base->cols,
                q->rows, q->cols, gt->rows, gt->cols, o->k);
        return -1;
    }
    return 0;
}

/* One search: the k nearest ids to q with beam width ef into ids[0..*n).  Returns 0 or -1. */
typedef int (*bench_search_fn)(void *ctx, const float *q, size_t k, size_t ef, long long *ids, size_t *n);

typedef struct bench_point {
    double recall, qps_best, qps_median;
    unsigned passes;
} bench_point_t;

/* Runs every query once to warm up and measure recall@k, then repeats timed passes over all
 * queries until at least o->reps passes and o->min_time seconds; QPS of a pass is
 * queries / pass time.  Returns 0 or -1. */
static int bench_run_ef(const bench_opts_t *o, const bench_npy_t *q, const bench_npy_t *gt, size_t ef,
                        bench_search_fn fn, void *ctx, bench_point_t *pt) {
    long long ids[1024];
    size_t n, nq = q->rows, d = q->cols, k = o->k;
    const float *qv = (const float *)q->data;
    const int32_t *g = (const int32_t *)gt->data;
    double qps[4096], t0 = bench_now();
    long hits = 0, possible = 0;
    unsigned passes = 0;
    if (k > 1024) return -1;
    for (size_t i = 0; i < nq; i++) {
        if (fn(ctx, qv + i * d, k, ef, ids, &n)) return -1;
        hits += bench_hits(g + i * gt->cols, k, ids, n);
        for (size_t j = 0; j < k; j++) possible += g[i * gt->cols + j] >= 0;
    }
    pt->recall = possible ? (double)hits / (double)possible : 1.0;
    t0 = bench_now();
    while (passes < 4096 && (passes < o->reps || bench_now() - t0 < o->min_time)) {
        double s = bench_now();
        for (size_t i = 0; i < nq; i++)
            if (fn(ctx, qv + i * d, k, ef, ids, &n)) return -1;
        qps[passes++] = (double)nq / (bench_now() - s);
    }
    qsort(qps, passes, sizeof(double), bench_cmp_double);
    pt->qps_best = qps[passes - 1];
    pt->qps_median = passes % 2 ? qps[passes / 2] : 0.5 * (qps[passes / 2 - 1] + qps[passes / 2]);
    pt->passes = passes;
    return 0;
}

#endif
