/*
 * http.c: HTTP/1.1 server on one libuv loop, llhttp for parsing (see http.h).
 *
 * Objects and ownership:
 *  - fanns_http_server_t owns the loop, the listener, an async handle (shutdown requests from
 *    other threads), optional signal handles, a drain timer and the list of connections.
 *  - conn_t owns a TCP handle, a timer, an llhttp parser, the request being parsed (cur) and a
 *    FIFO of parsed requests (qh..qt) whose responses are not yet written.  Responses leave the
 *    FIFO only from its head and only when done, which keeps pipelined responses in order even
 *    when workers finish out of order.
 *  - hreq_t is one request: its buffers, the handler's response, its uv_work_t and uv_write_t.
 *    Once its response is handed to uv_write it belongs to the write request and is freed in
 *    the write callback.
 *
 * Invariants:
 *  - A conn is freed only when refs reaches 0.  refs counts the two open handles (tcp, timer)
 *    plus each request on a worker: a connection may close while its request is being handled,
 *    and the worker's after-callback must still find the conn.  libuv calls pending write and
 *    shutdown callbacks (with UV_ECANCELED) before the close callback, so writes need no ref.
 *  - srv->inflight counts requests parsed but not yet written (or abandoned) on every open
 *    connection; a graceful shutdown waits for it to reach 0.
 *  - Once a response that closes the connection is queued (error, Connection: close), the
 *    parser is not fed again (read_done).  The socket is then half-closed and input is drained
 *    for a short while ("lingering close") so the client reads the response instead of a reset.
 *
 * Reference: RFC 9112 (HTTP/1.1 message syntax, pipelining, 100-continue), RFC 9110 (status
 * codes), libuv's handle/request lifetime rules.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <llhttp.h>
#include <uv.h>

#include "log.h"
#include "pool.h"

#define DEFAULT_MAX_REQUEST (32u << 20)
#define DEFAULT_MAX_HEADER (64u << 10)
#define DEFAULT_MAX_CONNS 1024u
#define DEFAULT_HEADER_TIMEOUT_MS 30000u
#define DEFAULT_IDLE_TIMEOUT_MS 60000u
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 30000u
#define LINGER_MS 2000u
#define MAX_PIPELINE 64u               /* parsed, unanswered requests before we stop reading */
#define MAX_WRITE_QUEUE (4u << 20)     /* unsent response bytes before we stop reading */
#define READ_BUF_SIZE (64u << 10)
#define BODY_PREALLOC_MAX (1u << 20)

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

enum { HDR_OTHER = 0, HDR_REQUEST_ID, HDR_EXPECT };
enum { TIMER_NONE = 0, TIMER_HEADER, TIMER_BODY, TIMER_IDLE, TIMER_LINGER };

struct conn;

typedef struct hreq {
    uv_work_t work;             /* on libuv's pool (writes, admin) */
    fanns_pool_job_t job;       /* or on the search pool (is_search) */
    uv_write_t wreq;
    struct conn *c;
    struct hreq *next;
    buf_t url, body, hfield, hval;
    char method[24];
    char *path;                 /* percent-decoded, malloc'd */
    char *query;                /* malloc'd, NULL if none */
    char rid[72];
    char logpath[208];          /* raw path sanitised for logs */
    int hkind;                  /* which header the current field is */
    bool headers_done, expect_continue, keep_alive, head, done, close_after;
    bool direct;                /* the worker may write the response itself (see direct_write) */
    size_t dsent;               /* bytes of the response the worker wrote */
    atomic_bool sent_all;       /* the worker wrote all of it (read by dispatch, see there) */
    int hlen;                   /* length of head_buf once built */
    size_t header_bytes;
    uint64_t start_ns;
    fanns_api_req_t areq;
    fanns_api_resp_t resp;
    char head_buf[512];
} hreq_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    fanns_http_server_t *srv;
    llhttp_t parser;
    struct conn *prev, *next;
    hreq_t *cur;
    hreq_t *qh, *qt;
    unsigned nq;
    unsigned writes;
    int refs;
    int err_status;
    const char *err_msg;
    int timer_kind;
    uint64_t hdr_deadline;
    bool closing, read_done, reading, fresh, lingering;
    pthread_mutex_t dmu;        /* guards dfd against conn_close while a worker writes */
    int dfd;                    /* the socket for direct writes; -1 once closing */
} conn_t;

struct fanns_http_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t async;
    fanns_pool_t *search_pool;  /* searches and other reads that never wait for the writer */
    uv_signal_t sigint, sigterm;
    uv_timer_t drain_timer;
    llhttp_settings_t settings;
    fanns_http_opts_t o;
    char *host, *port_file;
    int port;
    bool listener_open, signals_on, shutting_down, closed_all, handles_closed;
    atomic_bool stopping;       /* shutting_down, for workers */
    conn_t *conns;
    unsigned nconns;
    size_t inflight;
    uint64_t rid_counter;
    uint32_t rid_prefix;
    int signals_seen;
    char resp503[512];          /* the whole response sent when over max_connections */
    char readbuf[READ_BUF_SIZE];
};

