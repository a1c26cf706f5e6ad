/*
 * http.h: the HTTP/1.1 front end of fannsd: one libuv loop that accepts connections, parses
 * requests with llhttp and hands each one to a request handler.
 *
 * The handler is injected (a function pointer plus a context), so this module knows nothing
 * about the REST API: fannsd wires it to fanns_api_handle (proto/api.h), unit tests to a fake.
 * Requests that the "is_cheap" callback accepts are answered on the loop thread; those that
 * "is_search" accepts run on the search pool (pool.h: one thread per core by default, sized for
 * CPU-bound reads); all others (writes, which may wait for the writer thread's commit, and
 * administration) run on the libuv thread pool (uv_queue_work), so a burst of writes never
 * holds up searches.  The handler must be thread-safe.  Responses on a connection are written
 * in request order even when workers finish out of order.
 *
 * The server answers some requests itself: GET /readyz (200, or 503 once shutdown has begun),
 * and the protocol errors 400 (malformed HTTP), 408 (header or body timeout), 413 (body over
 * max_request_size), 431 (headers over max_header_size) and 503 (connection limit), each
 * followed by closing the connection.
 *
 * Threading: fanns_http_new, fanns_http_listen and fanns_http_free are called from the thread
 * that owns the server; fanns_http_run runs the loop on the calling thread until shutdown is
 * complete; fanns_http_shutdown may be called from any thread.
 */
#ifndef FANNS_HTTP_H
#define FANNS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "err.h"

/* Answers one request; called on a worker thread (or the loop thread if is_cheap said so).
 * Must always fill resp; resp->body is malloc'd (or NULL) and the server frees it. */
typedef void (*fanns_http_handle_fn)(void *ctx, const fanns_api_req_t *req, fanns_api_resp_t *resp);
/* True when req may be answered on the loop thread.  Called on the loop thread.  May be NULL. */
typedef bool (*fanns_http_cheap_fn)(void *ctx, const fanns_api_req_t *req);
/* Formats the server's own error responses (413, 400...).  NULL: a built-in formatter writes
 * Qdrant's envelope {"status":{"error":msg},"time":0}. */
typedef void (*fanns_http_error_fn)(int status, const char *msg, fanns_api_resp_t *resp);

typedef struct fanns_http_opts {
    const char *host;               /* address to bind, "0.0.0.0", "::", "127.0.0.1" */
    int port;                       /* 0 picks an ephemeral port (see fanns_http_port) */
    size_t max_request_size;        /* body cap in bytes (413 beyond); 0 -> 32 MiB */
    size_t max_header_size;         /* request line + headers cap (431 beyond); 0 -> 64 KiB */
    unsigned max_connections;       /* open connections; beyond it 503 + close; 0 -> 1024 */
    unsigned header_timeout_ms;     /* from first byte (or accept) to end of headers; 0 -> 30 s */
    unsigned idle_timeout_ms;       /* keep-alive idle and between body reads; 0 -> 60 s */
    unsigned shutdown_timeout_ms;   /* bound on draining in-flight requests; 0 -> 30 s */
    const char *port_file;          /* if not NULL, the bound port is written there after listen */
    bool handle_signals;            /* install SIGINT/SIGTERM handlers (fannsd: yes; tests: no) */
    fanns_http_handle_fn handle;    /* required */
    fanns_http_cheap_fn is_cheap;   /* optional */
    fanns_http_cheap_fn is_search;  /* optional: true for reads that never wait for a writer;
                                     * they run on the search pool, the rest on libuv's */
    unsigned search_threads;        /* search pool threads; 0 -> the cores available */
    fanns_http_error_fn error;      /* optional */
    void *ctx;                      /* passed to handle and is_cheap */
} fanns_http_opts_t;

typedef struct fanns_http_server fanns_http_server_t;

/* Sets opts to the defaults (host 0.0.0.0, port 6333, limits as above, no handler). */
void fanns_http_opts_init(fanns_http_opts_t *opts);

/* Sets UV_THREADPOOL_SIZE to max(4, 2 * cores) unless the environment already sets it.  Call
 * it early, before other threads start (setenv is not thread-safe) and before anything uses
 * the libuv thread pool; fanns_http_new calls it too. */
void fanns_http_size_threadpool(void);

/* Creates a server with its own uv loop.  Copies opts (strings included).  Calls
 * fanns_http_size_threadpool.
 * Returns 0, FANNS_EINVAL (no handler) or FANNS_ENOMEM/FANNS_EIO; *out is the server. */
int fanns_http_new(const fanns_http_opts_t *opts, fanns_http_server_t **out, fanns_err_t *err);

/* Binds and listens, logs msg="listening" with host= and port= (at every log level except
 * off), writes port_file.
 * Returns 0, FANNS_EINVAL (host is not an IPv4/IPv6 literal) or FANNS_EIO (address in use...). */
int fanns_http_listen(fanns_http_server_t *srv, fanns_err_t *err);

/* The bound port (valid after fanns_http_listen). */
int fanns_http_port(const fanns_http_server_t *srv);

/* Runs the loop until a shutdown has drained and every handle is closed.  Returns 0. */
int fanns_http_run(fanns_http_server_t *srv);

/* Starts a graceful shutdown: stop accepting, /readyz -> 503, finish in-flight requests (at
 * most shutdown_timeout_ms), close connections, and let fanns_http_run return.
 * Thread-safe and idempotent. */
void fanns_http_shutdown(fanns_http_server_t *srv);

/* Frees a server that is not running (fanns_http_run returned or was never called). */
void fanns_http_free(fanns_http_server_t *srv);

#endif
