/*
 * config.c: fannsd settings (see config.h).
 *
 * One table lists every setting; the file parser, the environment reader, the command-line
 * parser and --help all walk it, so a new setting is one new row.  Values from every source
 * go through set_value, which validates them the same way, so "http_port: 99999" in a file,
 * FANNS__SERVICE__HTTP_PORT=99999 and --port 99999 give the same error.
 *
 * The YAML subset parser keeps a stack of (indent, key) for the open maps; a line's key path
 * is the keys of the maps whose indent is smaller than the line's, plus its own key.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum { T_STR, T_UINT, T_PORT, T_LOGLEVEL } opt_type_t;

typedef struct opt {
    const char *flag;       /* command-line flag without "--" */
    const char *env;        /* environment variable */
    const char *key;        /* dotted file key */
    opt_type_t type;
    size_t off;             /* offset in fanns_config_t */
    size_t size;            /* buffer size for T_STR */
    unsigned long min, max; /* bounds for T_UINT */
    const char *defval;     /* default, as text (also shown by --help) */
    const char *help;
} opt_t;

#define OFF(f) offsetof(fanns_config_t, f)
#define SZ(f) sizeof(((fanns_config_t *)0)->f)

static const opt_t OPTS[] = {
    {"host", "FANNS__SERVICE__HOST", "service.host", T_STR, OFF(host), SZ(host), 0, 0, "0.0.0.0",
     "address to listen on (IPv4 or IPv6 literal)"},
    {"port", "FANNS__SERVICE__HTTP_PORT", "service.http_port", T_PORT, OFF(http_port), 0, 0, 65535, "6333",
     "HTTP port; 0 picks a free port (see --port-file)"},
    {"data-dir", "FANNS__STORAGE__DATA_DIR", "storage.data_dir", T_STR, OFF(data_dir), SZ(data_dir), 0, 0,
     "./data", "directory holding the database (created if missing)"},
    {"log-level", "FANNS__LOG_LEVEL", "log_level", T_LOGLEVEL, OFF(log_level), 0, 0, 0, "info",
     "debug, info, warn, error or off"},
    {"max-request-size-mb", "FANNS__SERVICE__MAX_REQUEST_SIZE_MB", "service.max_request_size_mb", T_UINT,
     OFF(max_request_size_mb), 0, 1, 4096, "32", "largest request body accepted (413 beyond)"},
    {"max-header-size-kb", "FANNS__SERVICE__MAX_HEADER_SIZE_KB", "service.max_header_size_kb", T_UINT,
     OFF(max_header_size_kb), 0, 1, 1024, "64", "largest request line + headers (431 beyond)"},
    {"max-connections", "FANNS__SERVICE__MAX_CONNECTIONS", "service.max_connections", T_UINT,
     OFF(max_connections), 0, 1, 1000000, "1024", "open connections; beyond it 503 and close"},
    {"header-timeout-sec", "FANNS__SERVICE__HEADER_TIMEOUT_SEC", "service.header_timeout_sec", T_UINT,
     OFF(header_timeout_sec), 0, 1, 86400, "30", "time allowed to send request headers (408 beyond)"},
    {"idle-timeout-sec", "FANNS__SERVICE__IDLE_TIMEOUT_SEC", "service.idle_timeout_sec", T_UINT,
     OFF(idle_timeout_sec), 0, 1, 86400, "60", "idle keep-alive connections are closed after this"},
    {"shutdown-timeout-sec", "FANNS__SERVICE__SHUTDOWN_TIMEOUT_SEC", "service.shutdown_timeout_sec", T_UINT,
     OFF(shutdown_timeout_sec), 0, 1, 86400, "30", "on SIGTERM, wait this long for in-flight requests"},
    {"max-search-threads", "FANNS__PERFORMANCE__MAX_SEARCH_THREADS", "performance.max_search_threads", T_UINT,
     OFF(max_search_threads), 0, 0, 4096, "0", "threads answering searches; 0 = one per core"},
    {"port-file", "FANNS__SERVICE__PORT_FILE", "service.port_file", T_STR, OFF(port_file), SZ(port_file), 0, 0,
     "", "write the bound port to this file after listening"},
};
#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))

/* Sections that may appear as maps in the file. */
static const char *SECTIONS[] = {"service", "storage", "performance"};

