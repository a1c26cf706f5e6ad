/*
 * config.h: fannsd settings from defaults, a YAML config file, environment variables and the
 * command line, in that order of precedence (later wins).
 *
 * Every setting has one row in a table (config.c) giving its command-line flag, its
 * environment variable (FANNS__SECTION__KEY, like Qdrant's QDRANT__SECTION__KEY), its key in
 * the file (section.key) and its bounds.  Unknown file keys and bad values are errors; the
 * caller prints the message and exits with status 2.
 *
 * File format: a YAML subset as in Qdrant's config.yaml: nested maps by indentation (spaces),
 * "key: value" scalars, "#" comments, single- or double-quoted strings, null/~ for "keep the
 * default".  Lists, anchors and multi-line scalars are not supported.
 */
#ifndef FANNS_CONFIG_H
#define FANNS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

#define FANNS_CONFIG_STR_MAX 1024

typedef struct fanns_config {
    char host[256];                         /* service.host */
    int http_port;                          /* service.http_port, 0 = ephemeral */
    unsigned max_request_size_mb;           /* service.max_request_size_mb */
    unsigned max_header_size_kb;            /* service.max_header_size_kb */
    unsigned max_connections;               /* service.max_connections */
    unsigned header_timeout_sec;            /* service.header_timeout_sec */
    unsigned idle_timeout_sec;              /* service.idle_timeout_sec */
    unsigned shutdown_timeout_sec;          /* service.shutdown_timeout_sec */
    char port_file[FANNS_CONFIG_STR_MAX];   /* service.port_file, "" = none */
    unsigned max_search_threads;            /* performance.max_search_threads, 0 = one per core */
    char data_dir[FANNS_CONFIG_STR_MAX];    /* storage.data_dir */
    int log_level;                          /* log_level, a fanns_log_level_t */
    char config_file[FANNS_CONFIG_STR_MAX]; /* --config, "" = none */
} fanns_config_t;

typedef enum {
    FANNS_CONFIG_RUN = 0,
    FANNS_CONFIG_HELP,
    FANNS_CONFIG_VERSION
} fanns_config_action_t;

/* Fills cfg with the compiled defaults. */
void fanns_config_defaults(fanns_config_t *cfg);

/* Applies the YAML text (name is used in messages, e.g. the file path).  Returns 0 or
 * FANNS_EINVAL with err naming the line and key. */
int fanns_config_apply_yaml(fanns_config_t *cfg, const char *text, const char *name, fanns_err_t *err);

/* Reads and applies a config file.  Returns 0, FANNS_EIO (unreadable) or FANNS_EINVAL. */
int fanns_config_apply_file(fanns_config_t *cfg, const char *path, fanns_err_t *err);

/* Applies FANNS__* variables from envp (a NULL-terminated "NAME=value" array, as environ).
 * Unknown FANNS__ names are ignored (other tools may share the prefix).  Returns 0 or
 * FANNS_EINVAL. */
int fanns_config_apply_env(fanns_config_t *cfg, char *const *envp, fanns_err_t *err);

/* Applies command-line options argv[1..argc).  Sets *action for --help / --version.
 * Returns 0 or FANNS_EINVAL (unknown option, missing or bad value). */
int fanns_config_apply_args(fanns_config_t *cfg, int argc, char *const *argv, fanns_config_action_t *action,
                            fanns_err_t *err);

/* The whole sequence: defaults, the file named by --config/--config-path (if any), envp, then
 * the command line.  Returns 0 or an error as above. */
int fanns_config_load(fanns_config_t *cfg, int argc, char *const *argv, char *const *envp,
                      fanns_config_action_t *action, fanns_err_t *err);

/* Prints usage: every option with its default, environment variable and file key. */
void fanns_config_print_help(FILE *f, const char *prog);

#endif
