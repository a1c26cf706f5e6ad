/*
 * json_u64.c: carrying u64 literals through jansson (see json_u64.h).
 */
#include "json_u64.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pid.h"

#define MARK "\\u0001u64:"

/* True for a run of digits whose value is above INT64_MAX and at most UINT64_MAX. */
static bool big_u64(const char *p, size_t n) {
    if (n < 19 || n > 20) return false;
    if (n == 19) return memcmp(p, "9223372036854775807", 19) > 0;
    return memcmp(p, "18446744073709551615", 20) <= 0;
}

/* True if body has a run of 19 or more digits anywhere (a tight loop; most bodies have none,
 * and then the careful pass below is skipped). */
static bool has_long_digit_run(const char *body, size_t len) {
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)body[i] - '0';
        run = d < 10 ? run + 1 : 0;
        if (run >= 19) return true;
    }
    return false;
}

char *fanns__json_u64_protect(const char *body, size_t len, size_t *out_len) {
    if (!has_long_digit_run(body, len)) return NULL;
    char *out = NULL;
    size_t o = 0, cap = 0, last = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
            continue;
        }
        if (c < '0' || c > '9' || (i > 0 && (body[i - 1] == '-' || body[i - 1] == '.' || body[i - 1] == 'e' || body[i - 1] == 'E' || body[i - 1] == '+' || (body[i - 1] >= '0' && body[i - 1] <= '9'))))
            continue;
        size_t j = i;
        while (j < len && body[j] >= '0' && body[j] <= '9') j++;
        bool plain_int = j == len || !(body[j] == '.' || body[j] == 'e' || body[j] == 'E');
        if (plain_int && big_u64(body + i, j - i)) {
            size_t need = o + (i - last) + (j - i) + sizeof(MARK) + 4 + (len - j);
            if (need > cap) {
                cap = need * 2;
                char *n = realloc(out, cap);
                if (!n) {
                    free(out);
                    return NULL;
                }
                out = n;
            }
            memcpy(out + o, body + last, i - last);
            o += i - last;
            out[o++] = '"';
            memcpy(out + o, MARK, sizeof(MARK) - 1);
            o += sizeof(MARK) - 1;
            memcpy(out + o, body + i, j - i);
            o += j - i;
            out[o++] = '"';
            last = j;
        }
        i = j - 1;
    }
    if (!out) return NULL;
    if (o + (len - last) + 1 > cap) {
        char *n = realloc(out, o + (len - last) + 1);
        if (!n) {
            free(out);
            return NULL;
        }
        out = n;
    }
    memcpy(out + o, body + last, len - last);
    o += len - last;
    out[o] = 0;
    *out_len = o;
    return out;
}

void fanns__json_u64_payload(json_t *v) {
    size_t i;
    const char *k;
    json_t *x;
    void *tmp;
    if (json_is_object(v)) {
        json_object_foreach_safe(v, tmp, k, x) {
            if (json_is_string(x) && strncmp(json_string_value(x), FANNS_PID_U64_MARK, strlen(FANNS_PID_U64_MARK)) == 0)
                json_object_set_new(v, k, json_real(strtod(json_string_value(x) + strlen(FANNS_PID_U64_MARK), NULL)));
            else fanns__json_u64_payload(x);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (json_is_string(x) && strncmp(json_string_value(x), FANNS_PID_U64_MARK, strlen(FANNS_PID_U64_MARK)) == 0)
                json_array_set_new(v, i, json_real(strtod(json_string_value(x) + strlen(FANNS_PID_U64_MARK), NULL)));
            else fanns__json_u64_payload(x);
        }
    }
}

void fanns__json_u64_unprotect(char *s) {
    const char *pat = "\"" MARK;
    size_t pl = strlen(pat);
    char *w = s, *r = s;
    while (*r) {
        if (*r == '"' && strncmp(r, pat, pl) == 0) {
            r += pl;
            while (*r >= '0' && *r <= '9') *w++ = *r++;
            if (*r == '"') r++;
            continue;
        }
        *w++ = *r++;
    }
    *w = 0;
}