static int set_value(fanns_config_t *cfg, const opt_t *o, const char *val, const char *src, fanns_err_t *err) {
    char *p = (char *)cfg + o->off;
    switch (o->type) {
    case T_STR: {
        size_t n = strlen(val);
        if (n >= o->size)
            return fanns_err_set(err, FANNS_EINVAL, o->key, "%s: value for %s is too long (max %zu bytes)", src,
                                 o->key, o->size - 1);
        if (n == 0 && !strcmp(o->key, "service.host"))
            return fanns_err_set(err, FANNS_EINVAL, o->key, "%s: %s must not be empty", src, o->key);
        memcpy(p, val, n + 1);
        return 0;
    }
    case T_LOGLEVEL: {
        int lvl = fanns_log_parse_level(val);
        if (lvl < 0)
            return fanns_err_set(err, FANNS_EINVAL, o->key,
                                 "%s: bad value '%s' for %s (want debug, info, warn, error or off)", src, val, o->key);
        *(int *)p = lvl;
        return 0;
    }
    case T_UINT:
    case T_PORT: {
        char *end;
        unsigned long v;
        unsigned long lo = o->type == T_PORT ? 0 : o->min, hi = o->max;
        errno = 0;
        if (!isdigit((unsigned char)val[0])) goto bad;
        v = strtoul(val, &end, 10);
        if (errno || *end || v < lo || v > hi) goto bad;
        if (o->type == T_PORT) *(int *)p = (int)v;
        else *(unsigned *)p = (unsigned)v;
        return 0;
    bad:
        return fanns_err_set(err, FANNS_EINVAL, o->key, "%s: bad value '%s' for %s (want an integer from %lu to %lu)",
                             src, val, o->key, lo, hi);
    }
    }
    return fanns_err_set(err, FANNS_EINTERNAL, o->key, "unhandled option type");
}

void fanns_config_defaults(fanns_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++) {
        int rc = set_value(cfg, &OPTS[i], OPTS[i].defval, "default", NULL);
        (void)rc; /* the defaults are valid by construction (tested) */
    }
}

/* ---- YAML subset --------------------------------------------------------------------------- */

static const opt_t *find_key(const char *key) {
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcmp(OPTS[i].key, key)) return &OPTS[i];
    return NULL;
}

static bool is_section(const char *key) {
    for (size_t i = 0; i < sizeof(SECTIONS) / sizeof(SECTIONS[0]); i++)
        if (!strcmp(SECTIONS[i], key)) return true;
    return false;
}

/* Parses a scalar starting at s (leading spaces skipped) into out; strips a trailing comment.
 * Returns 0, or -1 with *why set. */