static void conn_close(conn_t *c);
static void flush(conn_t *c);
static void check_drain(fanns_http_server_t *srv);

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Appends n bytes, refusing to grow past cap bytes.  Returns 0, -1 (cap) or -2 (no memory). */
static int buf_append(buf_t *b, const char *p, size_t n, size_t cap) {
    if (n > cap || b->len > cap - n) return -1;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return -2;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* Qdrant's error envelope; msg is written with JSON escapes. */
static void builtin_error(int status, const char *msg, fanns_api_resp_t *resp) {
    size_t cap = strlen(msg) * 6 + 64;
    char *out = malloc(cap);
    size_t n = 0;
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = out;
    resp->body_len = 0;
    if (!out) return;
    n += (size_t)snprintf(out, cap, "{\"status\":{\"error\":\"");
    for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
        if (*s == '"' || *s == '\\') { out[n++] = '\\'; out[n++] = (char)*s; }
        else if (*s < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *s);
        else out[n++] = (char)*s;
    }
    n += (size_t)snprintf(out + n, cap - n, "\"},\"time\":0.0}");
    resp->body_len = n;
}

static void make_error(fanns_http_server_t *srv, int status, const char *msg, fanns_api_resp_t *resp) {
    memset(resp, 0, sizeof(*resp));
    if (srv->o.error) srv->o.error(status, msg, resp);
    else builtin_error(status, msg, resp);
}

static void make_text(int status, const char *text, fanns_api_resp_t *resp) {
    resp->status = status;
    resp->content_type = "text/plain";
    resp->body = strdup(text);
    resp->body_len = resp->body ? strlen(text) : 0;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into a new string.  Returns NULL on a bad escape or %00. */
static char *percent_decode(const char *src, size_t n, bool *bad) {
    char *out = malloc(n + 1);
    size_t j = 0;
    *bad = false;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%') {
            int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                *bad = true;
                return NULL;
            }
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[j++] = src[i];
        }
    }
    out[j] = 0;
    return out;
}

