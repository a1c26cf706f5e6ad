/*
 * fanns.c: the fanns command-line client.
 *
 * Talks to a fanns (or Qdrant) server over its REST API with plain POSIX sockets: one
 * HTTP/1.1 request per connection ("Connection: close"), body sent with Content-Length,
 * response read with Content-Length, chunked transfer coding or to end of stream.  JSON is
 * built and parsed with jansson.  It shares no code with the server on purpose: it is a
 * client of the wire protocol only.
 *
 * Exit status: 0 on success, 1 when the server answers an error or cannot be reached,
 * 2 for a usage error.
 */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef FANNS_VERSION
#define FANNS_VERSION "0.0.0"
#endif

#define DEFAULT_URL "http://127.0.0.1:6333"

typedef struct url {
    char host[256];
    char port[16];
    char prefix[512]; /* path prefix from the URL, without a trailing '/' */
} url_t;

typedef struct response {
    int status;
    char *body;
    size_t len;
} response_t;

static int g_timeout_sec = 60;

static void usage(FILE *f) {
    fprintf(f,
            "Usage: fanns [--url URL] [--timeout SEC] <command> [args]\n\n"
            "Commands:\n"
            "  ping                              GET / and print the server's name and version\n"
            "  collections                       list collection names\n"
            "  info <collection>                 print the collection's description (JSON)\n"
            "  create <collection> --size N [--distance Cosine|Euclid|Dot|Manhattan]\n"
            "                                    create a collection (default distance Cosine)\n"
            "  delete <collection>               delete a collection\n"
            "  query <collection> --vector '[..]' [--filter JSON] [--limit N] [--exact]\n"
            "        [--with-payload] [--json]   nearest neighbours: one 'id<TAB>score[<TAB>payload]'\n"
            "                                    line per hit, or the raw result with --json\n"
            "  upsert <collection> --file points.jsonl [--batch N]\n"
            "                                    upsert points, one JSON object per line:\n"
            "                                    {\"id\": 1, \"vector\": [..], \"payload\": {..}}\n"
            "  raw <METHOD> <PATH> [BODY]        send any request and print the response body\n\n"
            "Options:\n"
            "  --url URL       server address (default %s, or $FANNS_URL)\n"
            "  --timeout SEC   socket timeout in seconds (default 60)\n"
            "  --help          print this help\n"
            "  --version       print the client version\n",
            DEFAULT_URL);
}

static int parse_url(const char *s, url_t *u) {
    const char *p, *slash, *colon;
    memset(u, 0, sizeof(*u));
    if (!strncmp(s, "http://", 7)) s += 7;
    else if (strstr(s, "://")) {
        fprintf(stderr, "fanns: only http:// URLs are supported: %s\n", s);
        return -1;
    }
    slash = strchr(s, '/');
    p = slash ? slash : s + strlen(s);
    if (*s == '[') { /* [v6]:port */
        const char *rb = memchr(s, ']', (size_t)(p - s));
        if (!rb || (size_t)(rb - s - 1) >= sizeof(u->host)) return -1;
        memcpy(u->host, s + 1, (size_t)(rb - s - 1));
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(s, ':', (size_t)(p - s));
        size_t hl = (size_t)((colon ? colon : p) - s);
        if (hl == 0 || hl >= sizeof(u->host)) return -1;
        memcpy(u->host, s, hl);
    }
    if (colon) {
        size_t pl = (size_t)(p - colon - 1);
        if (pl == 0 || pl >= sizeof(u->port)) return -1;
        memcpy(u->port, colon + 1, pl);
    } else {
        strcpy(u->port, "80");
    }
    if (slash) {
        snprintf(u->prefix, sizeof(u->prefix), "%s", slash);
        size_t n = strlen(u->prefix);
        while (n && u->prefix[n - 1] == '/') u->prefix[--n] = 0;
    }
    return 0;
}

static int connect_to(const url_t *u) {
    struct addrinfo hints, *res, *ai;
    struct timeval tv = {g_timeout_sec, 0};
    int fd = -1, rc;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
        fprintf(stderr, "fanns: cannot resolve %s: %s\n", u->host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) fprintf(stderr, "fanns: cannot connect to %s:%s: %s\n", u->host, u->port, strerror(errno));
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decodes a chunked body in place; returns its length or -1. */
static long dechunk(char *p, size_t n) {
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        unsigned long sz = strtoul(p + in, &end, 16);
        char *crlf = memmem(p + in, n - in, "\r\n", 2);
        if (!crlf || end == p + in) return -1;
        in = (size_t)(crlf - p) + 2;
        if (sz == 0) return (long)out;
        if (in + sz + 2 > n) return -1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz + 2;
    }
}