static int parse_scalar(const char *s, char *out, size_t cap, bool *is_null, const char **why) {
    size_t n = 0;
    *is_null = false;
    while (*s == ' ') s++;
    if (*s == '"' || *s == '\'') {
        char q = *s++;
        for (;; s++) {
            char ch = *s;
            if (!ch) { *why = "unterminated quoted string"; return -1; }
            if (ch == q) {
                if (q == '\'' && s[1] == '\'') { ch = '\''; s++; }
                else { s++; break; }
            } else if (q == '"' && ch == '\\') {
                s++;
                switch (*s) {
                case 'n': ch = '\n'; break;
                case 't': ch = '\t'; break;
                case '\\': ch = '\\'; break;
                case '"': ch = '"'; break;
                case '/': ch = '/'; break;
                default: *why = "unsupported escape in double-quoted string"; return -1;
                }
            }
            if (n + 1 >= cap) { *why = "value too long"; return -1; }
            out[n++] = ch;
        }
        out[n] = 0;
        while (*s == ' ' || *s == '\t') s++;
        if (*s && *s != '#') { *why = "unexpected text after quoted string"; return -1; }
        return 0;
    }
    /* Plain scalar: up to " #" or end, trailing blanks trimmed. */
    for (; *s; s++) {
        if (*s == '#' && (n == 0 || out[n - 1] == ' ' || out[n - 1] == '\t')) break;
        if (n + 1 >= cap) { *why = "value too long"; return -1; }
        out[n++] = *s;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t' || out[n - 1] == '\r')) n--;
    out[n] = 0;
    if (n == 0 || !strcmp(out, "~") || !strcmp(out, "null") || !strcmp(out, "Null") || !strcmp(out, "NULL"))
        *is_null = true;
    if (out[0] == '[' || out[0] == '{' || out[0] == '&' || out[0] == '*' || out[0] == '|' || out[0] == '>') {
        *why = "only plain and quoted scalars are supported";
        return -1;
    }
    return 0;
}

int fanns_config_apply_yaml(fanns_config_t *cfg, const char *text, const char *name, fanns_err_t *err) {
    struct { int indent; char key[64]; } stack[8];
    int depth = 0, lineno = 0;
    const char *line = text;
    char val[FANNS_CONFIG_STR_MAX + 8], path[256], src[300];

    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[2048];
        const char *s, *colon, *why = NULL;
        int indent = 0;
        bool is_null;

        lineno++;
        snprintf(src, sizeof(src), "%s:%d", name, lineno);
        if (len >= sizeof(buf)) return fanns_err_set(err, FANNS_EINVAL, NULL, "%s: line too long", src);
        memcpy(buf, line, len);
        buf[len] = 0;
        line = eol ? eol + 1 : NULL;
        if (len && buf[len - 1] == '\r') buf[--len] = 0;

        while (buf[indent] == ' ') indent++;
        s = buf + indent;
        if (*s == '\t') return fanns_err_set(err, FANNS_EINVAL, NULL, "%s: tabs are not allowed for indentation", src);
        if (*s == 0 || *s == '#') continue;
        if (!strcmp(s, "---")) continue;
        if (*s == '-') return fanns_err_set(err, FANNS_EINVAL, NULL, "%s: lists are not supported", src);

        /* key: the text before the first ": " or a trailing ":" */
        colon = s;
        while ((colon = strchr(colon, ':')) && colon[1] != ' ' && colon[1] != 0 && colon[1] != '\t') colon++;
        if (!colon) return fanns_err_set(err, FANNS_EINVAL, NULL, "%s: expected 'key: value'", src);
        char key[64];
        size_t klen = (size_t)(colon - s);
        while (klen && s[klen - 1] == ' ') klen--;
        if (klen == 0 || klen >= sizeof(key)) return fanns_err_set(err, FANNS_EINVAL, NULL, "%s: bad key", src);
        memcpy(key, s, klen);
        key[klen] = 0;
        if ((key[0] == '"' || key[0] == '\'') && klen >= 2 && key[klen - 1] == key[0]) {
            memmove(key, key + 1, klen - 2);
            key[klen - 2] = 0;
        }

        while (depth > 0 && stack[depth - 1].indent >= indent) depth--;
        path[0] = 0;
        for (int i = 0; i < depth; i++) {
            strncat(path, stack[i].key, sizeof(path) - strlen(path) - 2);
            strcat(path, ".");
        }
        strncat(path, key, sizeof(path) - strlen(path) - 1);

        if (parse_scalar(colon + 1, val, sizeof(val), &is_null, &why) != 0)
            return fanns_err_set(err, FANNS_EINVAL, path, "%s: %s: %s", src, path, why);

        const opt_t *o = find_key(path);
        if (is_null && !o) {
            /* "key:" opens a map. */
            if (!is_section(path))
                return fanns_err_set(err, FANNS_EINVAL, path, "%s: unknown key '%s'", src, path);
            if (depth >= (int)(sizeof(stack) / sizeof(stack[0])))
                return fanns_err_set(err, FANNS_EINVAL, path, "%s: nesting too deep", src);
            stack[depth].indent = indent;
            snprintf(stack[depth].key, sizeof(stack[depth].key), "%s", key);
            depth++;
            continue;
        }
        if (!o) {
            if (is_section(path))
                return fanns_err_set(err, FANNS_EINVAL, path, "%s: '%s' is a section, not a value", src, path);
            return fanns_err_set(err, FANNS_EINVAL, path, "%s: unknown key '%s'", src, path);
        }
        if (is_null) continue; /* keep the current value */
        int rc = set_value(cfg, o, val, src, err);
        if (rc) return rc;
        /* A scalar cannot have children: push it so deeper lines are reported as unknown keys. */
        if (depth < (int)(sizeof(stack) / sizeof(stack[0]))) {
            stack[depth].indent = indent;
            snprintf(stack[depth].key, sizeof(stack[depth].key), "%s", key);
            depth++;
        }
    }
    return 0;
}

int fanns_config_apply_file(fanns_config_t *cfg, const char *path, fanns_err_t *err) {
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;
    int rc;
    if (!f) return fanns_err_set(err, FANNS_EIO, NULL, "cannot open config file %s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fanns_err_set(err, FANNS_EIO, NULL, "cannot read config file %s (missing, unreadable or over 1 MiB)", path);
    }
    text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        free(text);
        fclose(f);
        return fanns_err_set(err, FANNS_EIO, NULL, "cannot read config file %s", path);
    }
    fclose(f);
    text[n] = 0;
    if (strlen(text) != (size_t)n) {
        free(text);
        return fanns_err_set(err, FANNS_EINVAL, NULL, "config file %s contains a NUL byte", path);
    }
    rc = fanns_config_apply_yaml(cfg, text, path, err);
    free(text);
    return rc;
}

