/*
 * json_fastvec.c: taking the query vector out of a request body before jansson parses it
 * (see json_fastvec.h).
 */
#include "json_fastvec.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

#if LDBL_MANT_DIG == 64 && FLT_RADIX == 2 && defined(__x86_64__)
/* The 64-bit significand of a normal x87 extended long double: its first eight bytes (the
 * integer bit included), read without the libm round trip frexpl/ldexpl costs. */
static inline uint64_t significand64(long double r) {
    uint64_t b;
    memcpy(&b, &r, sizeof(b));
    return b;
}
#elif LDBL_MANT_DIG >= 64 && FLT_RADIX == 2
static inline uint64_t significand64(long double r) {
    int ex2;
    return (uint64_t)ldexpl(frexpl(r, &ex2), 64);
}
#endif

/* Powers of ten exactly representable in long double's 64-bit significand (5^27 < 2^63). */
#define FAST_POW10_MAX 27

static const uint64_t P10U[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* Reads the run of decimal digits at s[j..len) into *m (m = m * 10^digits + run), eight at a
 * time where eight bytes are left (SWAR: one 64-bit load, a digit test per byte and three
 * multiplies for the value).  Sets *ovf once *m no longer fits in 64 bits (the digits are
 * still consumed).  Returns the index after the run; *nd gets the number of digits. */
static inline size_t scan_digits(const char *s, size_t j, size_t len, uint64_t *m, int *nd, bool *ovf) {
    while (j + 8 <= len) {
        uint64_t v, x, flag;
        unsigned n;
        memcpy(&v, s + j, 8);
        x = v ^ 0x3030303030303030ull; /* '0'..'9' -> 0..9; every other byte above 9 */
        flag = (((x & 0x7f7f7f7f7f7f7f7full) + 0x7676767676767676ull) | x) & 0x8080808080808080ull;
        n = flag ? (unsigned)__builtin_ctzll(flag) >> 3 : 8; /* digits before the first non-digit */
        if (n == 0) return j;
        /* The n digits moved to the high bytes (little-endian: the last digit lowest weight),
         * zeros in front, then the pairwise combination 10 / 100 / 10000. */
        x <<= 8 * (8 - n);
        x = x * 10 + (x >> 8);
        x = (((x & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
             (((x >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >> 32;
        if (__builtin_mul_overflow(*m, P10U[n], m) || __builtin_add_overflow(*m, x, m)) *ovf = true;
        *nd += (int)n;
        j += n;
        if (n < 8) return j;
    }
    for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
        if (__builtin_mul_overflow(*m, (uint64_t)10, m) || __builtin_add_overflow(*m, (uint64_t)(s[j] - '0'), m))
            *ovf = true;
        (*nd)++;
    }
    return j;
}

#if LDBL_MANT_DIG >= 64 && FLT_RADIX == 2
/* m * 10^e10 rounded to float when that can be done exactly without strtof; false if not
 * (too many digits, far exponents, subnormals, overflow, or too near a rounding midpoint). */
static inline bool fast_value(uint64_t m, int e10, bool neg, float *out) {
    static const long double p10[FAST_POW10_MAX + 1] = {
        1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
        1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
    if (m == 0) {
        *out = neg ? -0.0f : 0.0f;
        return true;
    }
    if (e10 >= -22 && e10 <= 22) {
        /* In double (SSE, no x87): m rounded once, 10^e10 exact for e10 >= 0 (5^22 < 2^53)
         * and rounded once for e10 < 0 (a multiply, not a divide: this is the latency every
         * number waits for), and the product rounded once: three roundings of at most half
         * a unit each in relative terms, so r is within 3 units of r's last place of the
         * exact value.  Rounding r to float is then correct unless r lies within those units
         * of a float rounding midpoint (the low 29 of the 53 significand bits = 2^28); a
         * margin of 4 sends those few to the paths below. */
        static const double p10d[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        static const double n10d[23] = {1e-0,  1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,
                                        1e-8,  1e-9,  1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15,
                                        1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22};
        double md = (double)m;
        double rd = md * (e10 >= 0 ? p10d[e10] : n10d[-e10]);
        if (rd >= (double)FLT_MIN && rd <= (double)FLT_MAX) {
            uint64_t b;
            memcpy(&b, &rd, sizeof(b));
            uint64_t low = b & ((1ull << 29) - 1);
            if (low + 4 < (1ull << 28) || low > (1ull << 28) + 4) {
                *out = neg ? -(float)rd : (float)rd;
                return true;
            }
        }
    }
    if (e10 < -FAST_POW10_MAX || e10 > FAST_POW10_MAX) return false;
    /* m and 10^|e10| are exact, so r is the exact value rounded once to 64 bits. */
    long double r = e10 >= 0 ? (long double)m * p10[e10] : (long double)m / p10[-e10];
    if (r < (long double)FLT_MIN || r > (long double)FLT_MAX) return false; /* subnormal or overflow */
    /* Rounding r to float gives the exact value's correct rounding unless r lies within one
     * 64-bit unit of a float rounding midpoint (low 40 of the 64 significand bits = 2^39):
     * only then could the exact value be on the midpoint's other side. */
    uint64_t bits = significand64(r);
    uint64_t low = bits & ((1ull << 40) - 1);
    if (low + 1 >= (1ull << 39) && low <= (1ull << 39) + 1) return false;
    *out = neg ? -(float)r : (float)r;
    return true;
}
#endif

/* Parses the JSON number at s[i] (RFC 8259 grammar, as strict as jansson) into *out, in one
 * pass.  Returns its length, 0 if s[i] does not start a number.  A number the fast
 * conversion cannot round exactly goes through strtof (NAN if it is 64 bytes or longer). */
static size_t scan_number(const char *s, size_t i, size_t len, float *out) {
    size_t j = i;
    uint64_t m = 0;
    int nd = 0, fd = 0, e10 = 0;
    bool neg = false, ovf = false;
    if (j < len && s[j] == '-') {
        neg = true;
        j++;
    }
    if (j >= len) return 0;
    if (s[j] == '0') j++;
    else if (s[j] >= '1' && s[j] <= '9') j = scan_digits(s, j, len, &m, &nd, &ovf);
    else return 0;
    if (j < len && s[j] == '.') {
        size_t d = j + 1;
        j = scan_digits(s, d, len, &m, &fd, &ovf);
        if (j == d) return 0;
    }
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        bool eneg = false;
        int ex = 0;
        j++;
        if (j < len && (s[j] == '+' || s[j] == '-')) eneg = s[j++] == '-';
        size_t d = j;
        for (; j < len && s[j] >= '0' && s[j] <= '9'; j++)
            if (ex <= 100000) ex = ex * 10 + (s[j] - '0');
        if (j == d) return 0;
        if (ex > 100000) ovf = true; /* strtof sorts out 0 or infinity */
        e10 = eneg ? -ex : ex;
    }
    e10 -= fd;
#if LDBL_MANT_DIG >= 64 && FLT_RADIX == 2
    if (!ovf && fast_value(m, e10, neg, out)) return j - i;
#endif
    {
        char tmp[64];
        size_t n = j - i;
        if (n >= sizeof(tmp)) {
            *out = NAN;
        } else {
            memcpy(tmp, s + i, n);
            tmp[n] = 0;
            *out = strtof(tmp, NULL);
        }
    }
    return j - i;
}

float fanns__json_parse_float(const char *s, size_t n) {
    float f;
    if (scan_number(s, 0, n, &f) != n) return NAN;
    return f;
}

/* Parses the array starting at s[i] == '['; returns the index after ']' or 0 if it is not a
 * flat array of numbers. */
static size_t parse_array(const char *s, size_t i, size_t len, fanns_fastvec_t *fv) {
    size_t cap = 0;
    i = skip_ws(s, i + 1, len);
    if (i < len && s[i] == ']') return i + 1;
    for (;;) {
        float x;
        if (fv->n == cap) {
            cap = cap ? cap * 2 : 512;
            float *nv = realloc(fv->v, cap * sizeof(float));
            if (!nv) return 0;
            fv->v = nv;
        }
        size_t nl = scan_number(s, i, len, &x);
        if (nl == 0 || nl >= 64) return 0; /* longer numbers take the jansson path */
        if (!isfinite(x)) fv->bad = 1;
        fv->v[fv->n++] = x;
        i = skip_ws(s, i + nl, len);
        if (i < len && s[i] == ',') {
            i = skip_ws(s, i + 1, len);
            continue;
        }
        if (i < len && s[i] == ']') return i + 1;
        return 0;
    }
}

char *fanns__json_fastvec(const char *s, size_t len, size_t *out_len, fanns_fastvec_t *fv) {
    int depth = 0;
    memset(fv, 0, sizeof(*fv));
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            /* A string: at depth 1 it may be the key we want. */
            size_t start = i + 1, j = start;
            while (j < len && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
            if (j >= len) return NULL;
            size_t kl = j - start;
            i = j;
            if (depth != 1) continue;
            const char *key = NULL;
            if (kl == 6 && memcmp(s + start, "vector", 6) == 0) key = "vector";
            else if (kl == 5 && memcmp(s + start, "query", 5) == 0) key = "query";
            if (!key) continue;
            size_t k = skip_ws(s, j + 1, len);
            if (k >= len || s[k] != ':') continue; /* a string value, not a key */
            k = skip_ws(s, k + 1, len);
            if (k >= len || s[k] != '[') continue;
            size_t end = parse_array(s, k, len, fv);
            if (end == 0 || fv->n == 0) {
                free(fv->v);
                memset(fv, 0, sizeof(*fv));
                return NULL;
            }
            char *copy = malloc(len - (end - k) + 3);
            if (!copy) {
                free(fv->v);
                memset(fv, 0, sizeof(*fv));
                return NULL;
            }
            memcpy(copy, s, k);
            memcpy(copy + k, "[]", 2);
            memcpy(copy + k + 2, s + end, len - end);
            *out_len = k + 2 + (len - end);
            copy[*out_len] = 0;
            fv->key = key;
            return copy;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
    }
    return NULL;
}

/* ---- upsert bodies ------------------------------------------------------------------ */

enum { K_OTHER = 0, K_POINTS, K_BATCH, K_VECTORS, K_VECTOR };

typedef struct frame {
    char type;              /* '{' or '[' */
    int key;                /* for '{': the key whose value comes next; for '[': its own key */
} frame_t;

static int key_id(const char *s, size_t n) {
    if (n == 6 && memcmp(s, "points", 6) == 0) return K_POINTS;
    if (n == 5 && memcmp(s, "batch", 5) == 0) return K_BATCH;
    if (n == 7 && memcmp(s, "vectors", 7) == 0) return K_VECTORS;
    if (n == 6 && memcmp(s, "vector", 6) == 0) return K_VECTOR;
    return K_OTHER;
}

void fanns__json_fastvecs_free(fanns_fastvecs_t *t) {
    free(t->vals);
    free(t->starts);
    free(t->bad);
    memset(t, 0, sizeof(*t));
}

/* Appends bytes to a growing buffer; false on allocation failure. */
static bool put(char **out, size_t *o, size_t *cap, const char *p, size_t n) {
    if (*o + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 4096) + n;
        char *b = realloc(*out, nc);
        if (!b) return false;
        *out = b;
        *cap = nc;
    }
    memcpy(*out + *o, p, n);
    *o += n;
    return true;
}

char *fanns__json_fastvecs_upsert(const char *s, size_t len, size_t *out_len, fanns_fastvecs_t *t) {
    frame_t st[8];
    int depth = 0;
    char *out = NULL;
    size_t o = 0, cap = 0, last = 0, vcap = 0, scap = 0;
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = i + 1, j = start;
            while (j < len && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
            if (j >= len) goto none;
            i = j;
            if (depth > 0 && st[depth - 1].type == '{') {
                size_t k = skip_ws(s, j + 1, len);
                if (k < len && s[k] == ':') st[depth - 1].key = key_id(s + start, j - start);
            }
            continue;
        }
        if (c == '[') {
            /* points[i].vector: stack {top} [points] {point}, key vector.
             * batch.vectors[i]: stack {top} {batch} [vectors]. */
            bool take = (depth == 3 && st[0].type == '{' && st[1].type == '[' && st[1].key == K_POINTS &&
                         st[2].type == '{' && st[2].key == K_VECTOR) ||
                        (depth == 3 && st[0].type == '{' && st[0].key == K_BATCH && st[1].type == '{' &&
                         st[1].key == K_VECTORS && st[2].type == '[' && st[2].key == K_VECTORS);
            if (take) {
                fanns_fastvec_t fv;
                memset(&fv, 0, sizeof(fv));
                size_t end = parse_array(s, i, len, &fv);
                if (end && fv.n > 0) {
                    if (t->n + 2 > scap) {
                        scap = scap ? scap * 2 : 256;
                        size_t *ns = realloc(t->starts, scap * sizeof(*ns));
                        unsigned char *nb = realloc(t->bad, scap);
                        if (ns) t->starts = ns;
                        if (nb) t->bad = nb;
                        if (!ns || !nb) {
                            free(fv.v);
                            goto none;
                        }
                    }
                    size_t base = t->n ? t->starts[t->n] : 0;
                    if (base + fv.n > vcap) {
                        vcap = (vcap ? vcap * 2 : 65536) + fv.n;
                        float *nv = realloc(t->vals, vcap * sizeof(float));
                        if (!nv) {
                            free(fv.v);
                            goto none;
                        }
                        t->vals = nv;
                    }
                    memcpy(t->vals + base, fv.v, fv.n * sizeof(float));
                    free(fv.v);
                    t->starts[t->n] = base;
                    t->starts[t->n + 1] = base + fv.n;
                    t->bad[t->n] = (unsigned char)fv.bad;
                    char mark[48];
                    int ml = snprintf(mark, sizeof(mark), "\"\\u0002fv:%zu\"", t->n);
                    t->n++;
                    if (!put(&out, &o, &cap, s + last, i - last) || !put(&out, &o, &cap, mark, (size_t)ml)) goto none;
                    last = end;
                    i = end - 1;
                    continue;
                }
                free(fv.v);
            }
        }
        if (c == '{' || c == '[') {
            if (depth == 8) goto none; /* deeper than any vector we take: nothing to do */
            /* An array remembers the key it is the value of; an object starts with none. */
            int k = (c == '[' && depth > 0 && st[depth - 1].type == '{') ? st[depth - 1].key : K_OTHER;
            st[depth].type = c;
            st[depth].key = k;
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) goto none;
            depth--;
        }
    }
    if (t->n == 0) goto none;
    if (!put(&out, &o, &cap, s + last, len - last)) goto none;
    out[o] = 0;
    *out_len = o;
    return out;
none:
    free(out);
    fanns__json_fastvecs_free(t);
    return NULL;
}
