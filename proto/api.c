/*
 * api.c: the REST API entry point: routing, the Qdrant response envelope, input helpers,
 * and the collection and payload-index resources.  Point resources are in points.c.
 *
 * Every response is {"result": ..., "status": "ok", "time": seconds} or, on error,
 * {"status": {"error": "message"}, "time": seconds} with the HTTP status from
 * fanns_err_http_status().  All validation happens here, before anything is written, so a
 * bad request never changes stored data.
 *
 * Reference: Qdrant's OpenAPI specification (v1.x) for paths, field names and defaults.
 */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "api_int.h"
#include "json_u64.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------------------ */

int fanns__api_check_fields(const json_t *obj, const char *path, const char *const *allowed, fanns_err_t *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, key) == 0;
        if (!ok) {
            char p[160];
            snprintf(p, sizeof(p), "%s%s%s", path, *path ? "." : "", key);
            return fanns_err_set(err, FANNS_EINVAL, p, "Format error in JSON body: unknown field `%s`%s%s", key,
                                 *path ? " in " : "", path);
        }
    }
    return 0;
}

int fanns__api_get_bool(const json_t *obj, const char *key, bool def, bool *out, const char *path, fanns_err_t *err) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return fanns_err_set(err, FANNS_EINVAL, key, "Format error in JSON body: %s%s%s must be a boolean", path,
                             *path ? "." : "", key);
    *out = json_is_true(v);
    return 0;
}

int fanns__api_get_uint(const json_t *obj, const char *key, long long def, long long lo, long long hi, long long *out,
                        const char *path, fanns_err_t *err) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return fanns_err_set(err, FANNS_EINVAL, key, "Format error in JSON body: %s%s%s must be an integer", path,
                             *path ? "." : "", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fanns_err_set(err, FANNS_EVALIDATE, key, "Validation error in JSON body: %s%s%s: value %lld out of range [%lld, %lld]",
                             path, *path ? "." : "", key, x, lo, hi);
    *out = x;
    return 0;
}

int fanns__api_parse_vector(const json_t *v, uint32_t dim, float *out, const char *path, fanns_err_t *err) {
    if (!json_is_array(v))
        return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s must be an array of numbers", path);
    if (json_array_size(v) != dim)
        return fanns_err_set(err, FANNS_EVALIDATE, path, "Wrong input: Vector dimension error: expected dim: %u, got %zu",
                             dim, json_array_size(v));
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        double d;
        if (json_is_real(x)) d = json_real_value(x);
        else if (json_is_integer(x)) d = (double)json_integer_value(x);
        else
            return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s[%zu] is not a number", path, i);
        if (!isfinite(d) || fabs(d) > 3.4e38)
            return fanns_err_set(err, FANNS_EVALIDATE, path, "Validation error: %s[%zu] is not a finite float32", path, i);
        out[i] = (float)d;
    }
    return 0;
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void set_json(fanns_api_resp_t *resp, int status, json_t *doc) {
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = json_dumps(doc, JSON_COMPACT); /* full double precision: payload numbers round-trip */
    if (!resp->body) {
        static const char oom[] = "{\"status\":{\"error\":\"out of memory\"},\"time\":0}";
        resp->status = 500;
        resp->body = strdup(oom);
    }
    if (resp->body && strstr(resp->body, "\\u0001u64:")) fanns__json_u64_unprotect(resp->body);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
}

void fanns_api_error_response(int status, const char *msg, fanns_api_resp_t *resp) {
    json_t *doc = json_pack("{s:{s:s}, s:f}", "status", "error", msg ? msg : reason(status), "time", 0.0);
    set_json(resp, status, doc);
    json_decref(doc);
}

static void set_text(fanns_api_resp_t *resp, int status, const char *text) {
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body = strdup(text);
    resp->body_len = strlen(text);
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- write submission --------------------------------------------------------------- */

int fanns__api_submit(api_ctx_t *ctx, fanns_wentry_t *e) {
    uint64_t op_id = 0;
    int rc = fanns_db_write(ctx->api->db, e, ctx->wait, &op_id, &ctx->err);
    if (rc) return rc;
    ctx->result = json_pack("{s:I, s:s}", "operation_id", (json_int_t)op_id, "status",
                            ctx->wait ? "completed" : "acknowledged");
    return 0;
}

/* ---- collections -------------------------------------------------------------------- */

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FANNS_MAX_NAME) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == '/' || *p == '\\' || *p == '*' || *p == '?' || *p == '"' || *p == '<' || *p == '>' ||
            *p == '|' || *p == ':' || *p == 0x7f)
            return false;
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Merges user settings for a config section over defaults, checking each known key's type:
 * 'u' non-negative integer, 'U' non-negative integer or null, 'b' boolean, 'f' number,
 * 'F' number or null, 'a' any JSON value. */
typedef struct {
    const char *key;
    char type;
} field_t;

static int merge_section(json_t *dst, const json_t *src, const char *path, const field_t *fields, fanns_err_t *err) {
    if (!src || json_is_null(src)) return 0;
    if (!json_is_object(src)) return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s must be an object", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)src, key, v) {
        const field_t *f = fields;
        while (f->key && strcmp(f->key, key) != 0) f++;
        if (!f->key) return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: unknown field `%s` in %s", key, path);
        bool ok;
        switch (f->type) {
        case 'u': ok = json_is_integer(v) && json_integer_value(v) >= 0; break;
        case 'U': ok = json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 0); break;
        case 'b': ok = json_is_boolean(v) || json_is_null(v); break;
        case 'f': ok = json_is_number(v); break;
        case 'F': ok = json_is_number(v) || json_is_null(v); break;
        default: ok = true;
        }
        if (!ok)
            return fanns_err_set(err, json_is_number(v) ? FANNS_EVALIDATE : FANNS_EINVAL, path,
                                 "Format error in JSON body: %s.%s has a wrong type or value", path, key);
        json_object_set(dst, key, v);
    }
    return 0;
}

