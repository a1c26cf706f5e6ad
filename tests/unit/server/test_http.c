/*
 * test_http.c: black-box tests of server/http.c over loopback sockets.
 *
 * Each test starts the server in-process on 127.0.0.1:0 on its own thread, with a fake request
 * handler (no proto, no storage), and talks to it with raw sockets so the bytes on the wire are
 * exactly what the test wrote.  The fake handler answers:
 *   /slow?ms=N  after sleeping N ms (on a worker), body "slow N"
 *   /block      once the test releases it (g_release), body "unblocked"
 *   anything    "<method> <path> q=<query> len=<body_len> rid=<id>\n<body>"
 * and "/" is "cheap" (answered on the loop thread).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

/* ---- fake handler ------------------------------------------------------------------------- */

static atomic_int g_release;
static atomic_int g_blocked;        /* handlers currently inside /block */
static atomic_int g_loop_thread_calls;
static pthread_t g_server_thread;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static char g_last_thread_name[16]; /* of the thread that answered the last /echo request */

static void fake_handle(void *ctx, const fanns_api_req_t *req, fanns_api_resp_t *resp) {
    char head[512];
    int n;
    (void)ctx;
    if (!strncmp(req->path, "/echo", 5)) pthread_getname_np(pthread_self(), g_last_thread_name, sizeof(g_last_thread_name));
    if (pthread_equal(pthread_self(), g_server_thread)) atomic_fetch_add(&g_loop_thread_calls, 1);
    resp->status = 200;
    resp->content_type = "text/plain";
    if (!strcmp(req->path, "/slow")) {
        long ms = req->query ? atol(req->query + 3) : 0;
        sleep_ms(ms);
        n = snprintf(head, sizeof(head), "slow %ld", ms);
        resp->body = strdup(head);
        resp->body_len = (size_t)n;
        return;
    }
    if (!strcmp(req->path, "/block")) {
        atomic_fetch_add(&g_blocked, 1);
        for (int i = 0; i < 2000 && !atomic_load(&g_release); i++) sleep_ms(5);
        atomic_fetch_sub(&g_blocked, 1);
        resp->body = strdup("unblocked");
        resp->body_len = 9;
        return;
    }
    n = snprintf(head, sizeof(head), "%s %s q=%s len=%zu rid=%s\n", req->method, req->path,
                 req->query ? req->query : "(null)", req->body_len, req->request_id ? req->request_id : "");
    resp->body = malloc((size_t)n + req->body_len + 1);
    memcpy(resp->body, head, (size_t)n);
    if (req->body_len) memcpy(resp->body + n, req->body, req->body_len);
    resp->body_len = (size_t)n + req->body_len;
}

/* An injected error formatter, to check the server uses it for its own errors. */
static void fake_error(int status, const char *msg, fanns_api_resp_t *resp) {
    char b[256];
    int n = snprintf(b, sizeof(b), "fake-error %d: %s", status, msg);
    resp->status = status;
    resp->content_type = "text/x-fake";
    resp->body = strdup(b);
    resp->body_len = (size_t)n;
}

static bool fake_cheap(void *ctx, const fanns_api_req_t *req) {
    (void)ctx;
    return !strcmp(req->path, "/");
}

/* With FANNS_TEST_HTTP_LANE=search (a second CTest entry) every request the loop does not
 * answer runs on the search pool, with two threads, instead of libuv's pool: the whole suite
 * then covers that lane too (direct writes, quiet completions, draining on shutdown). */
static bool g_search_lane;
static bool fake_search(void *ctx, const fanns_api_req_t *req) {
    (void)ctx;
    (void)req;
    return true;
}

/* ---- server fixture ----------------------------------------------------------------------- */

static fanns_http_server_t *g_srv;
static int g_port;
static atomic_int g_run_returned;

static void *run_thread(void *arg) {
    (void)arg;
    fanns_http_run(g_srv);
    atomic_store(&g_run_returned, 1);
    return NULL;
}

