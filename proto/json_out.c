/*
 * json_out.c: JSON text written directly (see json_out.h).
 *
 * Float32 formatting: the value is scaled by a power of ten (a double table) so that its 9
 * leading digits are the integer part, and rounded.  The double arithmetic is off by far less
 * than one unit of the 9th digit (relative error about 2^-52), and a 9-digit decimal within a
 * few units of its last digit of a float32 reads back as that float32 (half its spacing is at
 * least 2^-25 relative, 3e-8, against 5e-9 for half a unit of the 9th digit), so the result
 * never depends on how ties round.
 */
#include "json_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(fanns_jbuf_t *b, size_t need) {
    if (b->oom) return false;
    if (b->len + need + 1 <= b->cap) return true;
    size_t nc = b->cap ? b->cap * 2 : 1024;
    while (nc < b->len + need + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

void fanns__jbuf_put(fanns_jbuf_t *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void fanns__jbuf_puts(fanns_jbuf_t *b, const char *s) { fanns__jbuf_put(b, s, strlen(s)); }

/* Decimal digits of v into out (no terminator); returns their count. */
static int u64_digits(char *out, uint64_t v) {
    char t[20];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

void fanns__jbuf_u64(fanns_jbuf_t *b, uint64_t v) {
    char t[20];
    fanns__jbuf_put(b, t, (size_t)u64_digits(t, v));
}

/* 10^k for k in [P10_MIN, P10_MAX], as the compiler rounds the literals (correctly). */
#define P10_MIN (-46)
#define P10_MAX 55
static const double P10[P10_MAX - P10_MIN + 1] = {
    1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41, 1e-40, 1e-39,
    1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33, 1e-32, 1e-31,
    1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23,
    1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15,
    1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7,
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1,
    1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
    1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25,
    1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33,
    1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41,
    1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49,
    1e50, 1e51, 1e52, 1e53, 1e54, 1e55,

};

int fanns__json_fmt_f32(char *out, float f) {
    char dig[12];
    int n = 0, e, nd;
    double d = (double)f;
    if (!isfinite(f)) {
        memcpy(out, "null", 4);
        return 4;
    }
    if (signbit(f)) {
        out[n++] = '-';
        d = -d;
    }
    if (d == 0) {
        memcpy(out + n, "0.0", 3);
        return n + 3;
    }
    /* e = floor(log10(d)) from the binary exponent (log10(2) ~ 0.30103), then corrected. */
    int be;
    (void)frexp(d, &be);
    e = (int)floor((be - 1) * 0.30102999566398120);
    if (e + 1 <= P10_MAX && d >= P10[e + 1 - P10_MIN]) e++;
    if (d < P10[e - P10_MIN]) e--;
    /* 9 significant digits: D in [1e8, 1e9). */
    uint64_t D = (uint64_t)llround(d * P10[8 - e - P10_MIN]);
    if (D >= 1000000000u) {
        D = (D + 5) / 10;
        e++;
    }
    nd = u64_digits(dig, D);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    if (e < -4 || e >= 9) {
        /* d.ddde-7 */
        out[n++] = dig[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, dig + 1, (size_t)(nd - 1));
            n += nd - 1;
        }
        out[n++] = 'e';
        if (e < 0) {
            out[n++] = '-';
            e = -e;
        }
        n += u64_digits(out + n, (uint64_t)e);
    } else if (e < 0) {
        /* 0.000ddd */
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -e - 1; i++) out[n++] = '0';
        memcpy(out + n, dig, (size_t)nd);
        n += nd;
    } else {
        /* ddd.ddd, or ddd.0 */
        for (int i = 0; i <= e; i++) out[n++] = i < nd ? dig[i] : '0';
        out[n++] = '.';
        if (nd > e + 1) {
            memcpy(out + n, dig + e + 1, (size_t)(nd - e - 1));
            n += nd - e - 1;
        } else {
            out[n++] = '0';
        }
    }
    return n;
}

void fanns__jbuf_f32(fanns_jbuf_t *b, float f) {
    char t[32];
    fanns__jbuf_put(b, t, (size_t)fanns__json_fmt_f32(t, f));
}

void fanns__jbuf_f64(fanns_jbuf_t *b, double d) {
    char t[40];
    int n;
    if (!isfinite(d)) {
        fanns__jbuf_put(b, "null", 4);
        return;
    }
    n = snprintf(t, sizeof(t), "%.17g", d);
    if (n < 0 || n >= (int)sizeof(t) - 2) return;
    if (!strpbrk(t, ".eE")) {
        t[n++] = '.';
        t[n++] = '0';
    }
    fanns__jbuf_put(b, t, (size_t)n);
}

static int dump_cb(const char *buffer, size_t size, void *data) {
    fanns_jbuf_t *b = data;
    fanns__jbuf_put(b, buffer, size);
    return b->oom ? -1 : 0;
}

void fanns__jbuf_json(fanns_jbuf_t *b, const json_t *v) {
    if (!v) {
        fanns__jbuf_put(b, "null", 4);
        return;
    }
    if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) b->oom = true;
}