static const field_t HNSW_FIELDS[] = {{"m", 'u'}, {"ef_construct", 'u'}, {"full_scan_threshold", 'u'},
                                      {"max_indexing_threads", 'u'}, {"on_disk", 'b'}, {"payload_m", 'U'},
                                      {"inline_storage", 'b'}, {NULL, 0}};
static const field_t OPT_FIELDS[] = {{"deleted_threshold", 'f'}, {"vacuum_min_vector_number", 'u'},
                                     {"default_segment_number", 'u'}, {"max_segment_size", 'U'},
                                     {"memmap_threshold", 'U'}, {"indexing_threshold", 'U'},
                                     {"flush_interval_sec", 'u'}, {"max_optimization_threads", 'U'},
                                     {"prevent_unoptimized", 'b'}, {NULL, 0}};
static const field_t WAL_FIELDS[] = {{"wal_capacity_mb", 'u'}, {"wal_segments_ahead", 'u'}, {"wal_retain_closed", 'u'}, {NULL, 0}};

/* fanns extension in every quantization kind: the training sample size (points). */
static int check_sample(const json_t *v, const char *path, fanns_err_t *err) {
    json_t *s = json_object_get(v, "fanns_training_sample");
    if (s && !(json_is_integer(s) && json_integer_value(s) >= 256 && json_integer_value(s) <= (1 << 24)))
        return fanns_err_set(err, FANNS_EVALIDATE, path, "Validation error: %s.fanns_training_sample must be an integer in [256, 16777216]",
                             path);
    return 0;
}

/* Validates a quantization_config; metric (or -1 when unknown) rules out binary with
 * Manhattan, which the binary codec cannot estimate. */
static int check_quantization(const json_t *q, const char *path, int metric, fanns_err_t *err) {
    if (!q || json_is_null(q)) return 0;
    if (!json_is_object(q) || json_object_size(q) != 1)
        return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s must be one of {scalar}, {product}, {binary}", path);
    const char *kind = json_object_iter_key(json_object_iter((json_t *)q));
    json_t *v = json_object_get(q, kind);
    if (!json_is_object(v)) return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s.%s must be an object", path, kind);
    if (strcmp(kind, "scalar") == 0) {
        static const char *const f[] = {"type", "quantile", "always_ram", "fanns_training_sample", NULL};
        json_t *t = json_object_get(v, "type");
        if (fanns__api_check_fields(v, "quantization_config.scalar", f, err)) return err->code;
        if (!json_is_string(t) || strcmp(json_string_value(t), "int8") != 0)
            return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: scalar quantization type must be \"int8\"");
        json_t *qq = json_object_get(v, "quantile");
        if (qq && !(json_is_number(qq) && json_number_value(qq) >= 0.5 && json_number_value(qq) <= 1.0))
            return fanns_err_set(err, FANNS_EVALIDATE, path, "Validation error: quantile must be in [0.5, 1]");
        return check_sample(v, path, err);
    }
    if (strcmp(kind, "product") == 0) {
        static const char *const f[] = {"compression", "always_ram", "fanns_training_sample", NULL};
        static const char *const comp[] = {"x4", "x8", "x16", "x32", "x64", NULL};
        if (fanns__api_check_fields(v, "quantization_config.product", f, err)) return err->code;
        json_t *c = json_object_get(v, "compression");
        bool ok = false;
        for (const char *const *p = comp; *p && json_is_string(c); p++) ok |= strcmp(*p, json_string_value(c)) == 0;
        if (!ok) return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: product compression must be x4, x8, x16, x32 or x64");
        return check_sample(v, path, err);
    }
    if (strcmp(kind, "binary") == 0) {
        static const char *const f[] = {"always_ram", "encoding", "query_encoding", "fanns_training_sample", NULL};
        if (metric == FANNS_METRIC_MANHATTAN)
            return fanns_err_set(err, FANNS_EVALIDATE, path, "Validation error: binary quantization does not support Manhattan distance");
        if (fanns__api_check_fields(v, "quantization_config.binary", f, err)) return err->code;
        return check_sample(v, path, err);
    }
    return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: unknown quantization `%s`", kind);
}