/* Sends one request and reads the whole response.  Returns 0 or -1 (message printed). */
static int http_request(const url_t *u, const char *method, const char *path, const char *body, size_t blen,
                        response_t *resp) {
    char head[2048];
    char *buf = NULL, *hend;
    size_t len = 0, cap = 0;
    int fd, n;

    memset(resp, 0, sizeof(*resp));
    n = snprintf(head, sizeof(head),
                 "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: fanns-cli/%s\r\nAccept: application/json\r\n"
                 "Connection: close\r\n%sContent-Length: %zu\r\n\r\n",
                 method, u->prefix, path, u->host, u->port, FANNS_VERSION,
                 body ? "Content-Type: application/json\r\n" : "", body ? blen : 0);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        fprintf(stderr, "fanns: request path too long\n");
        return -1;
    }
    if ((fd = connect_to(u)) < 0) return -1;
    if (send_all(fd, head, (size_t)n) || (body && send_all(fd, body, blen))) {
        fprintf(stderr, "fanns: send failed: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *nb = realloc(buf, cap);
            if (!nb) { fprintf(stderr, "fanns: out of memory\n"); goto fail; }
            buf = nb;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { fprintf(stderr, "fanns: receive failed: %s\n", strerror(errno)); goto fail; }
        if (r == 0) break;
        len += (size_t)r;
        buf[len] = 0;
        /* Stop early once a Content-Length body is complete (the server may keep the socket). */
        if ((hend = memmem(buf, len, "\r\n\r\n", 4))) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (strncmp(buf, "HTTP/1.1 100", 12) && cl && cl < hend &&
                len >= (size_t)(hend + 4 - buf) + strtoul(cl + 17, NULL, 10))
                break;
        }
    }
    close(fd);
    fd = -1;
    if (!buf) goto short_resp;
    buf[len] = 0;
    /* Skip interim 1xx responses. */
    while (!strncmp(buf, "HTTP/1.1 1", 10) && (hend = memmem(buf, len, "\r\n\r\n", 4))) {
        size_t skip = (size_t)(hend + 4 - buf);
        memmove(buf, buf + skip, len - skip + 1);
        len -= skip;
    }
    hend = memmem(buf, len, "\r\n\r\n", 4);
    if (!hend || sscanf(buf, "HTTP/%*d.%*d %d", &resp->status) != 1) goto short_resp;
    *hend = 0;
    size_t hlen = (size_t)(hend - buf) + 4, blen2 = len - hlen;
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    char *te = strcasestr(buf, "\r\ntransfer-encoding:");
    if (cl) {
        size_t want = strtoul(cl + 17, NULL, 10);
        if (want > blen2) goto short_resp;
        blen2 = want;
    } else if (te && strcasestr(te, "chunked")) {
        long d = dechunk(buf + hlen, blen2);
        if (d < 0) goto short_resp;
        blen2 = (size_t)d;
    }
    memmove(buf, buf + hlen, blen2);
    buf[blen2] = 0;
    resp->body = buf;
    resp->len = blen2;
    return 0;
short_resp:
    fprintf(stderr, "fanns: malformed or truncated response from %s:%s\n", u->host, u->port);
fail:
    if (fd >= 0) close(fd);
    free(buf);
    return -1;
}

/* Parses a JSON body; on an HTTP error prints the server's message.  Returns the root or NULL. */
static json_t *expect_ok(const response_t *r) {
    json_error_t je;
    json_t *root = json_loadb(r->body, r->len, 0, &je);
    if (r->status < 200 || r->status >= 300) {
        const char *msg = NULL;
        json_t *st = root ? json_object_get(root, "status") : NULL;
        if (st && json_is_object(st)) msg = json_string_value(json_object_get(st, "error"));
        fprintf(stderr, "fanns: HTTP %d: %s\n", r->status, msg ? msg : (r->len ? r->body : "(no body)"));
        json_decref(root);
        return NULL;
    }
    if (!root) fprintf(stderr, "fanns: response is not JSON: %s\n", je.text);
    return root;
}

static int call_json(const url_t *u, const char *method, const char *path, json_t *body, json_t **out) {
    response_t r;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = http_request(u, method, path, text, text ? strlen(text) : 0, &r);
    free(text);
    if (rc) return 1;
    *out = expect_ok(&r);
    free(r.body);
    return *out ? 0 : 1;
}

