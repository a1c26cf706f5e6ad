/*
 * json_fastvec.c: taking the query vector out of a request body before jansson parses it
 * (see json_fastvec.h).
 */
#include "json_fastvec.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Length of a JSON number starting at s[i] (RFC 8259 grammar), 0 if none. */
static size_t number_len(const char *s, size_t i, size_t len) {
    size_t j = i;
    if (j < len && s[j] == '-') j++;
    if (j >= len) return 0;
    if (s[j] == '0') j++;
    else if (s[j] >= '1' && s[j] <= '9') while (j < len && s[j] >= '0' && s[j] <= '9') j++;
    else return 0;
    if (j < len && s[j] == '.') {
        j++;
        size_t d = j;
        while (j < len && s[j] >= '0' && s[j] <= '9') j++;
        if (j == d) return 0;
    }
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < len && (s[j] == '+' || s[j] == '-')) j++;
        size_t d = j;
        while (j < len && s[j] >= '0' && s[j] <= '9') j++;
        if (j == d) return 0;
    }
    return j - i;
}

/* Parses the array starting at s[i] == '['; returns the index after ']' or 0 if it is not a
 * flat array of numbers. */
static size_t parse_array(const char *s, size_t i, size_t len, fanns_fastvec_t *fv) {
    size_t cap = 0;
    char tmp[64];
    i = skip_ws(s, i + 1, len);
    if (i < len && s[i] == ']') return i + 1;
    for (;;) {
        size_t nl = number_len(s, i, len);
        if (nl == 0 || nl >= sizeof(tmp)) return 0;
        if (fv->n == cap) {
            cap = cap ? cap * 2 : 512;
            float *nv = realloc(fv->v, cap * sizeof(float));
            if (!nv) return 0;
            fv->v = nv;
        }
        memcpy(tmp, s + i, nl);
        tmp[nl] = 0;
        errno = 0;
        float x = strtof(tmp, NULL);
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
