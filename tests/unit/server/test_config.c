/*
 * test_config.c: tests of server/config.c: defaults, the YAML subset, environment variables,
 * command-line options, their precedence, and the errors for unknown keys and bad values.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

START_TEST(test_defaults) {
    fanns_config_t c;
    fanns_config_defaults(&c);
    ck_assert_str_eq(c.host, "0.0.0.0");
    ck_assert_int_eq(c.http_port, 6333);
    ck_assert_str_eq(c.data_dir, "./data");
    ck_assert_int_eq(c.log_level, FANNS_LOG_INFO);
    ck_assert_uint_eq(c.max_request_size_mb, 32);
    ck_assert_uint_eq(c.max_header_size_kb, 64);
    ck_assert_uint_eq(c.max_connections, 1024);
    ck_assert_uint_eq(c.header_timeout_sec, 30);
    ck_assert_uint_eq(c.idle_timeout_sec, 60);
    ck_assert_uint_eq(c.shutdown_timeout_sec, 30);
    ck_assert_str_eq(c.port_file, "");
}
END_TEST

START_TEST(test_yaml_subset) {
    fanns_config_t c;
    fanns_err_t err;
    const char *y =
        "# fanns config\n"
        "---\n"
        "log_level: debug   # trailing comment\n"
        "\n"
        "service:\n"
        "  host: \"127.0.0.1\"\n"
        "  http_port: 7000\n"
        "  # indented comment\n"
        "  max_request_size_mb: 8\n"
        "  max_connections: ~\n"
        "storage:\n"
        "    data_dir: '/var/lib/it''s here'\n"
        "service:\n"
        "  idle_timeout_sec: 5\r\n";
    fanns_config_defaults(&c);
    ck_assert_msg(fanns_config_apply_yaml(&c, y, "test.yaml", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(c.log_level, FANNS_LOG_DEBUG);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 7000);
    ck_assert_uint_eq(c.max_request_size_mb, 8);
    ck_assert_uint_eq(c.max_connections, 1024); /* null keeps the default */
    ck_assert_str_eq(c.data_dir, "/var/lib/it's here");
    ck_assert_uint_eq(c.idle_timeout_sec, 5);
    /* A '#' inside a value without a space before it is part of the value. */
    fanns_config_defaults(&c);
    ck_assert_int_eq(fanns_config_apply_yaml(&c, "storage:\n  data_dir: /d#1 # c\n", "t", &err), 0);
    ck_assert_str_eq(c.data_dir, "/d#1");
}
END_TEST

static void expect_yaml_error(const char *y, const char *needle) {
    fanns_config_t c;
    fanns_err_t err;
    fanns_config_defaults(&c);
    ck_assert_int_eq(fanns_config_apply_yaml(&c, y, "f.yaml", &err), FANNS_EINVAL);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(test_yaml_errors) {
    expect_yaml_error("service:\n  hots: x\n", "unknown key 'service.hots'");
    expect_yaml_error("bogus: 1\n", "f.yaml:1: unknown key 'bogus'");
    expect_yaml_error("log_level: info\nservice:\n  http_port: 99999\n", "f.yaml:3");
    expect_yaml_error("service:\n  http_port: 12ab\n", "bad value '12ab' for service.http_port");
    expect_yaml_error("service:\n  max_connections: 0\n", "service.max_connections");
    expect_yaml_error("service:\n  max_request_size_mb: -1\n", "service.max_request_size_mb");
    expect_yaml_error("log_level: loud\n", "bad value 'loud' for log_level");
    expect_yaml_error("service:\n  host: \"open\n", "unterminated");
    expect_yaml_error("service:\n\thost: x\n", "tabs");
    expect_yaml_error("service:\n  - a\n", "lists");
    expect_yaml_error("service: 5\n", "is a section");
    expect_yaml_error("just text\n", "expected 'key: value'");
    expect_yaml_error("service:\n  http_port: 1\n    deeper: 2\n", "unknown key 'service.http_port.deeper'");
    /* Indentation decides nesting: a key back at column 0 leaves the section. */
    expect_yaml_error("service:\n  host: a\nhttp_port: 1\n", "unknown key 'http_port'");
}
END_TEST

START_TEST(test_env) {
    fanns_config_t c;
    fanns_err_t err;
    char *env[] = {"PATH=/bin", "FANNS__SERVICE__HTTP_PORT=1234", "FANNS__STORAGE__DATA_DIR=/x/y",
                   "FANNS__LOG_LEVEL=warn", "FANNS__SERVICE__MAX_CONNECTIONS=7", "FANNS__SERVICE__HOST=::1",
                   "FANNS__SERVICE__MAX_REQUEST_SIZE_MB=2", "FANNS__SOMETHING_ELSE=1", NULL};
    fanns_config_defaults(&c);
    ck_assert_int_eq(fanns_config_apply_env(&c, env, &err), 0);
    ck_assert_int_eq(c.http_port, 1234);
    ck_assert_str_eq(c.data_dir, "/x/y");
    ck_assert_int_eq(c.log_level, FANNS_LOG_WARN);
    ck_assert_uint_eq(c.max_connections, 7);
    ck_assert_str_eq(c.host, "::1");
    ck_assert_uint_eq(c.max_request_size_mb, 2);
    char *bad[] = {"FANNS__SERVICE__HTTP_PORT=http", NULL};
    ck_assert_int_eq(fanns_config_apply_env(&c, bad, &err), FANNS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "FANNS__SERVICE__HTTP_PORT"));
}
END_TEST

