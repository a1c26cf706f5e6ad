/*
 * err.c: the error table: code -> name and HTTP status, and message formatting.
 */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int fanns_err_set(fanns_err_t *err, int code, const char *path, const char *fmt, ...) {
    if (err) {
        va_list ap;
        err->code = code;
        snprintf(err->path, sizeof(err->path), "%s", path ? path : "");
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void fanns_err_clear(fanns_err_t *err) {
    if (err) {
        err->code = 0;
        err->path[0] = 0;
        err->msg[0] = 0;
    }
}

int fanns_err_http_status(int code) {
    switch (code) {
    case FANNS_OK: return 200;
    case FANNS_EINVAL: return 400;
    case FANNS_EVALIDATE: return 422;
    case FANNS_ENOTFOUND: return 404;
    case FANNS_EEXIST: return 409;
    case FANNS_ETOOBIG: return 413;
    case FANNS_EBUSY: return 503;
    case FANNS_ELIMIT: return 429;
    case FANNS_EMETHOD: return 405;
    case FANNS_ETIMEOUT: return 408;
    default: return 500;
    }
}

const char *fanns_err_name(int code) {
    static const char *names[] = {"OK", "EINVAL", "EVALIDATE", "ENOTFOUND", "EEXIST",
                                  "ETOOBIG", "ENOMEM", "EIO", "ECORRUPT", "EBUSY",
                                  "ELIMIT", "EMETHOD", "ETIMEOUT", "EINTERNAL"};
    if (code > 0 || code <= FANNS_E_LAST) return "EUNKNOWN";
    return names[-code];
}

int fanns_err_errno(fanns_err_t *err, int errnum, const char *context) {
    int code = errnum == ENOMEM ? FANNS_ENOMEM : FANNS_EIO;
    return fanns_err_set(err, code, NULL, "%s: %s", context, strerror(errnum));
}