/* Builds the normalised config from a create request (all defaults filled in). */
static int build_config(const json_t *body, json_t **out, uint32_t *dim, fanns_metric_t *metric, fanns_err_t *err) {
    static const char *const top[] = {"vectors", "shard_number", "sharding_method", "replication_factor",
                                      "write_consistency_factor", "on_disk_payload", "hnsw_config", "wal_config",
                                      "optimizers_config", "init_from", "quantization_config", "sparse_vectors",
                                      "strict_mode_config", "metadata", NULL};
    static const char *const vfields[] = {"size", "distance", "hnsw_config", "quantization_config", "on_disk",
                                          "datatype", "multivector_config", NULL};
    int rc;
    json_t *cfg = NULL;
    if ((rc = fanns__api_check_fields(body, "", top, err)) != 0) return rc;
    json_t *vec = json_object_get(body, "vectors");
    if (!json_is_object(vec))
        return fanns_err_set(err, FANNS_EINVAL, "vectors", "Format error in JSON body: `vectors` must be an object {size, distance}");
    if (!json_object_get(vec, "size") && json_object_size(vec) > 0 && json_is_object(json_object_iter_value(json_object_iter(vec))))
        return fanns_err_set(err, FANNS_EVALIDATE, "vectors", "Named vectors are not supported yet: use a single unnamed vector {size, distance}");
    if ((rc = fanns__api_check_fields(vec, "vectors", vfields, err)) != 0) return rc;
    json_t *size = json_object_get(vec, "size"), *dist = json_object_get(vec, "distance");
    if (!json_is_integer(size))
        return fanns_err_set(err, FANNS_EINVAL, "vectors.size", "Format error in JSON body: vectors.size must be an integer");
    if (json_integer_value(size) < 1 || json_integer_value(size) > FANNS_MAX_DIM)
        return fanns_err_set(err, FANNS_EVALIDATE, "vectors.size", "Validation error: vectors.size must be between 1 and %d", FANNS_MAX_DIM);
    if (!json_is_string(dist))
        return fanns_err_set(err, FANNS_EINVAL, "vectors.distance", "Format error in JSON body: vectors.distance must be a string");
    int m = fanns_metric_parse(json_string_value(dist));
    if (m < 0)
        return fanns_err_set(err, FANNS_EVALIDATE, "vectors.distance",
                             "Validation error: unknown distance `%.40s`; expected Cosine, Euclid, Dot or Manhattan", json_string_value(dist));
    json_t *dt = json_object_get(vec, "datatype");
    if (dt && !(json_is_string(dt) && (strcmp(json_string_value(dt), "float32") == 0 || strcmp(json_string_value(dt), "float16") == 0 ||
                                      strcmp(json_string_value(dt), "uint8") == 0)))
        return fanns_err_set(err, FANNS_EINVAL, "vectors.datatype", "Format error in JSON body: vectors.datatype must be float32, float16 or uint8");
    if (json_object_get(vec, "multivector_config"))
        return fanns_err_set(err, FANNS_EVALIDATE, "vectors.multivector_config", "Multivectors are not supported yet");
    if (json_object_get(body, "sparse_vectors") && !json_is_null(json_object_get(body, "sparse_vectors")))
        return fanns_err_set(err, FANNS_EVALIDATE, "sparse_vectors", "Sparse vectors are not supported yet");
    if ((rc = check_quantization(json_object_get(body, "quantization_config"), "quantization_config", m, err)) != 0) return rc;
    if ((rc = check_quantization(json_object_get(vec, "quantization_config"), "vectors.quantization_config", m, err)) != 0) return rc;

    json_t *vparams = json_pack("{s:O, s:s}", "size", size, "distance", fanns_metric_name((fanns_metric_t)m));
    json_t *ondisk = json_object_get(vec, "on_disk");
    if (ondisk && !json_is_null(ondisk)) {
        if (!json_is_boolean(ondisk)) {
            json_decref(vparams);
            return fanns_err_set(err, FANNS_EINVAL, "vectors.on_disk", "Format error in JSON body: vectors.on_disk must be a boolean");
        }
        json_object_set(vparams, "on_disk", ondisk);
    }
    if (dt) json_object_set(vparams, "datatype", dt);
    if (json_object_get(vec, "hnsw_config")) json_object_set(vparams, "hnsw_config", json_object_get(vec, "hnsw_config"));
    if (json_object_get(vec, "quantization_config")) json_object_set(vparams, "quantization_config", json_object_get(vec, "quantization_config"));

    cfg = json_pack("{s:{s:o, s:i, s:i, s:i, s:b}, s:{s:i, s:i, s:i, s:i, s:b}, s:{s:f, s:i, s:i, s:n, s:n, s:i, s:i, s:n},"
                    " s:{s:i, s:i}, s:n, s:{s:b}}",
                    "params", "vectors", vparams, "shard_number", 1, "replication_factor", 1, "write_consistency_factor", 1,
                    "on_disk_payload", 1,
                    "hnsw_config", "m", 16, "ef_construct", 100, "full_scan_threshold", 10000, "max_indexing_threads", 0,
                    "on_disk", 0,
                    "optimizer_config", "deleted_threshold", 0.2, "vacuum_min_vector_number", 1000, "default_segment_number", 0,
                    "max_segment_size", "memmap_threshold", "indexing_threshold", 10000, "flush_interval_sec", 5,
                    "max_optimization_threads",
                    "wal_config", "wal_capacity_mb", 32, "wal_segments_ahead", 0, "quantization_config", "strict_mode_config",
                    "enabled", 0);
    if (!cfg) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    json_t *params = json_object_get(cfg, "params");
    static const char *const pint[] = {"shard_number", "replication_factor", "write_consistency_factor", NULL};
    for (const char *const *k = pint; *k; k++) {
        json_t *v = json_object_get(body, *k);
        if (!v || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            rc = fanns_err_set(err, FANNS_EVALIDATE, *k, "Validation error: %s must be a positive integer", *k);
            goto fail;
        }
        json_object_set(params, *k, v);
    }
    json_t *odp = json_object_get(body, "on_disk_payload");
    if (odp && !json_is_null(odp)) {
        if (!json_is_boolean(odp)) {
            rc = fanns_err_set(err, FANNS_EINVAL, "on_disk_payload", "Format error in JSON body: on_disk_payload must be a boolean");
            goto fail;
        }
        json_object_set(params, "on_disk_payload", odp);
    }
    if ((rc = merge_section(json_object_get(cfg, "hnsw_config"), json_object_get(body, "hnsw_config"), "hnsw_config", HNSW_FIELDS, err)) ||
        (rc = merge_section(json_object_get(cfg, "optimizer_config"), json_object_get(body, "optimizers_config"), "optimizers_config",
                            OPT_FIELDS, err)) ||
        (rc = merge_section(json_object_get(cfg, "wal_config"), json_object_get(body, "wal_config"), "wal_config", WAL_FIELDS, err)))
        goto fail;
    json_t *q = json_object_get(body, "quantization_config");
    if (q) json_object_set(cfg, "quantization_config", q);
    json_t *md = json_object_get(body, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md)) {
            rc = fanns_err_set(err, FANNS_EINVAL, "metadata", "Format error in JSON body: metadata must be an object");
            goto fail;
        }
        json_object_set(cfg, "metadata", md);
    }
    json_t *sm = json_object_get(body, "strict_mode_config");
    if (sm && !json_is_null(sm)) {
        if (!json_is_object(sm)) {
            rc = fanns_err_set(err, FANNS_EINVAL, "strict_mode_config", "Format error in JSON body: strict_mode_config must be an object");
            goto fail;
        }
        json_object_set(cfg, "strict_mode_config", sm);
    }
    *out = cfg;
    *dim = (uint32_t)json_integer_value(size);
    *metric = (fanns_metric_t)m;
    return 0;