static void start_server(fanns_http_opts_t *o) {
    fanns_err_t err;
    o->host = "127.0.0.1";
    o->port = 0;
    o->handle = fake_handle;
    o->is_cheap = fake_cheap;
    if (g_search_lane) {
        o->is_search = fake_search;
        o->search_threads = 2;
    }
    atomic_store(&g_release, 0);
    atomic_store(&g_run_returned, 0);
    ck_assert_int_eq(fanns_http_new(o, &g_srv, &err), 0);
    ck_assert_msg(fanns_http_listen(g_srv, &err) == 0, "listen: %s", err.msg);
    g_port = fanns_http_port(g_srv);
    ck_assert_int_gt(g_port, 0);
    ck_assert_int_eq(pthread_create(&g_server_thread, NULL, run_thread, NULL), 0);
}

static void start_default(void) {
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    start_server(&o);
}

static void stop_server(void) {
    atomic_store(&g_release, 1);
    fanns_http_shutdown(g_srv);
    pthread_join(g_server_thread, NULL);
    fanns_http_free(g_srv);
    g_srv = NULL;
}

/* ---- raw client ----------------------------------------------------------------------------- */

typedef struct cli {
    int fd;
    char *buf;
    size_t len, cap;
} cli_t;

typedef struct resp {
    int status;
    char headers[4096];
    char *body;
    size_t body_len;
} resp_t;

static cli_t *cli_open(void) {
    struct sockaddr_in a;
    struct timeval tv = {5, 0};
    cli_t *c = calloc(1, sizeof(*c));
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c;
}

static void cli_close(cli_t *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    free(c);
}

static void cli_send(cli_t *c, const char *s, size_t n) {
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send failed: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

static void cli_sends(cli_t *c, const char *s) { cli_send(c, s, strlen(s)); }

/* Reads more bytes into the buffer: >0 read, 0 EOF, -1 error or timeout. */
static ssize_t cli_fill(cli_t *c) {
    if (c->len == c->cap) return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0) c->len += (size_t)n;
    return n;
}

/* Reads one response.  no_body: the response to HEAD.  Returns 0, or -1 on EOF/timeout. */
static int cli_read_resp(cli_t *c, resp_t *r, bool no_body) {
    char *end;
    size_t hlen, clen = 0;
    memset(r, 0, sizeof(*r));
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (cli_fill(c) <= 0) return -1;
    hlen = (size_t)(end - c->buf) + 4;
    ck_assert_uint_lt(hlen, sizeof(r->headers));
    memcpy(r->headers, c->buf, hlen);
    r->headers[hlen] = 0;
    ck_assert_msg(sscanf(r->headers, "HTTP/1.1 %d ", &r->status) == 1, "bad status line: %s", r->headers);
    char *cl = strcasestr(r->headers, "\r\ncontent-length:");
    if (cl) clen = strtoul(cl + 17, NULL, 10);
    if (no_body || r->status < 200) clen = 0;
    while (c->len < hlen + clen)
        if (cli_fill(c) <= 0) return -1;
    r->body = malloc(clen + 1);
    memcpy(r->body, c->buf + hlen, clen);
    r->body[clen] = 0;
    r->body_len = clen;
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return 0;
}

/* True if the server closes the connection (EOF or reset) with no further response bytes. */
static bool cli_eof(cli_t *c) {
    if (c->len) return false;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof(b), 0);
    if (n == 0) return true;
    if (n < 0 && errno == ECONNRESET) return true;
    return false;
}

static bool has_header(const resp_t *r, const char *line) { return strcasestr(r->headers, line) != NULL; }

static void resp_free(resp_t *r) { free(r->body); }

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- tests ----------------------------------------------------------------------------------- */

