/*
 * api.h: the Qdrant-compatible REST API as a pure function from an HTTP request to an HTTP
 * response.  No libuv, no sockets: the server parses HTTP and calls fanns_api_handle on a
 * worker thread; tests and fuzzers call it directly.
 *
 * Thread safety: fanns_api_handle may be called from many threads at once.
 */
#ifndef FANNS_API_H
#define FANNS_API_H

#include <stdbool.h>
#include <stddef.h>

struct fanns_db;

typedef struct fanns_api_req {
    const char *method;        /* "GET", "PUT", ... (NUL-terminated) */
    const char *path;          /* percent-decoded path without the query, e.g. "/collections/a" */
    const char *query;         /* raw query string after '?', or NULL */
    const char *body;          /* request body (not NUL-terminated), may be NULL */
    size_t body_len;
    const char *request_id;    /* for logs, may be NULL */
} fanns_api_req_t;

typedef struct fanns_api_resp {
    int status;                /* HTTP status code */
    const char *content_type;  /* static string, e.g. "application/json" */
    char *body;                /* malloc'd; the caller frees it with free() */
    size_t body_len;
} fanns_api_resp_t;

typedef struct fanns_api fanns_api_t;

/* Creates the API over db (borrowed; db must outlive the api).  Returns 0 or FANNS_ENOMEM. */
int fanns_api_new(struct fanns_db *db, fanns_api_t **out);
/* Frees the api.  Does not close the db. */
void fanns_api_free(fanns_api_t *api);
/* Answers one request into *resp (always filled, even on error). */
void fanns_api_handle(fanns_api_t *api, const fanns_api_req_t *req, fanns_api_resp_t *resp);
/* True for requests cheap enough to answer on the event-loop thread (GET /, health). */
bool fanns_api_is_cheap(const fanns_api_req_t *req);
/* True for reads that never wait for the writer thread: GET under /collections and the POST
 * searches (search, query and their batches, scroll, count, retrieve by ids).  The server runs
 * them on its search pool; everything else may block on a commit and runs apart. */
bool fanns_api_is_search(const fanns_api_req_t *req);
/* Writes an error response in Qdrant's envelope (used by the server for 413, 408, 503...). */
void fanns_api_error_response(int status, const char *msg, fanns_api_resp_t *resp);

#endif