fail:
    json_decref(cfg);
    return rc;
}

int fanns__api_collections_list(api_ctx_t *ctx) {
    json_t *names = fanns_db_coll_names(ctx->api->db), *arr = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) json_array_append_new(arr, json_pack("{s:O}", "name", n));
    json_decref(names);
    ctx->result = json_pack("{s:o}", "collections", arr);
    return 0;
}

int fanns__api_collection_create(api_ctx_t *ctx, const char *name) {
    json_t *cfg = NULL;
    uint32_t dim = 0;
    fanns_metric_t metric = FANNS_METRIC_COSINE;
    int rc;
    if (!valid_name(name))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "collection_name",
                             "Validation error: collection name must be 1-255 characters without / \\ * ? \" < > | : or control characters");
    if (!ctx->body) return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: a body {vectors: {size, distance}} is required");
    if ((rc = build_config(ctx->body, &cfg, &dim, &metric, &ctx->err)) != 0) return rc;
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_COLL);
    if (!e || !(e->collection = strdup(name))) {
        fanns_wentry_free(e);
        json_decref(cfg);
        return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    }
    e->config = cfg;
    e->dim = dim;
    e->metric = metric;
    bool wait = ctx->wait;
    ctx->wait = true; /* the result must say whether the collection was created */
    rc = fanns__api_submit(ctx, e);
    ctx->wait = wait;
    if (rc) return rc;
    json_decref(ctx->result);
    ctx->result = json_true();
    return 0;
}

int fanns__api_collection_update(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"vectors", "optimizers_config", "params", "hnsw_config", "quantization_config",
                                      "sparse_vectors", "strict_mode_config", "metadata", NULL};
    fanns_coll_t *c;
    int rc;
    if (!ctx->body) return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: a body is required");
    if ((rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) != 0) return rc;
    if ((rc = fanns_db_coll_get(ctx->api->db, name, &c, &ctx->err)) != 0) return rc;
    fanns_coll_stats_t st;
    fanns_coll_stats(c, &st);
    int metric = (int)fanns_coll_metric(c);
    fanns_coll_release(c);
    json_decref(st.payload_schema);
    json_t *cfg = json_deep_copy(st.config);
    json_decref(st.config);
    /* Qdrant's QuantizationConfigDiff: "Disabled" removes quantization. */
    json_t *q = json_object_get(ctx->body, "quantization_config");
    bool q_disabled = json_is_string(q) && strcmp(json_string_value(q), "Disabled") == 0;
    if ((rc = merge_section(json_object_get(cfg, "hnsw_config"), json_object_get(ctx->body, "hnsw_config"), "hnsw_config",
                            HNSW_FIELDS, &ctx->err)) ||
        (rc = merge_section(json_object_get(cfg, "optimizer_config"), json_object_get(ctx->body, "optimizers_config"),
                            "optimizers_config", OPT_FIELDS, &ctx->err)) ||
        (!q_disabled && (rc = check_quantization(q, "quantization_config", metric, &ctx->err))))
        goto fail;
    if (q_disabled) json_object_set_new(cfg, "quantization_config", json_null());
    else if (q) json_object_set(cfg, "quantization_config", q);
    json_t *md = json_object_get(ctx->body, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md)) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "metadata", "Format error in JSON body: metadata must be an object");
            goto fail;
        }
        if (!json_is_object(json_object_get(cfg, "metadata"))) json_object_set_new(cfg, "metadata", json_object());
        json_object_update(json_object_get(cfg, "metadata"), md);
    }
    json_t *params = json_object_get(ctx->body, "params");
    if (params && !json_is_null(params)) {
        static const field_t PARAM_FIELDS[] = {{"replication_factor", 'u'}, {"write_consistency_factor", 'u'},
                                               {"read_fan_out_factor", 'U'}, {"on_disk_payload", 'b'}, {NULL, 0}};
        if ((rc = merge_section(json_object_get(cfg, "params"), params, "params", PARAM_FIELDS, &ctx->err)) != 0) goto fail;
    }
    json_t *vec = json_object_get(ctx->body, "vectors");
    if (vec && !json_is_null(vec)) {
        /* Only storage hints may change; size and distance are fixed at creation. */
        json_t *vp = json_object_get(json_object_get(cfg, "params"), "vectors");
        json_t *src = json_object_get(vec, "");
        if (!src) src = vec;
        static const char *const vf[] = {"on_disk", "hnsw_config", "quantization_config", NULL};
        if ((rc = fanns__api_check_fields(src, "vectors", vf, &ctx->err)) != 0) goto fail;
        json_t *vq = json_object_get(src, "quantization_config");
        if (json_is_string(vq) && strcmp(json_string_value(vq), "Disabled") == 0) {
            /* Removes the vector-level setting (the collection-level one applies again). */
            json_t *copy = json_deep_copy(src);
            json_object_del(copy, "quantization_config");
            json_object_del(vp, "quantization_config");
            json_object_update(vp, copy);
            json_decref(copy);
        } else {
            if ((rc = check_quantization(vq, "vectors.quantization_config", metric, &ctx->err)) != 0) goto fail;
            json_object_update(vp, src);
        }
    }
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPDATE_COLL);
    if (!e || !(e->collection = strdup(name))) {
        fanns_wentry_free(e);
        rc = fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    e->config = cfg;
    ctx->wait = true;
    if ((rc = fanns__api_submit(ctx, e)) != 0) return rc;
    json_decref(ctx->result);
    ctx->result = json_true();
    return 0;
fail:
    json_decref(cfg);
    return rc;
}

