/*
 * pid.c: parsing, formatting and ordered keys for external point ids (see pid.h).
 */
#include "pid.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Accepts 32 hex digits, optionally hyphenated 8-4-4-4-12, braced, or with urn:uuid:. */
static int parse_uuid(const char *s, uint8_t out[16]) {
    size_t n = strlen(s);
    if (n > 9 && strncasecmp(s, "urn:uuid:", 9) == 0) { s += 9; n -= 9; }
    if (n >= 2 && s[0] == '{' && s[n - 1] == '}') { s++; n -= 2; }
    if (n == 36) {
        if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return -1;
    } else if (n != 32) {
        return -1;
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (n == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) continue;
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    return k == 16 ? 0 : -1;
}

int fanns_pid_from_str(const char *s, fanns_pid_t *out, fanns_err_t *err) {
    memset(out, 0, sizeof(*out));
    if (*s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 20) {
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == 0 && *end == 0) {
            out->kind = FANNS_PID_NUM;
            out->num = v;
            return 0;
        }
    }
    if (parse_uuid(s, out->uuid) == 0) {
        out->kind = FANNS_PID_UUID;
        return 0;
    }
    return fanns_err_set(err, FANNS_EINVAL, NULL,
                         "Unable to parse point id '%.64s': expected an unsigned integer or a UUID", s);
}

int fanns_pid_from_json(const json_t *v, fanns_pid_t *out, const char *path, fanns_err_t *err) {
    memset(out, 0, sizeof(*out));
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0)
            return fanns_err_set(err, FANNS_EINVAL, path, "%s: point id must be a non-negative integer or a UUID", path);
        out->kind = FANNS_PID_NUM;
        out->num = (uint64_t)n;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t ml = strlen(FANNS_PID_U64_MARK);
        if (strncmp(s, FANNS_PID_U64_MARK, ml) == 0) {
            errno = 0;
            char *end;
            unsigned long long n = strtoull(s + ml, &end, 10);
            if (errno == 0 && *end == 0 && end != s + ml) {
                out->kind = FANNS_PID_NUM;
                out->num = n;
                return 0;
            }
        }
        if (parse_uuid(s, out->uuid) == 0) {
            out->kind = FANNS_PID_UUID;
            return 0;
        }
        return fanns_err_set(err, FANNS_EINVAL, path, "%s: '%.64s' is not a valid UUID", path, json_string_value(v));
    }
    return fanns_err_set(err, FANNS_EINVAL, path, "%s: point id must be an unsigned integer or a UUID string", path);
}

void fanns_pid_uuid_str(const uint8_t u[16], char out[37]) {
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

json_t *fanns_pid_to_json(const fanns_pid_t *id) {
    if (id->kind == FANNS_PID_NUM) {
        if (id->num > (uint64_t)INT64_MAX) {
            /* Beyond jansson's integers: the API layer writes this back as a bare literal. */
            char buf[40];
            snprintf(buf, sizeof(buf), FANNS_PID_U64_MARK "%llu", (unsigned long long)id->num);
            return json_string(buf);
        }
        return json_integer((json_int_t)id->num);
    }
    char s[37];
    fanns_pid_uuid_str(id->uuid, s);
    return json_string(s);
}

void fanns_pid_key(const fanns_pid_t *id, uint8_t key[FANNS_PID_KEYLEN]) {
    memset(key, 0, FANNS_PID_KEYLEN);
    key[0] = id->kind;
    if (id->kind == FANNS_PID_NUM) {
        for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(id->num >> (56 - 8 * i));
    } else {
        memcpy(key + 1, id->uuid, 16);
    }
}

void fanns_pid_from_key(const uint8_t key[FANNS_PID_KEYLEN], fanns_pid_t *out) {
    memset(out, 0, sizeof(*out));
    out->kind = key[0];
    if (key[0] == FANNS_PID_NUM) {
        for (int i = 0; i < 8; i++) out->num = out->num << 8 | key[1 + i];
    } else {
        memcpy(out->uuid, key + 1, 16);
    }
}

bool fanns_pid_eq(const fanns_pid_t *a, const fanns_pid_t *b) {
    if (a->kind != b->kind) return false;
    return a->kind == FANNS_PID_NUM ? a->num == b->num : memcmp(a->uuid, b->uuid, 16) == 0;
}