START_TEST(test_args) {
    fanns_config_t c;
    fanns_err_t err;
    fanns_config_action_t act;
    char *argv[] = {"fannsd", "--host", "127.0.0.1", "--port=0", "--data-dir", "/tmp/d", "--log-level", "ERROR",
                    "--max-request-size-mb", "1", "--max-connections", "3", "--port-file", "/tmp/p", NULL};
    fanns_config_defaults(&c);
    ck_assert_int_eq(fanns_config_apply_args(&c, 14, argv, &act, &err), 0);
    ck_assert_int_eq(act, FANNS_CONFIG_RUN);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 0);
    ck_assert_str_eq(c.data_dir, "/tmp/d");
    ck_assert_int_eq(c.log_level, FANNS_LOG_ERROR);
    ck_assert_uint_eq(c.max_request_size_mb, 1);
    ck_assert_uint_eq(c.max_connections, 3);
    ck_assert_str_eq(c.port_file, "/tmp/p");

    char *help[] = {"fannsd", "--port", "bad", "--help", NULL};
    /* --help wins only if reached; here the bad port comes first. */
    ck_assert_int_eq(fanns_config_apply_args(&c, 4, help, &act, &err), FANNS_EINVAL);
    char *help2[] = {"fannsd", "--help", NULL};
    ck_assert_int_eq(fanns_config_apply_args(&c, 2, help2, &act, &err), 0);
    ck_assert_int_eq(act, FANNS_CONFIG_HELP);
    char *ver[] = {"fannsd", "--version", NULL};
    ck_assert_int_eq(fanns_config_apply_args(&c, 2, ver, &act, &err), 0);
    ck_assert_int_eq(act, FANNS_CONFIG_VERSION);
    char *unk[] = {"fannsd", "--frobnicate", "1", NULL};
    ck_assert_int_eq(fanns_config_apply_args(&c, 3, unk, &act, &err), FANNS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--frobnicate"));
    char *missing[] = {"fannsd", "--port", NULL};
    ck_assert_int_eq(fanns_config_apply_args(&c, 2, missing, &act, &err), FANNS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "needs a value"));
    char *pos[] = {"fannsd", "serve", NULL};
    ck_assert_int_eq(fanns_config_apply_args(&c, 2, pos, &act, &err), FANNS_EINVAL);
}
END_TEST

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_precedence) {
    fanns_config_t c;
    fanns_err_t err;
    fanns_config_action_t act;
    char path[] = "/tmp/fanns-cfg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    write_file(path, "service:\n  host: 10.0.0.1\n  http_port: 1111\n  max_connections: 11\n"
                     "storage:\n  data_dir: /from/file\nlog_level: debug\n");
    char *env[] = {"FANNS__SERVICE__HTTP_PORT=2222", "FANNS__SERVICE__MAX_CONNECTIONS=22", NULL};
    char *argv[] = {"fannsd", "--config", path, "--max-connections", "33", NULL};
    ck_assert_msg(fanns_config_load(&c, 5, argv, env, &act, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(c.host, "10.0.0.1");          /* file over default */
    ck_assert_str_eq(c.data_dir, "/from/file");
    ck_assert_int_eq(c.log_level, FANNS_LOG_DEBUG);
    ck_assert_int_eq(c.http_port, 2222);           /* env over file */
    ck_assert_uint_eq(c.max_connections, 33);      /* command line over env */
    ck_assert_uint_eq(c.max_request_size_mb, 32);  /* untouched default */
    ck_assert_str_eq(c.config_file, path);

    /* A bad file is an error even when the command line would override the key. */
    write_file(path, "service:\n  unknown_thing: 1\n");
    ck_assert_int_eq(fanns_config_load(&c, 5, argv, env, &act, &err), FANNS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "service.unknown_thing"));
    unlink(path);
    ck_assert_int_eq(fanns_config_load(&c, 5, argv, env, &act, &err), FANNS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot open config file"));

    /* --help works even with otherwise bad settings in the environment. */
    char *bad_env[] = {"FANNS__SERVICE__HTTP_PORT=x", NULL};
    char *help[] = {"fannsd", "--help", NULL};
    ck_assert_int_eq(fanns_config_load(&c, 2, help, bad_env, &act, &err), 0);
    ck_assert_int_eq(act, FANNS_CONFIG_HELP);
}
END_TEST

START_TEST(test_help_lists_everything) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fanns_config_print_help(f, "fannsd");
    fclose(f);
    const char *must[] = {"--host", "--port", "--data-dir", "--log-level", "--max-request-size-mb",
                          "--max-connections", "--config", "--help", "--version", "--port-file",
                          "FANNS__SERVICE__HOST", "FANNS__SERVICE__HTTP_PORT", "FANNS__STORAGE__DATA_DIR",
                          "FANNS__LOG_LEVEL", "FANNS__SERVICE__MAX_REQUEST_SIZE_MB",
                          "FANNS__SERVICE__MAX_CONNECTIONS", "(default: 6333)", "(default: 0.0.0.0)"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        ck_assert_msg(strstr(text, must[i]) != NULL, "help lacks %s", must[i]);
    free(text);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_yaml_subset);
    tcase_add_test(tc, test_yaml_errors);
    tcase_add_test(tc, test_env);
    tcase_add_test(tc, test_args);
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_help_lists_everything);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