static int query_flag(const char *q, const char *name, bool def, bool *out, fanns_err_t *err);
static uint64_t rss_bytes(uint64_t *anon);

static double per_vector(uint64_t bytes, uint64_t points) { return points ? (double)bytes / (double)points : 0.0; }

/* The fanns extension of GET /collections/{c} (asked for with ?fanns=true, because the
 * official Python client rejects unknown fields in CollectionInfo): codec state and memory. */
static json_t *fanns_info_json(const fanns_coll_stats_t *st) {
    char sum[24];
    snprintf(sum, sizeof(sum), "%016llx", (unsigned long long)st->codec_checksum);
    json_t *q = json_pack("{s:s?, s:s, s:s?, s:I, s:I, s:s?}", "codec", st->codec, "status", st->codec_status, "active_codec",
                          st->codec_ready, "code_size", (json_int_t)st->code_size, "trained_points",
                          (json_int_t)st->codec_trained_points, "codebook_checksum", st->codec_ready ? sum : NULL);
    uint64_t n = st->points_count, anon = 0, rss = rss_bytes(&anon);
    json_t *mem = json_pack("{s:{s:f, s:f, s:f, s:f, s:f}, s:{s:I, s:I, s:I, s:I, s:I}, s:b, s:I, s:I}", "bytes_per_vector",
                            "codes", per_vector(st->codes_bytes, n), "vectors", per_vector(st->vectors_bytes, n), "graph",
                            per_vector(st->graph_bytes, n), "block_links", per_vector(st->block_bytes, n), "payload_indexes",
                            per_vector(st->payload_index_bytes, n), "bytes", "codes", (json_int_t)st->codes_bytes, "vectors",
                            (json_int_t)st->vectors_bytes, "graph", (json_int_t)st->graph_bytes, "block_links",
                            (json_int_t)st->block_bytes, "payload_indexes", (json_int_t)st->payload_index_bytes,
                            "codes_in_graph", st->codes_in_graph, "process_resident_bytes", (json_int_t)rss, "process_anonymous_bytes", (json_int_t)anon);
    json_t *bl = json_pack("{s:I, s:I}", "blocks", (json_int_t)st->blocks, "links", (json_int_t)st->block_links);
    return json_pack("{s:o, s:o, s:o}", "quantization", q, "memory", mem, "block_links", bl);
}

int fanns__api_collection_get(api_ctx_t *ctx, const char *name) {
    fanns_coll_t *c;
    fanns_coll_stats_t st;
    bool ext;
    int rc = query_flag(ctx->req->query, "fanns", false, &ext, &ctx->err);
    if (rc) return rc;
    if ((rc = fanns_db_coll_get(ctx->api->db, name, &c, &ctx->err)) != 0) return rc;
    fanns_coll_stats(c, &st);
    fanns_coll_release(c);
    ctx->result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:o, s:o, s:{s:i}}", "status", st.indexing ? "yellow" : "green",
                            "optimizer_status", "ok", "vectors_count", (json_int_t)st.points_count, "indexed_vectors_count",
                            (json_int_t)st.indexed_vectors_count,
                            "points_count", (json_int_t)st.points_count, "segments_count", 1, "config", st.config,
                            "payload_schema", st.payload_schema, "update_queue", "length", 0);
    if (ext) json_object_set_new(ctx->result, "fanns", fanns_info_json(&st));
    return 0;
}

int fanns__api_collection_delete(api_ctx_t *ctx, const char *name) {
    fanns_coll_t *c;
    int rc = fanns_db_coll_get(ctx->api->db, name, &c, NULL);
    if (rc) {
        /* Qdrant answers false, not 404, for a collection that does not exist. */
        ctx->result = json_false();
        return 0;
    }
    fanns_coll_release(c);
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_DROP_COLL);
    if (!e || !(e->collection = strdup(name))) {
        fanns_wentry_free(e);
        return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    }
    ctx->wait = true;
    rc = fanns__api_submit(ctx, e);
    json_decref(ctx->result);
    ctx->result = NULL;
    if (rc == FANNS_ENOTFOUND) {
        ctx->result = json_false();
        return 0;
    }
    if (rc) return rc;
    ctx->result = json_true();
    return 0;
}

int fanns__api_collection_exists(api_ctx_t *ctx, const char *name) {
    fanns_coll_t *c;
    bool exists = fanns_db_coll_get(ctx->api->db, name, &c, NULL) == 0;
    if (exists) fanns_coll_release(c);
    ctx->result = json_pack("{s:b}", "exists", exists);
    return 0;
}

int fanns__api_index_create(api_ctx_t *ctx, const char *name) {
    static const char *const f[] = {"field_name", "field_schema", "field_type", NULL};
    static const char *const types[] = {"keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid", NULL};
    fanns_coll_t *c;
    int rc;
    if (!ctx->body) return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: {field_name, field_schema} is required");
    if ((rc = fanns__api_check_fields(ctx->body, "", f, &ctx->err)) != 0) return rc;
    json_t *fname = json_object_get(ctx->body, "field_name"), *fs = json_object_get(ctx->body, "field_schema");
    if (!fs) fs = json_object_get(ctx->body, "field_type");
    if (!json_is_string(fname) || json_string_length(fname) == 0 || json_string_length(fname) > 255)
        return fanns_err_set(&ctx->err, FANNS_EINVAL, "field_name", "Format error in JSON body: field_name must be a non-empty string");
    const char *type = json_is_string(fs) ? json_string_value(fs) : json_is_object(fs) ? json_string_value(json_object_get(fs, "type")) : NULL;
    bool ok = false;
    for (const char *const *t = types; *t && type; t++) ok |= strcmp(*t, type) == 0;
    if (!ok)
        return fanns_err_set(&ctx->err, FANNS_EINVAL, "field_schema",
                             "Format error in JSON body: field_schema must be one of keyword, integer, float, geo, text, bool, datetime, uuid");
    if ((rc = fanns_db_coll_get(ctx->api->db, name, &c, &ctx->err)) != 0) return rc;
    fanns_coll_release(c);
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_INDEX);
    if (!e || !(e->collection = strdup(name)) || !(e->field = strdup(json_string_value(fname)))) {
        fanns_wentry_free(e);
        return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    }
    e->field_schema = json_incref(fs);
    return fanns__api_submit(ctx, e);
}

