/*
 * pid.h: external point ids as Qdrant clients send them, an unsigned 64-bit integer or a
 * UUID, and their 17-byte binary key.
 *
 * The key orders every integer id before every UUID and integers numerically (big-endian),
 * which is the order Qdrant's scroll returns points in.  Internally points are addressed by
 * a dense 32-bit offset (see storage/db.h); this type is only for what crosses the API.
 */
#ifndef FANNS_PID_H
#define FANNS_PID_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define FANNS_PID_NUM 0
#define FANNS_PID_UUID 1
#define FANNS_PID_KEYLEN 17
/* jansson cannot hold integers above INT64_MAX: the API layer carries them as strings with
 * this prefix (proto/json_u64.h), which fanns_pid_from_json accepts and fanns_pid_to_json
 * produces. */
#define FANNS_PID_U64_MARK "\x01u64:"

typedef struct fanns_pid {
    uint8_t kind;           /* FANNS_PID_NUM or FANNS_PID_UUID */
    uint64_t num;           /* valid when kind == FANNS_PID_NUM */
    uint8_t uuid[16];       /* valid when kind == FANNS_PID_UUID */
} fanns_pid_t;

/* Parses a JSON id (non-negative integer or UUID string: hyphenated, simple 32-hex, braced
 * or urn:uuid:).  path names the field in error messages.  Returns 0 or FANNS_EINVAL. */
int fanns_pid_from_json(const json_t *v, fanns_pid_t *out, const char *path, fanns_err_t *err);
/* Parses a UUID or decimal string (as found in a URL path). */
int fanns_pid_from_str(const char *s, fanns_pid_t *out, fanns_err_t *err);
/* New JSON value for the id (integer or hyphenated lower-case UUID string); caller owns it. */
json_t *fanns_pid_to_json(const fanns_pid_t *id);
/* Writes the 17-byte ordered key. */
void fanns_pid_key(const fanns_pid_t *id, uint8_t key[FANNS_PID_KEYLEN]);
/* Reads a key written by fanns_pid_key. */
void fanns_pid_from_key(const uint8_t key[FANNS_PID_KEYLEN], fanns_pid_t *out);
bool fanns_pid_eq(const fanns_pid_t *a, const fanns_pid_t *b);
/* Formats a UUID as 36 characters plus NUL. */
void fanns_pid_uuid_str(const uint8_t uuid[16], char out[37]);

#endif
