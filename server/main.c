/*
 * main.c: fannsd, the fanns server process.
 *
 * Start-up: settings (config.h) -> logs -> distance kernels -> database (storage/db.h, the
 * data directory is created if missing) -> API (proto/api.h) -> HTTP server (http.h) wired to
 * fanns_api_handle.  Shutdown on SIGTERM/SIGINT is graceful (see fanns_http_shutdown); after
 * the loop returns no request is running, so the API and the database are freed safely.
 *
 * Exit status: 0 after a clean shutdown, 1 when start-up fails, 2 for bad settings.
 *
 * Before anything else, fannsd may execute itself once more to put OMP_WAIT_POLICY=PASSIVE
 * in its environment (see omp_passive_reexec).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "db.h"
#include "distance.h"
#include "err.h"
#include "http.h"
#include "log.h"

#ifndef FANNS_VERSION
#define FANNS_VERSION "0.0.0"
#endif

extern char **environ;

#define REEXEC_MARKER "FANNSD_OMP_REEXEC"

/* FAISS trains product quantizers with OpenMP k-means.  libgomp's default wait policy lets
 * idle worker threads spin, which on a small machine shared with the server's own threads
 * made training about 60 times slower than with OMP_WAIT_POLICY=PASSIVE.  libgomp reads the
 * variable once, in a constructor that runs when the library is loaded, before main: setting
 * it here is too late for this process.  So when it is unset, set it and execute the same
 * binary again with the same arguments; an operator's explicit value is always kept.  The
 * marker stops a second attempt whatever happens, and if exec fails the server simply runs
 * with libgomp's default. */
static void omp_passive_reexec(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv(REEXEC_MARKER)) return;
    if (setenv(REEXEC_MARKER, "1", 1) != 0 || setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* Still here: exec failed.  The variable stays set (harmless) and start-up goes on. */
}

static void handle(void *ctx, const fanns_api_req_t *req, fanns_api_resp_t *resp) {
    fanns_api_handle(ctx, req, resp);
}

static bool is_cheap(void *ctx, const fanns_api_req_t *req) {
    (void)ctx;
    return fanns_api_is_cheap(req);
}

static bool is_search(void *ctx, const fanns_api_req_t *req) {
    (void)ctx;
    return fanns_api_is_search(req);
}

/* mkdir -p: creates dir and its missing parents. */
static int make_dirs(const char *dir, fanns_err_t *err) {
    char path[FANNS_CONFIG_STR_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) return fanns_err_set(err, FANNS_EINVAL, "storage.data_dir", "bad data directory");
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char saved = path[i];
            path[i] = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                path[i] = saved;
                return fanns_err_errno(err, e, "cannot create data directory");
            }
            path[i] = saved;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    fanns_config_t cfg;
    fanns_config_action_t action;
    fanns_err_t err;
    fanns_http_opts_t hopts;
    fanns_http_server_t *srv = NULL;
    fanns_db_t *db = NULL;
    fanns_api_t *api = NULL;
    char fields[1200];
    int rc, status = 1;

    omp_passive_reexec(argv);
    fanns_err_clear(&err);
    signal(SIGPIPE, SIG_IGN);
    if (fanns_config_load(&cfg, argc, argv, environ, &action, &err) != 0) {
        fprintf(stderr, "fannsd: %s\n", err.msg);
        return 2;
    }
    if (action == FANNS_CONFIG_HELP) {
        fanns_config_print_help(stdout, "fannsd");
        return 0;
    }
    if (action == FANNS_CONFIG_VERSION) {
        printf("fannsd %s\n", FANNS_VERSION);
        return 0;
    }
    fanns_log_set_level((fanns_log_level_t)cfg.log_level);
    fanns_http_size_threadpool();
    fanns_dist_init();
    snprintf(fields, sizeof(fields), "version=%s isa=%s data_dir=\"%s\"", FANNS_VERSION, fanns_dist_isa(), cfg.data_dir);
    if (FANNS_LOG_ENABLED(FANNS_LOG_INFO)) fanns_log(FANNS_LOG_INFO, fields, "starting fannsd");

    if (make_dirs(cfg.data_dir, &err) != 0) goto fail;
    if ((rc = fanns_db_open(cfg.data_dir, NULL, &db, &err)) != 0) goto fail;
    if ((rc = fanns_api_new(db, &api)) != 0) {
        fanns_err_set(&err, rc, NULL, "cannot create the API: %s", fanns_err_name(rc));
        goto fail;
    }

    fanns_http_opts_init(&hopts);
    hopts.host = cfg.host;
    hopts.port = cfg.http_port;
    hopts.max_request_size = (size_t)cfg.max_request_size_mb << 20;
    hopts.max_header_size = (size_t)cfg.max_header_size_kb << 10;
    hopts.max_connections = cfg.max_connections;
    hopts.header_timeout_ms = cfg.header_timeout_sec * 1000u;
    hopts.idle_timeout_ms = cfg.idle_timeout_sec * 1000u;
    hopts.shutdown_timeout_ms = cfg.shutdown_timeout_sec * 1000u;
    hopts.port_file = cfg.port_file[0] ? cfg.port_file : NULL;
    hopts.handle_signals = true;
    hopts.handle = handle;
    hopts.is_cheap = is_cheap;
    hopts.is_search = is_search;
    hopts.search_threads = cfg.max_search_threads;
    hopts.error = fanns_api_error_response;
    hopts.ctx = api;
    if (fanns_http_new(&hopts, &srv, &err) != 0) goto fail;
    if (fanns_http_listen(srv, &err) != 0) goto fail;
    fanns_http_run(srv);
    fanns_http_free(srv);
    srv = NULL;
    fanns_info("server stopped");
    status = 0;
    goto done;

fail:
    fanns_error("start-up failed: %s", err.msg);
done:
    if (srv) fanns_http_free(srv);
    if (api) fanns_api_free(api);
    if (db) fanns_db_close(db);
    if (status == 0) fanns_info("bye");
    return status;
}