int fanns__api_index_delete(api_ctx_t *ctx, const char *name, const char *field) {
    fanns_coll_t *c;
    int rc = fanns_db_coll_get(ctx->api->db, name, &c, &ctx->err);
    if (rc) return rc;
    fanns_coll_release(c);
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_DROP_INDEX);
    if (!e || !(e->collection = strdup(name)) || !(e->field = strdup(field))) {
        fanns_wentry_free(e);
        return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    }
    return fanns__api_submit(ctx, e);
}

/* ---- routing ------------------------------------------------------------------------ */

/* Reads boolean query parameter name ("true"/"false", also "1"/"0" and a bare name) into
 * *out (def when absent).  Returns 0 or FANNS_EINVAL for any other value. */
static int query_flag(const char *q, const char *name, bool def, bool *out, fanns_err_t *err) {
    size_t nl = strlen(name);
    *out = def;
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len == nl && strncmp(q, name, nl) == 0) {
            *out = true;
        } else if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            const char *v = q + nl + 1;
            size_t vl = len - nl - 1;
            if ((vl == 4 && strncmp(v, "true", 4) == 0) || (vl == 1 && *v == '1')) *out = true;
            else if ((vl == 5 && strncmp(v, "false", 5) == 0) || (vl == 1 && *v == '0')) *out = false;
            else
                return fanns_err_set(err, FANNS_EINVAL, name, "Query deserialize error: %s must be true or false, got `%.*s`", name,
                                     (int)(vl > 40 ? 40 : vl), v);
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

bool fanns_api_is_cheap(const fanns_api_req_t *req) {
    if (strcmp(req->method, "GET") != 0) return false;
    return strcmp(req->path, "/") == 0 || strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/livez") == 0 ||
           strcmp(req->path, "/readyz") == 0;
}

bool fanns_api_is_search(const fanns_api_req_t *req) {
    const char *seg[6];
    size_t len[6];
    int n = 0;
    const char *p = req->path;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        if (n == 6) return false;
        seg[n] = p;
        while (*p && *p != '/') p++;
        len[n] = (size_t)(p - seg[n]);
        n++;
    }
#define SEG(i, lit) (len[i] == sizeof(lit) - 1 && memcmp(seg[i], lit, sizeof(lit) - 1) == 0)
    if (n < 1 || !SEG(0, "collections")) return false;
    if (strcmp(req->method, "GET") == 0) return true;
    if (strcmp(req->method, "POST") != 0 || n < 3 || !SEG(2, "points")) return false;
    if (n == 3) return true; /* retrieve by ids */
    if (n == 4) return SEG(3, "search") || SEG(3, "query") || SEG(3, "scroll") || SEG(3, "count");
    if (n == 5) return (SEG(3, "search") || SEG(3, "query")) && SEG(4, "batch");
    return false;
#undef SEG
}

#define IS(m) (strcmp(method, m) == 0)

static int route(api_ctx_t *ctx) {
    const char *method = ctx->req->method;
    const char **s = ctx->segs;
    int n = ctx->nsegs;
    bool matched_path = false;

    if (n >= 1 && strcmp(s[0], "collections") == 0) {
        if (n == 1) {
            matched_path = true;
            if (IS("GET")) return fanns__api_collections_list(ctx);
        } else if (n == 2) {
            matched_path = true;
            if (IS("PUT")) return fanns__api_collection_create(ctx, s[1]);
            if (IS("GET")) return fanns__api_collection_get(ctx, s[1]);
            if (IS("DELETE")) return fanns__api_collection_delete(ctx, s[1]);
            if (IS("PATCH")) return fanns__api_collection_update(ctx, s[1]);
        } else if (n == 3 && strcmp(s[2], "exists") == 0) {
            matched_path = true;
            if (IS("GET")) return fanns__api_collection_exists(ctx, s[1]);
        } else if (n == 3 && strcmp(s[2], "index") == 0) {
            matched_path = true;
            if (IS("PUT")) return fanns__api_index_create(ctx, s[1]);
        } else if (n == 4 && strcmp(s[2], "index") == 0) {
            matched_path = true;
            if (IS("DELETE")) return fanns__api_index_delete(ctx, s[1], s[3]);
        } else if (n >= 3 && strcmp(s[2], "points") == 0) {
            const char *c = s[1];
            if (n == 3) {
                matched_path = true;
                if (IS("PUT")) return fanns__api_points_upsert(ctx, c);
                if (IS("POST")) return fanns__api_points_get(ctx, c);
            } else if (n == 4) {
                const char *a = s[3];
                matched_path = true;
                if (IS("POST") && strcmp(a, "delete") == 0) return fanns__api_points_delete(ctx, c);
                if (IS("POST") && strcmp(a, "scroll") == 0) return fanns__api_points_scroll(ctx, c);
                if (IS("POST") && strcmp(a, "count") == 0) return fanns__api_points_count(ctx, c);
                if (IS("POST") && strcmp(a, "search") == 0) return fanns__api_points_search(ctx, c, false);
                if (IS("POST") && strcmp(a, "query") == 0) return fanns__api_points_query(ctx, c, false);
                if (IS("PUT") && strcmp(a, "payload") == 0) return fanns__api_points_payload(ctx, c, FANNS_W_OVERWRITE_PAYLOAD);
                if (IS("POST") && strcmp(a, "payload") == 0) return fanns__api_points_payload(ctx, c, FANNS_W_SET_PAYLOAD);
                if (IS("GET")) return fanns__api_point_get(ctx, c, a);
            } else if (n == 5) {
                const char *a = s[3], *b = s[4];
                matched_path = true;
                if (IS("POST") && strcmp(a, "payload") == 0 && strcmp(b, "delete") == 0)
                    return fanns__api_points_payload(ctx, c, FANNS_W_DELETE_PAYLOAD);
                if (IS("POST") && strcmp(a, "payload") == 0 && strcmp(b, "clear") == 0)
                    return fanns__api_points_payload(ctx, c, FANNS_W_CLEAR_PAYLOAD);
                if (IS("POST") && strcmp(a, "search") == 0 && strcmp(b, "batch") == 0) return fanns__api_points_search(ctx, c, true);
                if (IS("POST") && strcmp(a, "query") == 0 && strcmp(b, "batch") == 0) return fanns__api_points_query(ctx, c, true);
            }
        }
    }
    if (matched_path)
        return fanns_err_set(&ctx->err, FANNS_EMETHOD, NULL, "Method %s is not allowed on %s", method, ctx->req->path);
    return fanns_err_set(&ctx->err, FANNS_ENOTFOUND, NULL, "Not found: no route for %s %s", method, ctx->req->path);
}