int fanns_config_apply_env(fanns_config_t *cfg, char *const *envp, fanns_err_t *err) {
    if (!envp) return 0;
    for (size_t i = 0; i < NOPTS; i++) {
        size_t n = strlen(OPTS[i].env);
        for (char *const *e = envp; *e; e++) {
            if (!strncmp(*e, OPTS[i].env, n) && (*e)[n] == '=') {
                char src[96];
                snprintf(src, sizeof(src), "environment %s", OPTS[i].env);
                int rc = set_value(cfg, &OPTS[i], *e + n + 1, src, err);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

int fanns_config_apply_args(fanns_config_t *cfg, int argc, char *const *argv, fanns_config_action_t *action,
                            fanns_err_t *err) {
    *action = FANNS_CONFIG_RUN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[64];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { *action = FANNS_CONFIG_HELP; return 0; }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) { *action = FANNS_CONFIG_VERSION; return 0; }
        if (strncmp(a, "--", 2) != 0)
            return fanns_err_set(err, FANNS_EINVAL, NULL, "unexpected argument '%s' (see --help)", a);
        a += 2;
        eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof(name)) return fanns_err_set(err, FANNS_EINVAL, NULL, "unknown option '%s' (see --help)", argv[i]);
        memcpy(name, a, nlen);
        name[nlen] = 0;
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return fanns_err_set(err, FANNS_EINVAL, NULL, "option --%s needs a value", name);
        if (!strcmp(name, "config") || !strcmp(name, "config-path")) {
            if (strlen(val) >= sizeof(cfg->config_file))
                return fanns_err_set(err, FANNS_EINVAL, NULL, "config path too long");
            snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", val);
            continue;
        }
        const opt_t *o = NULL;
        for (size_t k = 0; k < NOPTS; k++)
            if (!strcmp(OPTS[k].flag, name)) o = &OPTS[k];
        if (!o) return fanns_err_set(err, FANNS_EINVAL, NULL, "unknown option '--%s' (see --help)", name);
        char src[96];
        snprintf(src, sizeof(src), "option --%s", name);
        int rc = set_value(cfg, o, val, src, err);
        if (rc) return rc;
    }
    return 0;
}

int fanns_config_load(fanns_config_t *cfg, int argc, char *const *argv, char *const *envp,
                      fanns_config_action_t *action, fanns_err_t *err) {
    fanns_config_t scratch;
    int rc;
    /* First pass over the command line only to find --config (and --help/--version, which must
     * work even when other settings are broken). */
    fanns_config_defaults(&scratch);
    rc = fanns_config_apply_args(&scratch, argc, argv, action, err);
    if (rc || *action != FANNS_CONFIG_RUN) return rc;
    fanns_config_defaults(cfg);
    snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", scratch.config_file);
    if (cfg->config_file[0] && (rc = fanns_config_apply_file(cfg, cfg->config_file, err)) != 0) return rc;
    if ((rc = fanns_config_apply_env(cfg, envp, err)) != 0) return rc;
    return fanns_config_apply_args(cfg, argc, argv, action, err);
}

void fanns_config_print_help(FILE *f, const char *prog) {
    fprintf(f,
            "Usage: %s [options]\n\n"
            "fanns server: filtered approximate nearest-neighbour search with a Qdrant-compatible REST API.\n\n"
            "Settings come from defaults < config file < environment < command line.\n\n"
            "Options:\n",
            prog);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &OPTS[i];
        fprintf(f, "  --%-24s %s (default: %s)\n", o->flag, o->help, o->defval[0] ? o->defval : "none");
        fprintf(f, "  %-26s env %s, file key %s\n", "", o->env, o->key);
    }
    fprintf(f,
            "  --%-24s read settings from a YAML file (sections service:, storage:, key log_level)\n"
            "  --%-24s same as --config\n"
            "  --%-24s print this help and exit\n"
            "  --%-24s print the version and exit\n\n"
            "Example config file:\n"
            "  log_level: info\n"
            "  service:\n"
            "    host: 0.0.0.0\n"
            "    http_port: 6333\n"
            "  storage:\n"
            "    data_dir: ./data\n\n"
            "Exit status: 0 after a clean shutdown (SIGTERM/SIGINT; a second signal exits at once),\n"
            "1 on a start-up failure, 2 on a configuration error.\n",
            "config FILE", "config-path FILE", "help", "version");
}