START_TEST(test_keepalive_two_requests) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    cli_sends(c, "GET /echo/one?a=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "GET /echo/one q=a=1 len=0 rid=abc-123\n");
    ck_assert(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    ck_assert(has_header(&r, "\r\nx-request-id: abc-123\r\n"));
    ck_assert(has_header(&r, "\r\nContent-Type: text/plain\r\n"));
    resp_free(&r);
    cli_sends(c, "GET /echo/two HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!strncmp(r.body, "GET /echo/two q=(null) len=0 rid=", 33));
    /* A generated request id is 16 hex digits and is the one sent back. */
    char rid[64];
    ck_assert_int_eq(sscanf(r.body + 33, "%63s", rid), 1);
    ck_assert_uint_eq(strlen(rid), 16);
    char want[128];
    snprintf(want, sizeof(want), "\r\nx-request-id: %s\r\n", rid);
    ck_assert(has_header(&r, want));
    resp_free(&r);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_http10_keepalive_rules) {
    resp_t r;
    start_default();
    /* HTTP/1.0 without keep-alive: one response, then the server closes. */
    cli_t *c = cli_open();
    cli_sends(c, "GET /echo/a HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    /* HTTP/1.0 with Connection: keep-alive stays open for a second request. */
    c = cli_open();
    cli_sends(c, "GET /echo/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    resp_free(&r);
    cli_sends(c, "GET /echo/c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(!strncmp(r.body, "GET /echo/c ", 12));
    resp_free(&r);
    cli_close(c);
    /* HTTP/1.1 with Connection: close is answered, then closed. */
    c = cli_open();
    cli_sends(c, "GET /echo/d HTTP/1.1\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_pipelined_in_order) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    /* The first request finishes last on the workers; answers must still come in order. */
    cli_sends(c, "GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /slow?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_str_eq(r.body, "slow 300");
    resp_free(&r);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_str_eq(r.body, "slow 1");
    resp_free(&r);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(!strncmp(r.body, "GET / q=(null) len=0", 20));
    resp_free(&r);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(!strncmp(r.body, "POST /echo/p q=(null) len=3", 27));
    ck_assert(!strcmp(r.body + r.body_len - 4, "\nabc"));
    resp_free(&r);
    /* "/" is cheap and ran on the loop thread; the others did not. */
    ck_assert_int_eq(atomic_load(&g_loop_thread_calls), 1);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_chunked_body) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    cli_sends(c, "POST /echo/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n");
    sleep_ms(50); /* the rest arrives in another read */
    cli_sends(c, "7\r\n, world\r\n0\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(strchr(r.body, '\n') + 1, "hello, world");
    ck_assert(!strncmp(r.body, "POST /echo/ch q=(null) len=12", 29));
    resp_free(&r);
    /* A Content-Length body split over several writes. */
    cli_sends(c, "PUT /echo/cl HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    sleep_ms(50);
    cli_sends(c, "456789");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_str_eq(strchr(r.body, '\n') + 1, "0123456789");
    resp_free(&r);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_body_too_large) {
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.max_request_size = 1024;
    start_server(&o);
    /* Refused from the Content-Length header, before any body byte is sent. */
    cli_t *c = cli_open();
    cli_sends(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    ck_assert(has_header(&r, "\r\nContent-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "{\"status\":{\"error\":\""));
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    /* Exactly at the limit is accepted. */
    c = cli_open();
    char *big = malloc(1024 + 200);
    int n = snprintf(big, 200, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
    memset(big + n, 'x', 1024);
    cli_send(c, big, (size_t)n + 1024);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    cli_close(c);
    /* Chunked: refused as the chunks accumulate past the limit. */
    c = cli_open();
    cli_sends(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    n = snprintf(big, 200, "300\r\n");
    memset(big + n, 'y', 0x300);
    memcpy(big + n + 0x300, "\r\n", 2);
    cli_send(c, big, (size_t)n + 0x300 + 2);
    cli_send(c, big, (size_t)n + 0x300 + 2);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    free(big);
    stop_server();
}
END_TEST

START_TEST(test_malformed_request) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    cli_sends(c, "THIS IS NOT HTTP\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    /* A bad percent escape in the path. */
    c = cli_open();
    cli_sends(c, "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    /* A good request before the garbage on the same connection is still answered first. */
    c = cli_open();
    cli_sends(c, "GET /echo/ok HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_header_too_large) {
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.max_header_size = 1024;
    start_server(&o);
    cli_t *c = cli_open();
    char hdr[3000];
    int n = snprintf(hdr, sizeof(hdr), "GET /echo HTTP/1.1\r\nX-Big: ");
    memset(hdr + n, 'h', 2000);
    strcpy(hdr + n + 2000, "\r\n\r\n");
    cli_sends(c, hdr);
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 431);
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_percent_decoding_and_head) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    cli_sends(c, "GET /collections/my%20coll%2Fx?wait=true&x=%41 HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    /* The path is decoded, the query is passed raw. */
    ck_assert(!strncmp(r.body, "GET /collections/my coll/x q=wait=true&x=%41 len=0", 50));
    resp_free(&r);
    /* An absolute-form target is reduced to its path. */
    cli_sends(c, "GET http://example.com:6333/abs/p%2Bq?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(!strncmp(r.body, "GET /abs/p+q q=x=1 len=0", 24));
    resp_free(&r);
    /* HEAD is answered like GET without a body, with the GET body's length. */
    cli_sends(c, "HEAD /echo/h HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, true), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strcasestr(r.headers, "Content-Length: "));
    ck_assert_uint_gt(strtoul(strcasestr(r.headers, "Content-Length: ") + 16, NULL, 10), 0);
    resp_free(&r);
    /* Nothing from the HEAD body is left on the wire: the next response parses. */
    cli_sends(c, "GET /echo/after HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert(!strncmp(r.body, "GET /echo/after ", 16));
    resp_free(&r);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_expect_continue) {
    resp_t r;
    start_default();
    cli_t *c = cli_open();
    cli_sends(c, "POST /echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 100);
    resp_free(&r);
    cli_sends(c, "data");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(strchr(r.body, '\n') + 1, "data");
    resp_free(&r);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_header_timeout) {
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.header_timeout_ms = 300;
    o.idle_timeout_ms = 5000;
    start_server(&o);
    cli_t *c = cli_open();
    double t0 = mono_s();
    /* Headers trickle in but never end: 408, then close, at the header deadline even though
     * bytes keep arriving. */
    cli_sends(c, "GET /echo HTTP/1.1\r\n");
    sleep_ms(150);
    cli_sends(c, "Host: x\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 408);
    resp_free(&r);
    ck_assert(cli_eof(c));
    double dt = mono_s() - t0;
    ck_assert_msg(dt >= 0.25 && dt < 3.0, "closed after %.3f s", dt);
    cli_close(c);
    /* A connection that never sends anything is closed silently. */
    c = cli_open();
    ck_assert(cli_eof(c));
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_idle_timeout) {
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.idle_timeout_ms = 300;
    start_server(&o);
    cli_t *c = cli_open();
    cli_sends(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    resp_free(&r);
    double t0 = mono_s();
    ck_assert(cli_eof(c));
    double dt = mono_s() - t0;
    ck_assert_msg(dt >= 0.2 && dt < 3.0, "closed after %.3f s", dt);
    cli_close(c);
    stop_server();
}
END_TEST

START_TEST(test_connection_limit) {
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.max_connections = 2;
    o.error = fake_error;
    start_server(&o);
    cli_t *a = cli_open(), *b = cli_open();
    /* Make sure both are accepted before the third arrives. */
    cli_sends(a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(a, &r, false), 0);
    resp_free(&r);
    cli_sends(b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(b, &r, false), 0);
    resp_free(&r);
    cli_t *c = cli_open();
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "fake-error 503: too many open connections");
    ck_assert(has_header(&r, "\r\nContent-Type: text/x-fake\r\n"));
    resp_free(&r);
    ck_assert(cli_eof(c));
    cli_close(c);
    /* Once one closes, a new connection is served. */
    cli_close(a);
    sleep_ms(100);
    c = cli_open();
    cli_sends(c, "GET /echo/again HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(c, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    cli_close(c);
    cli_close(b);
    stop_server();
}
END_TEST

START_TEST(test_readyz_and_graceful_shutdown) {
    resp_t r;
    start_default();
    cli_t *a = cli_open(), *b = cli_open();
    cli_sends(b, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(b, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "all shards are ready");
    resp_free(&r);
    /* A request in flight holds the shutdown open. */
    cli_sends(a, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 400 && !atomic_load(&g_blocked); i++) sleep_ms(5);
    ck_assert_int_eq(atomic_load(&g_blocked), 1);
    fanns_http_shutdown(g_srv);
    sleep_ms(100);
    ck_assert_int_eq(atomic_load(&g_run_returned), 0);
    /* The existing connection now sees 503 from /readyz. */
    cli_sends(b, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(b, &r, false), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    resp_free(&r);
    /* New connections are refused. */
    {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ne(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
    }
    /* The in-flight request completes and is answered, then everything closes. */
    atomic_store(&g_release, 1);
    ck_assert_int_eq(cli_read_resp(a, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "unblocked");
    ck_assert(has_header(&r, "\r\nConnection: close\r\n"));
    resp_free(&r);
    ck_assert(cli_eof(a));
    ck_assert(cli_eof(b));
    pthread_join(g_server_thread, NULL);
    ck_assert_int_eq(atomic_load(&g_run_returned), 1);
    fanns_http_free(g_srv);
    cli_close(a);
    cli_close(b);
}
END_TEST

START_TEST(test_shutdown_timeout_bounds_drain) {
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.shutdown_timeout_ms = 200;
    start_server(&o);
    cli_t *a = cli_open();
    cli_sends(a, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 400 && !atomic_load(&g_blocked); i++) sleep_ms(5);
    double t0 = mono_s();
    fanns_http_shutdown(g_srv);
    /* The connection is closed at the deadline although the handler is still running. */
    ck_assert(cli_eof(a));
    double dt = mono_s() - t0;
    ck_assert_msg(dt >= 0.15 && dt < 3.0, "closed after %.3f s", dt);
    ck_assert_int_eq(atomic_load(&g_blocked), 1);
    atomic_store(&g_release, 1);
    pthread_join(g_server_thread, NULL);
    fanns_http_free(g_srv);
    cli_close(a);
}
END_TEST

START_TEST(test_client_gone_during_work) {
    resp_t r;
    start_default();
    cli_t *a = cli_open();
    cli_sends(a, "GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
    sleep_ms(50);
    cli_close(a); /* the requests are still on workers */
    sleep_ms(400);
    cli_t *b = cli_open();
    cli_sends(b, "GET /echo/still-alive HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_read_resp(b, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    cli_close(b);
    stop_server();
}
END_TEST

START_TEST(test_client_half_close_still_answered) {
    resp_t r;
    start_default();
    cli_t *a = cli_open();
    cli_sends(a, "GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(a->fd, SHUT_WR);
    ck_assert_int_eq(cli_read_resp(a, &r, false), 0);
    ck_assert_str_eq(r.body, "slow 100");
    resp_free(&r);
    ck_assert_int_eq(cli_read_resp(a, &r, false), 0);
    ck_assert(!strncmp(r.body, "GET /echo/2 ", 12));
    resp_free(&r);
    ck_assert(cli_eof(a));
    cli_close(a);
    stop_server();
}
END_TEST

START_TEST(test_port_file_and_bad_host) {
    fanns_http_opts_t o;
    fanns_err_t err;
    fanns_http_server_t *s;
    char path[] = "/tmp/fanns-test-port-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fanns_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.port_file = path;
    o.handle = fake_handle;
    unsetenv("UV_THREADPOOL_SIZE");
    ck_assert_int_eq(fanns_http_new(&o, &s, &err), 0);
    /* The pool is sized for the machine unless the user set UV_THREADPOOL_SIZE. */
    ck_assert_ptr_nonnull(getenv("UV_THREADPOOL_SIZE"));
    ck_assert_int_ge(atoi(getenv("UV_THREADPOOL_SIZE")), 4);
    ck_assert_int_eq(fanns_http_listen(s, &err), 0);
    FILE *f = fopen(path, "r");
    int port = -1;
    ck_assert_int_eq(fscanf(f, "%d", &port), 1);
    fclose(f);
    ck_assert_int_eq(port, fanns_http_port(s));
    fanns_http_free(s);
    unlink(path);

    o.port_file = NULL;
    o.host = "not-an-address";
    ck_assert_int_eq(fanns_http_new(&o, &s, &err), 0);
    ck_assert_int_eq(fanns_http_listen(s, &err), FANNS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not-an-address"));
    fanns_http_free(s);

    o.handle = NULL;
    ck_assert_int_eq(fanns_http_new(&o, &s, &err), FANNS_EINVAL);
}
END_TEST

/* Many small requests on several keep-alive connections at once: every response arrives, in
 * order, whatever lane answers them; then, with nothing else happening, the server still
 * finishes its bookkeeping (on the search lane most completions are quiet and run on a later
 * loop turn or the sweep timer) so that shutdown drains at once instead of at its timeout. */
START_TEST(test_many_quick_requests) {
    enum { NC = 4, NR = 300 };
    cli_t *c[NC];
    char req[128];
    resp_t r;
    fanns_http_opts_t o;
    fanns_http_opts_init(&o);
    o.shutdown_timeout_ms = 20000;
    start_server(&o);
    for (int k = 0; k < NC; k++) c[k] = cli_open();
    for (int i = 0; i < NR; i++) {
        for (int k = 0; k < NC; k++) {
            snprintf(req, sizeof(req), "GET /echo/%d/%d HTTP/1.1\r\nHost: x\r\n\r\n", k, i);
            cli_sends(c[k], req);
        }
        for (int k = 0; k < NC; k++) {
            char want[64];
            snprintf(want, sizeof(want), "GET /echo/%d/%d ", k, i);
            ck_assert_int_eq(cli_read_resp(c[k], &r, false), 0);
            ck_assert_int_eq(r.status, 200);
            ck_assert_msg(!strncmp(r.body, want, strlen(want)), "got %s, want %s", r.body, want);
            resp_free(&r);
        }
    }
    /* The lane asked for is the lane used. */
    if (g_search_lane) ck_assert_str_eq(g_last_thread_name, "fanns-search");
    else ck_assert_str_ne(g_last_thread_name, "fanns-search");
    sleep_ms(50);
    double t0 = mono_s();
    fanns_http_shutdown(g_srv);
    pthread_join(g_server_thread, NULL);
    double dt = mono_s() - t0;
    ck_assert_msg(dt < 2.0, "shutdown took %.3f s", dt);
    fanns_http_free(g_srv);
    for (int k = 0; k < NC; k++) {
        ck_assert(cli_eof(c[k]));
        cli_close(c[k]);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_keepalive_two_requests);
    tcase_add_test(tc, test_http10_keepalive_rules);
    tcase_add_test(tc, test_pipelined_in_order);
    tcase_add_test(tc, test_chunked_body);
    tcase_add_test(tc, test_body_too_large);
    tcase_add_test(tc, test_malformed_request);
    tcase_add_test(tc, test_header_too_large);
    tcase_add_test(tc, test_percent_decoding_and_head);
    tcase_add_test(tc, test_expect_continue);
    tcase_add_test(tc, test_header_timeout);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_connection_limit);
    tcase_add_test(tc, test_readyz_and_graceful_shutdown);
    tcase_add_test(tc, test_shutdown_timeout_bounds_drain);
    tcase_add_test(tc, test_client_gone_during_work);
    tcase_add_test(tc, test_client_half_close_still_answered);
    tcase_add_test(tc, test_port_file_and_bad_host);
    tcase_add_test(tc, test_many_quick_requests);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    g_search_lane = getenv("FANNS_TEST_HTTP_LANE") && !strcmp(getenv("FANNS_TEST_HTTP_LANE"), "search");
    fanns_log_set_level(getenv("FANNS_TEST_LOG") ? FANNS_LOG_DEBUG : FANNS_LOG_OFF);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