/* Appends printf-formatted text to a growing buffer. */
static void buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *nb = realloc(*buf, ncap);
        if (!nb) return;
        *buf = nb;
        *cap = ncap;
    }
}

/* Resident set size in bytes from /proc/self/statm (0 if unavailable). */
/* Resident bytes of the process and, in *anon, those not backed by a file: resident minus
 * shared in /proc/self/statm, which leaves out LMDB's mapped pages (page cache the kernel can
 * evict, where collections with vectors.on_disk read their vectors). */
static uint64_t rss_bytes(uint64_t *anon) {
    unsigned long pages = 0, res = 0, shared = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    *anon = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu %lu", &pages, &res, &shared) != 3) res = shared = 0;
    fclose(f);
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    *anon = res > shared ? (uint64_t)(res - shared) * ps : 0;
    return (uint64_t)res * ps;
}

/* GET /metrics: Prometheus text format, names as Qdrant's where they exist. */
static void metrics(fanns_api_t *api, fanns_api_resp_t *resp) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    json_t *names = fanns_db_coll_names(api->db);
    buf_printf(&b, &len, &cap, "# HELP app_info information about the fanns server\n# TYPE app_info gauge\n");
    buf_printf(&b, &len, &cap, "app_info{name=\"fanns\",version=\"0.1.0\",api_version=\"%s\"} 1\n", FANNS_API_VERSION);
    buf_printf(&b, &len, &cap, "# HELP collections_total number of collections\n# TYPE collections_total gauge\n");
    buf_printf(&b, &len, &cap, "collections_total %zu\n", json_array_size(names));
    buf_printf(&b, &len, &cap, "# HELP collection_points points per collection\n# TYPE collection_points gauge\n");
    size_t i;
    json_t *n;
    json_t *lines = json_array();
    json_array_foreach(names, i, n) {
        fanns_coll_t *c;
        fanns_coll_stats_t st;
        if (fanns_db_coll_get(api->db, json_string_value(n), &c, NULL) != 0) continue;
        fanns_coll_stats(c, &st);
        fanns_coll_release(c);
        buf_printf(&b, &len, &cap, "collection_points{collection=\"%s\"} %llu\n", json_string_value(n),
                   (unsigned long long)st.points_count);
        json_array_append_new(lines, json_pack("{s:O, s:I, s:b}", "n", n, "i", (json_int_t)st.indexed_vectors_count, "y", st.indexing));
        json_decref(st.config);
        json_decref(st.payload_schema);
    }
    buf_printf(&b, &len, &cap, "# HELP collection_indexed_vectors points the vector index covers\n# TYPE collection_indexed_vectors gauge\n");
    json_array_foreach(lines, i, n)
        buf_printf(&b, &len, &cap, "collection_indexed_vectors{collection=\"%s\"} %lld\n",
                   json_string_value(json_object_get(n, "n")), (long long)json_integer_value(json_object_get(n, "i")));
    buf_printf(&b, &len, &cap, "# HELP collection_indexing 1 while the vector index is being built or caught up\n# TYPE collection_indexing gauge\n");
    json_array_foreach(lines, i, n)
        buf_printf(&b, &len, &cap, "collection_indexing{collection=\"%s\"} %d\n", json_string_value(json_object_get(n, "n")),
                   json_is_true(json_object_get(n, "y")));
    buf_printf(&b, &len, &cap, "# HELP memory_resident_bytes resident memory of the process\n# TYPE memory_resident_bytes gauge\n");
    uint64_t anon;
    buf_printf(&b, &len, &cap, "memory_resident_bytes %llu\n", (unsigned long long)rss_bytes(&anon));
    json_decref(lines);
    json_decref(names);
    resp->status = b ? 200 : 500;
    resp->content_type = "text/plain; version=0.0.4";
    resp->body = b ? b : strdup("out of memory\n");
    resp->body_len = b ? len : strlen(resp->body);
}

int fanns_api_new(struct fanns_db *db, fanns_api_t **out) {
    fanns_api_t *api = calloc(1, sizeof(*api));
    if (!api) return FANNS_ENOMEM;
    api->db = db;
    *out = api;
    return 0;
}