/* Percent-encodes a collection name for use in a path. */
static void path_escape(const char *s, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (; *s && j + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '_' || ch == '.' || ch == '~') {
            out[j++] = (char)ch;
        } else {
            out[j++] = '%';
            out[j++] = hex[ch >> 4];
            out[j++] = hex[ch & 15];
        }
    }
    out[j] = 0;
}

static void print_json(json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) puts(s);
    free(s);
}

static int cmd_ping(const url_t *u) {
    json_t *root;
    if (call_json(u, "GET", "/", NULL, &root)) return 1;
    const char *title = json_string_value(json_object_get(root, "title"));
    const char *ver = json_string_value(json_object_get(root, "version"));
    printf("%s %s\n", title ? title : "(unknown server)", ver ? ver : "(unknown version)");
    json_decref(root);
    return 0;
}

static int cmd_collections(const url_t *u) {
    json_t *root, *list;
    size_t i;
    json_t *c;
    if (call_json(u, "GET", "/collections", NULL, &root)) return 1;
    list = json_object_get(json_object_get(root, "result"), "collections");
    json_array_foreach(list, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (name) puts(name);
    }
    json_decref(root);
    return 0;
}

static int cmd_info(const url_t *u, const char *coll) {
    char path[1200], esc[1024];
    json_t *root;
    path_escape(coll, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/collections/%s", esc);
    if (call_json(u, "GET", path, NULL, &root)) return 1;
    print_json(json_object_get(root, "result"));
    json_decref(root);
    return 0;
}

static json_t *parse_arg_json(const char *opt, const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) fprintf(stderr, "fanns: %s is not valid JSON: %s\n", opt, je.text);
    return v;
}