static bool valid_request_id(const char *s, size_t n) {
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

/* ---- requests ----------------------------------------------------------------------------- */

static hreq_t *req_new(conn_t *c) {
    hreq_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->c = c;
    r->start_ns = now_ns();
    snprintf(r->method, sizeof(r->method), "-");
    snprintf(r->logpath, sizeof(r->logpath), "-");
    return r;
}

static void req_free(hreq_t *r) {
    if (!r) return;
    buf_free(&r->url);
    buf_free(&r->body);
    buf_free(&r->hfield);
    buf_free(&r->hval);
    free(r->path);
    free(r->query);
    free(r->resp.body);
    free(r);
}

static void enqueue(conn_t *c, hreq_t *r) {
    r->next = NULL;
    if (c->qt) c->qt->next = r;
    else c->qh = r;
    c->qt = r;
    c->nq++;
    c->srv->inflight++;
}

static hreq_t *dequeue(conn_t *c) {
    hreq_t *r = c->qh;
    if (!r) return NULL;
    c->qh = r->next;
    if (!c->qh) c->qt = NULL;
    c->nq--;
    c->srv->inflight--;
    r->next = NULL;
    return r;
}

static void assign_request_id(fanns_http_server_t *srv, hreq_t *r) {
    if (r->rid[0]) return;
    snprintf(r->rid, sizeof(r->rid), "%08" PRIx32 "%08" PRIx64, srv->rid_prefix, ++srv->rid_counter);
}

/* Queues a server-generated error response that closes the connection. */
static void queue_error(conn_t *c, int status, const char *msg) {
    hreq_t *r = c->cur;
    c->cur = NULL;
    if (!r) r = req_new(c);
    if (!r) {
        conn_close(c);
        return;
    }
    assign_request_id(c->srv, r);
    free(r->resp.body);
    make_error(c->srv, status, msg, &r->resp);
    r->done = true;
    r->close_after = true;
    r->head = false;
    enqueue(c, r);
    c->read_done = true;
}

/* ---- timers and read control ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void update_timer(conn_t *c) {
    fanns_http_server_t *srv = c->srv;
    uint64_t now = uv_now(&srv->loop), deadline;
    int kind;

    if (c->closing) return;
    if (c->lingering) {
        return; /* the linger timer was armed when lingering started */
    } else if (c->cur && !c->cur->headers_done) {
        kind = TIMER_HEADER;
        deadline = c->hdr_deadline;
    } else if (c->cur) {
        kind = TIMER_BODY;
        deadline = now + srv->o.idle_timeout_ms;
    } else if (c->qh) {
        /* A request is being handled: a slow query must not cost the client its connection. */
        uv_timer_stop(&c->timer);
        c->timer_kind = TIMER_NONE;
        return;
    } else if (c->writes) {
        /* Responses are being written: a client that stops reading is dropped after the
         * idle timeout without progress (re-armed at each completed write). */
        kind = TIMER_IDLE;
        deadline = now + srv->o.idle_timeout_ms;
    } else if (c->read_done) {
        uv_timer_stop(&c->timer);
        c->timer_kind = TIMER_NONE;
        return;
    } else if (c->fresh) {
        kind = TIMER_HEADER;
        deadline = c->hdr_deadline;
    } else {
        kind = TIMER_IDLE;
        deadline = now + srv->o.idle_timeout_ms;
    }
    c->timer_kind = kind;
    uv_timer_start(&c->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    conn_t *c = h->data;
    (void)suggested;
    /* One buffer serves every connection: the parser copies what it keeps before returning. */
    b->base = c->srv->readbuf;
    b->len = sizeof(c->srv->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void update_reading(conn_t *c) {
    bool want;
    if (c->closing) return;
    if (c->lingering) want = true;
    else
        want = !c->read_done && c->nq < MAX_PIPELINE &&
               uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < MAX_WRITE_QUEUE;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- connection lifetime ----------------------------------------------------------------- */

static void conn_maybe_free(conn_t *c) {
    if (c->refs > 0) return;
    req_free(c->cur);
    while (c->qh) {
        hreq_t *r = c->qh;
        c->qh = r->next;
        req_free(r);
    }
    pthread_mutex_destroy(&c->dmu);
    free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    c->refs--;
    conn_maybe_free(c);
}

static void conn_close(conn_t *c) {
    fanns_http_server_t *srv = c->srv;
    if (c->closing) return;
    c->closing = true;
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nconns--;
    /* Requests still queued are abandoned: they no longer hold up a drain. */
    srv->inflight -= c->nq;
    /* After this no worker writes to the socket, so the descriptor may be closed and reused. */
    pthread_mutex_lock(&c->dmu);
    c->dfd = -1;
    pthread_mutex_unlock(&c->dmu);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    check_drain(srv);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn_t *c = req->handle->data;
    if (status < 0) conn_close(c);
}

/* Closes the connection once nothing more is to be read or written. */
static void maybe_finish(conn_t *c) {
    if (c->closing) return;
    if (c->srv->closed_all && !c->writes) {
        conn_close(c);
        return;
    }
    if (c->lingering || !c->read_done || c->qh || c->writes || c->cur) return;
    /* Half-close and drain what the client may still send, so our last response is read
     * rather than destroyed by a reset (RFC 9112 section 9.6). */
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    c->timer_kind = TIMER_LINGER;
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    update_reading(c);
}

static void on_timer(uv_timer_t *t) {
    conn_t *c = t->data;
    switch (c->timer_kind) {
    case TIMER_HEADER:
    case TIMER_BODY:
        if (!c->cur) {
            /* A fresh connection that never sent a byte: just close it. */
            fanns_debug("connection closed: no request before header timeout");
            conn_close(c);
            return;
        }
        queue_error(c, 408, c->timer_kind == TIMER_HEADER ? "timed out waiting for request headers"
                                                          : "timed out waiting for request body");
        update_reading(c);
        flush(c);
        return;
    case TIMER_IDLE:
    case TIMER_LINGER:
    default:
        conn_close(c);
        return;
    }
}

/* ---- responses ---------------------------------------------------------------------------- */

static void log_request(hreq_t *r, size_t bytes_out) {
    fanns_log_level_t lvl = FANNS_LOG_INFO;
    char fields[512];
    if (r->resp.status >= 500) lvl = FANNS_LOG_WARN;
    else if (r->path && (!strcmp(r->path, "/readyz") || !strcmp(r->path, "/healthz") ||
                         !strcmp(r->path, "/livez") || !strcmp(r->path, "/metrics")))
        lvl = FANNS_LOG_DEBUG;
    if (!FANNS_LOG_ENABLED(lvl)) return;
    double ms = (double)(now_ns() - r->start_ns) / 1e6;
    snprintf(fields, sizeof(fields), "rid=%s method=%s path=%s status=%d ms=%.3f bytes_in=%zu bytes_out=%zu",
             r->rid, r->method, r->logpath, r->resp.status, ms, r->header_bytes + r->body.len, bytes_out);
    fanns_log(lvl, fields, "request");
}

static void on_write(uv_write_t *w, int status) {
    hreq_t *r = w->data;
    conn_t *c = r->c;
    c->writes--;
    req_free(r);
    if (status < 0) {
        conn_close(c);
        return;
    }
    maybe_finish(c);
    update_reading(c);
    update_timer(c);
}

/* Fills head_buf with the status line and headers of r's response (normalising a missing
 * status or body) and returns the bufs of the whole response.  Runs on the loop, or on the
 * worker for a direct write. */
static unsigned build_response(hreq_t *r, uv_buf_t bufs[2]) {
    unsigned nb = 1;
    int n;
    if (!r->resp.status) r->resp.status = 500;
    if (!r->resp.body) r->resp.body_len = 0;
    n = snprintf(r->head_buf, sizeof(r->head_buf),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n"
                 "x-request-id: %s\r\n\r\n",
                 r->resp.status, reason_phrase(r->resp.status),
                 r->resp.content_type ? r->resp.content_type : "application/json", r->resp.body_len,
                 r->close_after ? "close" : "keep-alive", r->rid);
    if (n < 0 || (size_t)n >= sizeof(r->head_buf)) n = (int)sizeof(r->head_buf) - 1;
    r->hlen = n;
    bufs[0] = uv_buf_init(r->head_buf, (unsigned)n);
    if (!r->head && r->resp.body_len) bufs[nb++] = uv_buf_init(r->resp.body, (unsigned)r->resp.body_len);
    return nb;
}

/* Drops the first `skip` bytes of bufs[0..nb); returns the new count. */
static unsigned skip_bufs(uv_buf_t *bufs, unsigned nb, size_t skip) {
    unsigned i = 0, j = 0;
    for (; i < nb && skip >= bufs[i].len; i++) skip -= bufs[i].len;
    for (; i < nb; i++, j++) {
        bufs[j] = uv_buf_init(bufs[i].base + skip, (unsigned)(bufs[i].len - skip));
        skip = 0;
    }
    return j;
}

/* Direct write, on the worker that produced r's response.  dispatch marked r direct only when
 * every response ahead of r in its connection's queue was already in the socket (none, or
 * written whole by their own workers), no loop write was pending and r keeps the connection
 * open; the loop then writes nothing on that connection before after_work_cb runs for r, so the
 * worker owns the socket's output and may send the response at once, saving the round trip
 * through the loop (an async wake-up) before the client sees it.  The socket is non-blocking:
 * whatever the kernel does not take now (dsent < total) is written by the loop as usual, as is
 * everything after an error (the loop then sees the error itself).  dmu keeps conn_close from
 * closing the descriptor under the write. */
static void direct_write(hreq_t *r) {
    conn_t *c = r->c;
    uv_buf_t bufs[2];
    struct iovec iov[2];
    unsigned nb;
    size_t total = 0;
    if (atomic_load_explicit(&c->srv->stopping, memory_order_relaxed)) return; /* the loop decides close_after */
    nb = build_response(r, bufs);
    for (unsigned i = 0; i < nb; i++) total += bufs[i].len;
    pthread_mutex_lock(&c->dmu);
    while (c->dfd >= 0 && r->dsent < total) {
        uv_buf_t rest[2];
        unsigned nr;
        memcpy(rest, bufs, sizeof(rest));
        nr = skip_bufs(rest, nb, r->dsent);
        for (unsigned i = 0; i < nr; i++) {
            iov[i].iov_base = rest[i].base;
            iov[i].iov_len = rest[i].len;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = nr};
        ssize_t w = sendmsg(c->dfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) r->dsent += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else break; /* EAGAIN or an error: the loop takes over */
    }
    pthread_mutex_unlock(&c->dmu);
    if (r->dsent == total) atomic_store_explicit(&r->sent_all, true, memory_order_release);
}

static void write_response(conn_t *c, hreq_t *r) {
    fanns_http_server_t *srv = c->srv;
    uv_buf_t bufs[2];
    unsigned nb;
    size_t total = 0;
    /* While shutting down, the last queued response tells the client to go elsewhere (a
     * direct write never happens then, see direct_write). */
    if (srv->shutting_down && !c->qh && !r->dsent) r->close_after = true;
    nb = build_response(r, bufs);
    for (unsigned i = 0; i < nb; i++) total += bufs[i].len;
    log_request(r, total);
    if (r->close_after) c->read_done = true;
    if (r->dsent >= total) {
        req_free(r); /* the worker wrote all of it */
        return;
    }
    nb = skip_bufs(bufs, nb, r->dsent);
    r->wreq.data = r;
    if (uv_write(&r->wreq, (uv_stream_t *)&c->tcp, bufs, nb, on_write) != 0) {
        req_free(r);
        conn_close(c);
        return;
    }
    c->writes++;
}

/* Writes every finished response at the head of the queue, in order. */
static void flush(conn_t *c) {
    if (c->closing) return;
    while (c->qh && c->qh->done) {
        /* By construction nothing is queued behind a response that closes the connection:
         * the parser stops at a Connection: close request and after queueing an error. */
        write_response(c, dequeue(c));
        if (c->closing) return;
    }
    maybe_finish(c);
    update_reading(c);
    update_timer(c);
    check_drain(c->srv);
}

static void work_cb(uv_work_t *w) {
    hreq_t *r = w->data;
    fanns_http_server_t *srv = r->c->srv;
    srv->o.handle(srv->o.ctx, &r->areq, &r->resp);
    if (r->direct) direct_write(r);
}

static void after_work_cb(uv_work_t *w, int status) {
    hreq_t *r = w->data;
    conn_t *c = r->c;
    if (status < 0 && !r->resp.status) make_error(c->srv, 500, "request was cancelled", &r->resp);
    r->done = true;
    c->refs--;
    if (c->closing) {
        conn_maybe_free(c);
        return;
    }
    flush(c);
}

/* The search pool's job functions: the same as work_cb and after_work_cb.  A response the
 * worker wrote whole needs nothing from the loop before its next turn, so its completion does
 * not wake it (see pool.h). */
static void job_work(fanns_pool_job_t *j) {
    hreq_t *r = (hreq_t *)((char *)j - offsetof(hreq_t, job));
    work_cb(&r->work);
    j->quiet = r->direct && atomic_load_explicit(&r->sent_all, memory_order_relaxed);
}

static void job_done(fanns_pool_job_t *j) {
    hreq_t *r = (hreq_t *)((char *)j - offsetof(hreq_t, job));
    after_work_cb(&r->work, 0);
}

static void dispatch(conn_t *c, hreq_t *r) {
    fanns_http_server_t *srv = c->srv;
    bool get = !strcmp(r->areq.method, "GET");
    if (get && !strcmp(r->path, "/readyz")) {
        if (srv->shutting_down) make_text(503, "shutting down", &r->resp);
        else make_text(200, "all shards are ready", &r->resp);
        r->done = true;
    } else if (srv->o.is_cheap && srv->o.is_cheap(srv->o.ctx, &r->areq)) {
        srv->o.handle(srv->o.ctx, &r->areq, &r->resp);
        r->done = true;
    } else {
        r->work.data = r;
        /* Direct when every response ahead of r is already in the socket: r is the queue's
         * head, or the requests ahead were written whole by their workers (a client that sends
         * its next request as soon as it reads a response often gets it parsed before the
         * loop has run the previous request's after-callback). */
        bool ahead_sent = true;
        for (hreq_t *p = c->qh; p && p != r; p = p->next)
            if (!atomic_load_explicit(&p->sent_all, memory_order_acquire)) {
                ahead_sent = false;
                break;
            }
        r->direct = ahead_sent && !c->writes && !r->close_after && !srv->shutting_down && c->dfd >= 0;
        if (srv->o.is_search && srv->o.is_search(srv->o.ctx, &r->areq)) {
            r->job.work = job_work;
            r->job.done = job_done;
            fanns_pool_submit(srv->search_pool, &r->job);
            c->refs++;
        } else if (uv_queue_work(&srv->loop, &r->work, work_cb, after_work_cb) != 0) {
            make_error(srv, 500, "could not schedule request", &r->resp);
            r->done = true;
        } else {
            c->refs++;
        }
    }
}

/* ---- llhttp callbacks --------------------------------------------------------------------- */

static int fail_parse(conn_t *c, int status, const char *msg) {
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

static int count_header_bytes(conn_t *c, size_t n) {
    hreq_t *r = c->cur;
    r->header_bytes += n;
    if (r->header_bytes > c->srv->o.max_header_size)
        return fail_parse(c, 431, "request headers too large");
    return 0;
}

static int cb_message_begin(llhttp_t *p) {
    conn_t *c = p->data;
    fanns_http_server_t *srv = c->srv;
    req_free(c->cur);
    c->cur = req_new(c);
    if (!c->cur) return fail_parse(c, 500, "out of memory");
    if (!c->fresh) c->hdr_deadline = uv_now(&srv->loop) + srv->o.header_timeout_ms;
    c->fresh = false;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if (count_header_bytes(c, n)) return -1;
    if (buf_append(&c->cur->url, at, n, SIZE_MAX / 2)) return fail_parse(c, 500, "out of memory");
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n) {
    conn_t *c = p->data;
    if (count_header_bytes(c, n)) return -1;
    /* Only the first 64 bytes of a name matter: the names we look for are short. */
    if (c->cur->hfield.len < 64) {
        size_t take = n < 64 - c->cur->hfield.len ? n : 64 - c->cur->hfield.len;
        if (buf_append(&c->cur->hfield, at, take, 64)) return fail_parse(c, 500, "out of memory");
    }
    return 0;
}

static int cb_header_field_complete(llhttp_t *p) {
    conn_t *c = p->data;
    hreq_t *r = c->cur;
    r->header_bytes += 4; /* ": " and CRLF */
    if (r->hfield.p && !strcasecmp(r->hfield.p, "x-request-id")) r->hkind = HDR_REQUEST_ID;
    else if (r->hfield.p && !strcasecmp(r->hfield.p, "expect")) r->hkind = HDR_EXPECT;
    else r->hkind = HDR_OTHER;
    r->hfield.len = 0;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n) {
    conn_t *c = p->data;
    hreq_t *r = c->cur;
    if (count_header_bytes(c, n)) return -1;
    if (r->hkind != HDR_OTHER && r->hval.len < 128) {
        size_t take = n < 128 - r->hval.len ? n : 128 - r->hval.len;
        if (buf_append(&r->hval, at, take, 128)) return fail_parse(c, 500, "out of memory");
    }
    return 0;
}

static int cb_header_value_complete(llhttp_t *p) {
    conn_t *c = p->data;
    hreq_t *r = c->cur;
    if (r->hkind == HDR_REQUEST_ID && r->hval.p && valid_request_id(r->hval.p, r->hval.len))
        snprintf(r->rid, sizeof(r->rid), "%s", r->hval.p);
    else if (r->hkind == HDR_EXPECT && r->hval.p && !strcasecmp(r->hval.p, "100-continue"))
        r->expect_continue = true;
    r->hkind = HDR_OTHER;
    r->hval.len = 0;
    if (r->hval.p) r->hval.p[0] = 0;
    return 0;
}

static void on_write_continue(uv_write_t *w, int status) {
    conn_t *c = w->handle->data;
    free(w);
    c->writes--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    maybe_finish(c);
    update_timer(c);
}

static int cb_headers_complete(llhttp_t *p) {
    static char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_t *c = p->data;
    fanns_http_server_t *srv = c->srv;
    hreq_t *r = c->cur;
    const char *url = r->url.p ? r->url.p : "";
    size_t ulen = r->url.len;
    const char *q;
    bool bad;

    r->headers_done = true;
    assign_request_id(srv, r);
    snprintf(r->method, sizeof(r->method), "%s", llhttp_method_name((llhttp_method_t)p->method));
    if (!strcmp(r->method, "HEAD")) {
        /* HEAD is answered as GET without the body. */
        r->head = true;
        snprintf(r->method, sizeof(r->method), "GET");
    }
    /* Accept origin-form and absolute-form targets (RFC 9112 section 3.2). */
    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)) {
        const char *auth = strstr(url, "//") + 2;
        const char *slash = memchr(auth, '/', ulen - (size_t)(auth - url));
        if (slash) {
            ulen -= (size_t)(slash - url);
            url = slash;
        } else {
            url = "/";
            ulen = 1;
        }
    }
    if (url[0] != '/') return fail_parse(c, 400, "request target must be an absolute path");
    q = memchr(url, '?', ulen);
    {
        size_t plen = q ? (size_t)(q - url) : ulen, j = 0;
        for (size_t i = 0; i < plen && j < sizeof(r->logpath) - 1; i++) {
            unsigned char ch = (unsigned char)url[i];
            r->logpath[j++] = (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
        }
        r->logpath[j] = 0;
        r->path = percent_decode(url, plen, &bad);
        if (!r->path) return fail_parse(c, bad ? 400 : 500, bad ? "invalid percent-encoding in path" : "out of memory");
        if (q) {
            r->query = strndup(q + 1, ulen - plen - 1);
            if (!r->query) return fail_parse(c, 500, "out of memory");
        }
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > srv->o.max_request_size)
        return fail_parse(c, 413, "request body exceeds the maximum request size");
    if (p->flags & F_CONTENT_LENGTH && p->content_length > 0) {
        size_t pre = p->content_length < BODY_PREALLOC_MAX ? (size_t)p->content_length : BODY_PREALLOC_MAX;
        r->body.p = malloc(pre + 1);
        if (!r->body.p) return fail_parse(c, 500, "out of memory");
        r->body.cap = pre + 1;
    }
    /* Answer "Expect: 100-continue" unless earlier responses are still due on this
     * connection (a 100 must not overtake them). */
    if (r->expect_continue && ((p->flags & F_CHUNKED) || p->content_length > 0) && !c->qh && !c->writes) {
        uv_write_t *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init(continue_line, sizeof(continue_line) - 1);
        if (w && uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write_continue) == 0) c->writes++;
        else free(w);
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n) {
    conn_t *c = p->data;
    int rc = buf_append(&c->cur->body, at, n, c->srv->o.max_request_size);
    if (rc == -1) return fail_parse(c, 413, "request body exceeds the maximum request size");
    if (rc) return fail_parse(c, 500, "out of memory");
    return 0;
}

static int cb_message_complete(llhttp_t *p) {
    conn_t *c = p->data;
    hreq_t *r = c->cur;
    c->cur = NULL;
    r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    r->close_after = !r->keep_alive;
    r->areq.method = r->method;
    r->areq.path = r->path;
    r->areq.query = r->query;
    r->areq.body = r->body.len ? r->body.p : NULL;
    r->areq.body_len = r->body.len;
    r->areq.request_id = r->rid;
    enqueue(c, r);
    dispatch(c, r);
    if (!r->keep_alive) {
        c->read_done = true;
        return HPE_PAUSED;
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
    conn_t *c = s->data;
    if (c->closing) return;
    if (nread < 0) {
        /* EOF or error: answer what was fully received, drop a partial request. */
        if (nread != UV_EOF || c->lingering) {
            conn_close(c);
            return;
        }
        req_free(c->cur);
        c->cur = NULL;
        c->read_done = true;
        update_reading(c);
        if (!c->qh && !c->writes) {
            conn_close(c);
            return;
        }
        flush(c);
        return;
    }
    if (nread == 0 || c->lingering || c->read_done) return;
    llhttp_errno_t e = llhttp_execute(&c->parser, b->base, (size_t)nread);
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        c->read_done = true;
    } else if (e != HPE_OK) {
        int status = c->err_status ? c->err_status : 400;
        char msg[160];
        if (c->err_status) snprintf(msg, sizeof(msg), "%s", c->err_msg);
        else snprintf(msg, sizeof(msg), "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
        if (!c->cur) c->cur = req_new(c);
        queue_error(c, status, msg);
    }
    if (!c->closing) flush(c);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void on_reject_closed(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *ls, int status) {
    fanns_http_server_t *srv = ls->data;
    conn_t *c;
    if (status < 0) {
        fanns_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    if (srv->shutting_down) return;
    if (srv->nconns >= srv->o.max_connections) {
        /* Over the limit: accept, answer 503 if the socket takes it at once, and close. */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (!t) return;
        uv_tcp_init(&srv->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0) {
            uv_buf_t b = uv_buf_init(srv->resp503, (unsigned)strlen(srv->resp503));
            (void)uv_try_write((uv_stream_t *)t, &b, 1);
        }
        fanns_warn("connection refused: %u connections open (max_connections)", srv->nconns);
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) return;
    c->srv = srv;
    uv_tcp_init(&srv->loop, &c->tcp);
    uv_timer_init(&srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->refs = 2;
    c->dfd = -1;
    pthread_mutex_init(&c->dmu, NULL);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) c->dfd = fd;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    c->fresh = true;
    c->hdr_deadline = uv_now(&srv->loop) + srv->o.header_timeout_ms;
    update_reading(c);
    update_timer(c);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void close_server_handles(fanns_http_server_t *srv) {
    if (srv->handles_closed) return;
    srv->handles_closed = true;
    if (srv->listener_open && !uv_is_closing((uv_handle_t *)&srv->listener)) uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->async, NULL);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    fanns_pool_close(srv->search_pool); /* its handles close after the last search completes */
    if (srv->signals_on) {
        uv_close((uv_handle_t *)&srv->sigint, NULL);
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
    }
}

/* Closes every connection; unless force, one still writing its last response closes when
 * the write completes (maybe_finish sees closed_all). */
static void close_all(fanns_http_server_t *srv, bool force) {
    conn_t *c, *next;
    if (srv->closed_all) return;
    srv->closed_all = true;
    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (!force && c->writes && !c->qh) {
            req_free(c->cur);
            c->cur = NULL;
            c->read_done = true;
            c->lingering = false;
            update_reading(c);
        } else {
            conn_close(c);
        }
    }
    close_server_handles(srv);
}

static void check_drain(fanns_http_server_t *srv) {
    if (srv->shutting_down && !srv->closed_all && srv->inflight == 0) {
        fanns_info("in-flight requests finished, closing %u connections", srv->nconns);
        close_all(srv, false);
    }
}

static void on_drain_timeout(uv_timer_t *t) {
    fanns_http_server_t *srv = t->data;
    fanns_warn("shutdown timeout: closing %u connections with %zu requests unanswered", srv->nconns, srv->inflight);
    close_all(srv, true);
}

static void begin_shutdown(fanns_http_server_t *srv) {
    if (srv->shutting_down) return;
    srv->shutting_down = true;
    atomic_store(&srv->stopping, true);
    fanns_info("shutting down: no new connections, draining %zu in-flight requests", srv->inflight);
    if (srv->listener_open) uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_timer_start(&srv->drain_timer, on_drain_timeout, srv->o.shutdown_timeout_ms, 0);
    check_drain(srv);
}

static void on_async(uv_async_t *a) { begin_shutdown(a->data); }

static void on_signal(uv_signal_t *s, int signum) {
    fanns_http_server_t *srv = s->data;
    if (srv->signals_seen++ > 0) {
        fanns_warn("second signal %d: exiting immediately", signum);
        _exit(1);
    }
    fanns_info("signal %d received", signum);
    begin_shutdown(srv);
}

/* ---- public API ---------------------------------------------------------------------------- */

void fanns_http_opts_init(fanns_http_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->host = "0.0.0.0";
    o->port = 6333;
    o->max_request_size = DEFAULT_MAX_REQUEST;
    o->max_header_size = DEFAULT_MAX_HEADER;
    o->max_connections = DEFAULT_MAX_CONNS;
    o->header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    o->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    o->shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
}

void fanns_http_size_threadpool(void) {
    char v[16];
    unsigned n;
    if (getenv("UV_THREADPOOL_SIZE")) return;
    n = 2 * uv_available_parallelism();
    if (n < 4) n = 4;
    if (n > 1024) n = 1024;
    snprintf(v, sizeof(v), "%u", n);
    setenv("UV_THREADPOOL_SIZE", v, 0);
}

static uint32_t random_u32(void) {
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) v = 0;
        close(fd);
    }
    if (!v) v = (uint32_t)now_ns() ^ ((uint32_t)getpid() << 16);
    return v;
}

int fanns_http_new(const fanns_http_opts_t *opts, fanns_http_server_t **out, fanns_err_t *err) {
    fanns_http_server_t *srv;
    int rc;
    *out = NULL;
    if (!opts || !opts->handle) return fanns_err_set(err, FANNS_EINVAL, NULL, "http server needs a request handler");
    fanns_http_size_threadpool();
    srv = calloc(1, sizeof(*srv));
    if (!srv) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    srv->o = *opts;
    if (!srv->o.max_request_size) srv->o.max_request_size = DEFAULT_MAX_REQUEST;
    if (!srv->o.max_header_size) srv->o.max_header_size = DEFAULT_MAX_HEADER;
    if (!srv->o.max_connections) srv->o.max_connections = DEFAULT_MAX_CONNS;
    if (!srv->o.header_timeout_ms) srv->o.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (!srv->o.idle_timeout_ms) srv->o.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (!srv->o.shutdown_timeout_ms) srv->o.shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
    srv->host = strdup(opts->host ? opts->host : "0.0.0.0");
    srv->port_file = opts->port_file ? strdup(opts->port_file) : NULL;
    if (!srv->host || (opts->port_file && !srv->port_file)) {
        free(srv->host);
        free(srv->port_file);
        free(srv);
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    }
    srv->o.host = srv->host;
    srv->o.port_file = srv->port_file;
    srv->rid_prefix = random_u32();
    {
        fanns_api_resp_t e;
        make_error(srv, 503, "too many open connections", &e);
        snprintf(srv->resp503, sizeof(srv->resp503),
                 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%.*s",
                 e.content_type ? e.content_type : "application/json", e.body_len, (int)e.body_len,
                 e.body ? e.body : "");
        free(e.body);
    }
    if ((rc = uv_loop_init(&srv->loop)) != 0) {
        free(srv->host);
        free(srv->port_file);
        free(srv);
        return fanns_err_set(err, FANNS_EIO, NULL, "uv_loop_init: %s", uv_strerror(rc));
    }
    if ((rc = fanns_pool_new(&srv->loop, srv->o.search_threads ? srv->o.search_threads : fanns_pool_default_threads(),
                             "fanns-search", &srv->search_pool, err)) != 0) {
        uv_loop_close(&srv->loop);
        free(srv->host);
        free(srv->port_file);
        free(srv);
        return rc;
    }
    uv_async_init(&srv->loop, &srv->async, on_async);
    srv->async.data = srv;
    uv_timer_init(&srv->loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    uv_unref((uv_handle_t *)&srv->drain_timer);
    if (opts->handle_signals) {
        uv_signal_init(&srv->loop, &srv->sigint);
        uv_signal_init(&srv->loop, &srv->sigterm);
        srv->sigint.data = srv->sigterm.data = srv;
        uv_signal_start(&srv->sigint, on_signal, SIGINT);
        uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
        srv->signals_on = true;
    }
    llhttp_settings_init(&srv->settings);
    srv->settings.on_message_begin = cb_message_begin;
    srv->settings.on_url = cb_url;
    srv->settings.on_header_field = cb_header_field;
    srv->settings.on_header_field_complete = cb_header_field_complete;
    srv->settings.on_header_value = cb_header_value;
    srv->settings.on_header_value_complete = cb_header_value_complete;
    srv->settings.on_headers_complete = cb_headers_complete;
    srv->settings.on_body = cb_body;
    srv->settings.on_message_complete = cb_message_complete;
    *out = srv;
    return 0;
}

static int write_port_file(const char *path, int port, fanns_err_t *err) {
    char tmp[4200];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) return fanns_err_errno(err, errno, "cannot write port file");
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) return fanns_err_errno(err, errno, "cannot write port file");
    return 0;
}

int fanns_http_listen(fanns_http_server_t *srv, fanns_err_t *err) {
    struct sockaddr_storage ss;
    int rc, len = sizeof(ss);
    char fields[320];

    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(srv->host, srv->o.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(srv->host, srv->o.port, (struct sockaddr_in6 *)&ss) != 0)
        return fanns_err_set(err, FANNS_EINVAL, "service.host", "invalid listen address '%s' (want an IPv4 or IPv6 literal)", srv->host);
    uv_tcp_init(&srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) != 0)
        return fanns_err_set(err, FANNS_EIO, NULL, "cannot listen on %s:%d: %s", srv->host, srv->o.port, uv_strerror(rc));
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(fields, sizeof(fields), "host=%s port=%d max_connections=%u max_request_size=%zu", srv->host,
             srv->port, srv->o.max_connections, srv->o.max_request_size);
    /* Printed at any level but "off": tests and operators find the bound port here. */
    if (fanns_log_get_level() != FANNS_LOG_OFF) fanns_log(FANNS_LOG_INFO, fields, "listening");
    if (srv->port_file && (rc = write_port_file(srv->port_file, srv->port, err)) != 0) return rc;
    return 0;
}

int fanns_http_port(const fanns_http_server_t *srv) { return srv->port; }

int fanns_http_run(fanns_http_server_t *srv) {
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    return 0;
}

void fanns_http_shutdown(fanns_http_server_t *srv) { uv_async_send(&srv->async); }

static void close_any(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void fanns_http_free(fanns_http_server_t *srv) {
    if (!srv) return;
    /* A server that never ran (or stopped early) still has handles open: close them first. */
    if (!srv->closed_all) {
        srv->shutting_down = true;
        close_all(srv, true);
    }
    uv_walk(&srv->loop, close_any, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    fanns_pool_free(srv->search_pool);
    free(srv->host);
    free(srv->port_file);
    free(srv);
}