void fanns_api_free(fanns_api_t *api) { free(api); }

void fanns_api_handle(fanns_api_t *api, const fanns_api_req_t *req, fanns_api_resp_t *resp) {
    double t0 = now_sec();
    api_ctx_t ctx;
    char pathbuf[1024];
    int rc = 0;

    memset(&ctx, 0, sizeof(ctx));
    memset(resp, 0, sizeof(*resp));
    ctx.api = api;
    ctx.req = req;

    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
        if (strcmp(req->path, "/") == 0) {
            json_t *doc = json_pack("{s:s, s:s, s:s}", "title", "fanns - vector search engine", "version", FANNS_API_VERSION,
                                    "fanns_version", "0.1.0");
            set_json(resp, 200, doc);
            json_decref(doc);
            return;
        }
        if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/livez") == 0) {
            set_text(resp, 200, "healthz check passed");
            return;
        }
        if (strcmp(req->path, "/readyz") == 0) {
            set_text(resp, 200, "all shards are ready");
            return;
        }
        if (strcmp(req->path, "/metrics") == 0) {
            metrics(api, resp);
            return;
        }
    }

    if ((rc = query_flag(req->query, "wait", false, &ctx.wait, &ctx.err)) != 0) goto out;
    /* Split the path into segments (in place, in a copy). */
    if (strlen(req->path) >= sizeof(pathbuf)) {
        rc = fanns_err_set(&ctx.err, FANNS_EINVAL, NULL, "path too long");
        goto out;
    }
    strcpy(pathbuf, req->path);
    for (char *save = NULL, *seg = strtok_r(pathbuf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (ctx.nsegs == 8) {
            rc = fanns_err_set(&ctx.err, FANNS_ENOTFOUND, NULL, "Not found: no route for %s %s", req->method, req->path);
            goto out;
        }
        ctx.segs[ctx.nsegs++] = seg;
    }
    if (req->body_len > 0) {
        json_error_t je;
        const char *text = req->body;
        size_t tlen = req->body_len, plen = 0, flen = 0;
        char *fast = NULL;
        size_t pl = strlen(req->path);
        if (strcmp(req->method, "POST") == 0 && ((pl >= 14 && strcmp(req->path + pl - 14, "/points/search") == 0) ||
                                                 (pl >= 13 && strcmp(req->path + pl - 13, "/points/query") == 0))) {
            fast = fanns__json_fastvec(text, tlen, &flen, &ctx.fv);
        } else if (strcmp(req->method, "PUT") == 0 && pl >= 7 && strcmp(req->path + pl - 7, "/points") == 0) {
            fast = fanns__json_fastvecs_upsert(text, tlen, &flen, &ctx.fvs);
        }
        if (fast) {
            text = fast;
            tlen = flen;
        }
        char *prot = fanns__json_u64_protect(text, tlen, &plen);
        ctx.u64_protected = prot != NULL;
        ctx.body = prot ? json_loadb(prot, plen, JSON_REJECT_DUPLICATES, &je) : json_loadb(text, tlen, JSON_REJECT_DUPLICATES, &je);
        free(prot);
        free(fast);
        if (!ctx.body) {
            rc = fanns_err_set(&ctx.err, FANNS_EINVAL, NULL, "Format error in JSON body: %s at line %d column %d", je.text, je.line,
                               je.column);
            goto out;
        }
        if (!json_is_object(ctx.body)) {
            rc = fanns_err_set(&ctx.err, FANNS_EINVAL, NULL, "Format error in JSON body: expected a JSON object");
            goto out;
        }
    }
    rc = route(&ctx);
out:;
    double dt = now_sec() - t0;
    json_t *doc;
    if (rc == 0 && ctx.result_text) {
        /* The result is JSON text already: the envelope is written around it. */
        fanns_jbuf_t b = {0};
        json_decref(ctx.result);
        fanns__jbuf_puts(&b, "{\"result\":");
        fanns__jbuf_put(&b, ctx.result_text, ctx.result_text_len);
        fanns__jbuf_puts(&b, ",\"status\":\"ok\",\"time\":");
        fanns__jbuf_f64(&b, dt);
        fanns__jbuf_puts(&b, "}");
        free(ctx.result_text);
        if (b.oom) {
            free(b.p);
            doc = json_pack("{s:{s:s}, s:f}", "status", "error", "out of memory", "time", dt);
            set_json(resp, 500, doc);
            json_decref(doc);
        } else {
            resp->status = ctx.http_status ? ctx.http_status : 200;
            resp->content_type = "application/json";
            /* Payloads inside may hold u64 markers (json_u64.h), as set_json's text may. */
            if (strstr(b.p, "\\u0001u64:")) fanns__json_u64_unprotect(b.p);
            resp->body = b.p;
            resp->body_len = strlen(b.p);
        }
        doc = NULL;
    } else if (rc == 0) {
        doc = json_pack("{s:o, s:s, s:f}", "result", ctx.result ? ctx.result : json_null(), "status", "ok", "time", dt);
        set_json(resp, ctx.http_status ? ctx.http_status : 200, doc);
    } else {
        free(ctx.result_text);
        json_decref(ctx.result);
        int status = fanns_err_http_status(rc);
        if (status >= 500)
            fanns_error("request %s %s failed: %s (%s)", req->method, req->path, ctx.err.msg, fanns_err_name(rc));
        doc = json_pack("{s:{s:s}, s:f}", "status", "error", ctx.err.msg[0] ? ctx.err.msg : reason(status), "time", dt);
        set_json(resp, status, doc);
    }
    json_decref(doc);
    json_decref(ctx.body);
    free(ctx.fv.v);
    fanns__json_fastvecs_free(&ctx.fvs);
}