static int cmd_create(const url_t *u, const char *coll, int argc, char **argv) {
    char path[1200], esc[1024];
    long size = -1;
    const char *dist = "Cosine";
    json_t *root;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atol(argv[++i]);
        else if (!strcmp(argv[i], "--distance") && i + 1 < argc) dist = argv[++i];
        else { fprintf(stderr, "fanns: create: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (size <= 0) { fprintf(stderr, "fanns: create needs --size N (N > 0)\n"); return 2; }
    json_t *body = json_pack("{s:{s:I,s:s}}", "vectors", "size", (json_int_t)size, "distance", dist);
    path_escape(coll, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/collections/%s", esc);
    int rc = call_json(u, "PUT", path, body, &root);
    json_decref(body);
    if (rc) return 1;
    printf("created %s\n", coll);
    json_decref(root);
    return 0;
}

static int cmd_delete(const url_t *u, const char *coll) {
    char path[1200], esc[1024];
    json_t *root;
    path_escape(coll, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/collections/%s", esc);
    if (call_json(u, "DELETE", path, NULL, &root)) return 1;
    printf("deleted %s\n", coll);
    json_decref(root);
    return 0;
}

static int cmd_query(const url_t *u, const char *coll, int argc, char **argv) {
    char path[1200], esc[1024];
    json_t *vector = NULL, *filter = NULL, *root = NULL, *body;
    long limit = 10;
    bool exact = false, with_payload = false, raw = false;
    int rc = 2;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--vector") && i + 1 < argc) {
            json_decref(vector);
            if (!(vector = parse_arg_json("--vector", argv[++i]))) goto out;
        } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
            json_decref(filter);
            if (!(filter = parse_arg_json("--filter", argv[++i]))) goto out;
        } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            limit = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--exact")) {
            exact = true;
        } else if (!strcmp(argv[i], "--with-payload")) {
            with_payload = true;
        } else if (!strcmp(argv[i], "--json")) {
            raw = true;
        } else {
            fprintf(stderr, "fanns: query: unexpected argument '%s'\n", argv[i]);
            goto out;
        }
    }
    if (!vector || !json_is_array(vector)) {
        fprintf(stderr, "fanns: query needs --vector '[x, y, ...]'\n");
        goto out;
    }
    if (limit <= 0) {
        fprintf(stderr, "fanns: --limit must be positive\n");
        goto out;
    }
    body = json_pack("{s:O,s:I,s:b}", "query", vector, "limit", (json_int_t)limit, "with_payload", with_payload);
    if (filter) json_object_set(body, "filter", filter);
    if (exact) json_object_set_new(body, "params", json_pack("{s:b}", "exact", 1));
    path_escape(coll, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/collections/%s/points/query", esc);
    rc = call_json(u, "POST", path, body, &root);
    json_decref(body);
    if (rc) goto out;
    json_t *result = json_object_get(root, "result");
    if (raw) {
        print_json(result);
    } else {
        json_t *pts = json_is_object(result) ? json_object_get(result, "points") : result, *p;
        size_t i;
        json_array_foreach(pts, i, p) {
            json_t *id = json_object_get(p, "id"), *payload = json_object_get(p, "payload");
            char *ids = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%s\t%.6g", ids ? ids : "?", json_number_value(json_object_get(p, "score")));
            free(ids);
            if (with_payload && payload) {
                char *ps = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
                printf("\t%s", ps ? ps : "");
                free(ps);
            }
            putchar('\n');
        }
    }
    rc = 0;
out:
    json_decref(vector);
    json_decref(filter);
    json_decref(root);
    return rc;
}

static int flush_batch(const url_t *u, const char *path, json_t *points, long *total) {
    json_t *root, *body;
    size_t n = json_array_size(points);
    if (n == 0) return 0;
    body = json_pack("{s:O}", "points", points);
    int rc = call_json(u, "PUT", path, body, &root);
    json_decref(body);
    if (rc) return 1;
    json_decref(root);
    json_array_clear(points);
    *total += (long)n;
    return 0;
}

static int cmd_upsert(const url_t *u, const char *coll, int argc, char **argv) {
    char path[1200], esc[1024];
    const char *file = NULL;
    long batch = 256, total = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atol(argv[++i]);
        else { fprintf(stderr, "fanns: upsert: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!file || batch <= 0) { fprintf(stderr, "fanns: upsert needs --file FILE (use - for stdin)\n"); return 2; }
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!f) { fprintf(stderr, "fanns: cannot open %s: %s\n", file, strerror(errno)); return 1; }
    path_escape(coll, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/collections/%s/points?wait=true", esc);
    json_t *points = json_array();
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_error_t je;
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        if (n == 0) continue;
        json_t *p = json_loads(line, 0, &je);
        if (!p || !json_is_object(p)) {
            fprintf(stderr, "fanns: %s:%ld: not a JSON object%s%s\n", file, lineno, p ? "" : ": ", p ? "" : je.text);
            json_decref(p);
            rc = 1;
            break;
        }
        json_array_append_new(points, p);
        if ((long)json_array_size(points) >= batch && (rc = flush_batch(u, path, points, &total))) break;
    }
    if (!rc) rc = flush_batch(u, path, points, &total);
    json_decref(points);
    free(line);
    if (f != stdin) fclose(f);
    printf("upserted %ld points\n", total);
    return rc;
}

static int cmd_raw(const url_t *u, const char *method, const char *path, const char *body) {
    response_t r;
    if (path[0] != '/') { fprintf(stderr, "fanns: raw: path must start with '/'\n"); return 2; }
    if (http_request(u, method, path, body, body ? strlen(body) : 0, &r)) return 1;
    fwrite(r.body, 1, r.len, stdout);
    if (r.len && r.body[r.len - 1] != '\n') putchar('\n');
    free(r.body);
    return r.status >= 200 && r.status < 300 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *urls = getenv("FANNS_URL");
    url_t u;
    int i = 1;
    if (!urls || !*urls) urls = DEFAULT_URL;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--version")) { printf("fanns %s\n", FANNS_VERSION); return 0; }
        if (!strcmp(argv[i], "--url") && i + 1 < argc) urls = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) g_timeout_sec = atoi(argv[++i]);
        else { fprintf(stderr, "fanns: unknown option '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (i >= argc) { usage(stderr); return 2; }
    if (parse_url(urls, &u) != 0) { fprintf(stderr, "fanns: bad URL '%s'\n", urls); return 2; }
    if (g_timeout_sec <= 0) g_timeout_sec = 60;
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **rv = argv + i;
    if (!strcmp(cmd, "ping") && rest == 0) return cmd_ping(&u);
    if (!strcmp(cmd, "collections") && rest == 0) return cmd_collections(&u);
    if (!strcmp(cmd, "info") && rest == 1) return cmd_info(&u, rv[0]);
    if (!strcmp(cmd, "create") && rest >= 1) return cmd_create(&u, rv[0], rest - 1, rv + 1);
    if (!strcmp(cmd, "delete") && rest == 1) return cmd_delete(&u, rv[0]);
    if (!strcmp(cmd, "query") && rest >= 1) return cmd_query(&u, rv[0], rest - 1, rv + 1);
    if (!strcmp(cmd, "upsert") && rest >= 1) return cmd_upsert(&u, rv[0], rest - 1, rv + 1);
    if (!strcmp(cmd, "raw") && (rest == 2 || rest == 3)) return cmd_raw(&u, rv[0], rv[1], rest == 3 ? rv[2] : NULL);
    fprintf(stderr, "fanns: unknown command or wrong arguments: %s\n", cmd);
    usage(stderr);
    return 2;
}
