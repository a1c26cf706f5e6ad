/*
 * err.h: the one error space of fanns.
 *
 * Every fallible function returns 0 or a negative FANNS_E* code and, when the caller
 * passes a fanns_err_t, fills in a message a user can act on and the JSON path of the
 * offending field ("filter.must[2].range.gt").  One table maps codes to HTTP status.
 * Dependencies' errors (LMDB, errno, FAISS) are translated in one function each, at the
 * module that calls the dependency.
 */
#ifndef FANNS_ERR_H
#define FANNS_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    FANNS_OK = 0,
    FANNS_EINVAL = -1,      /* malformed request or bad input (HTTP 400) */
    FANNS_EVALIDATE = -2,   /* well-formed but invalid value: dimension, limit (422) */
    FANNS_ENOTFOUND = -3,   /* collection or point does not exist (404) */
    FANNS_EEXIST = -4,      /* collection already exists (409) */
    FANNS_ETOOBIG = -5,     /* request body or batch over its limit (413) */
    FANNS_ENOMEM = -6,      /* allocation failed (500) */
    FANNS_EIO = -7,         /* storage or system call failed (500) */
    FANNS_ECORRUPT = -8,    /* stored data failed a check (500) */
    FANNS_EBUSY = -9,       /* shutting down or overloaded (503) */
    FANNS_ELIMIT = -10,     /* rate or queue limit (429) */
    FANNS_EMETHOD = -11,    /* method not allowed on this path (405) */
    FANNS_ETIMEOUT = -12,   /* operation timed out (408) */
    FANNS_EINTERNAL = -13,  /* a bug: an impossible state was reached (500) */
    FANNS_E_LAST = -14
};

typedef struct fanns_err {
    int code;               /* last FANNS_E* code set, 0 if none */
    char path[128];         /* JSON path of the offending field, "" if none */
    char msg[384];          /* human readable message */
} fanns_err_t;

/* Sets err (if not NULL) and returns code.  path may be NULL. */
int fanns_err_set(fanns_err_t *err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Clears err. */
void fanns_err_clear(fanns_err_t *err);
/* Maps a FANNS_E* code to the HTTP status a Qdrant client expects. */
int fanns_err_http_status(int code);
/* Static name of a code ("EINVAL"). */
const char *fanns_err_name(int code);
/* Translates a positive errno into a FANNS_E* code and sets err with context. */
int fanns_err_errno(fanns_err_t *err, int errnum, const char *context);

#endif
