/*
 * api_int.h: shared pieces of the REST API implementation (proto/ only): the request
 * context, JSON validation helpers and the handlers of each resource.
 */
#ifndef FANNS_API_INT_H
#define FANNS_API_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "api.h"
#include "db.h"
#include "json_fastvec.h"
#include "json_out.h"

#define FANNS_API_VERSION "1.18.0"   /* the Qdrant REST API level fanns speaks */
#define FANNS_MAX_LIMIT 100000       /* largest limit + offset a search may ask for */
#define FANNS_MAX_BATCH 100000       /* points in one upsert */

struct fanns_api {
    fanns_db_t *db;
};

/* One request being answered.  `result` is set by a handler on success (owned). */
typedef struct api_ctx {
    fanns_api_t *api;
    const fanns_api_req_t *req;
    json_t *body;           /* parsed body object or NULL */
    const char *segs[8];    /* path segments */
    int nsegs;
    bool wait;              /* ?wait=true */
    bool u64_protected;     /* body had integers above INT64_MAX (json_u64.h) */
    fanns_fastvec_t fv;     /* query vector taken out of the body (json_fastvec.h) */
    fanns_fastvecs_t fvs;   /* upsert vectors taken out of the body (json_fastvec.h) */
    json_t *result;         /* success result (owned) */
    char *result_text;      /* or the success result already encoded as JSON text (malloc'd,
                             * owned; json_out.h), which takes precedence */
    size_t result_text_len;
    int http_status;        /* success status, 200 unless set */
    fanns_err_t err;
} api_ctx_t;

/* Fails with FANNS_EINVAL when obj has a key not in the NULL-terminated list. */
int fanns__api_check_fields(const json_t *obj, const char *path, const char *const *allowed, fanns_err_t *err);
/* Reads an optional boolean field (default def). */
int fanns__api_get_bool(const json_t *obj, const char *key, bool def, bool *out, const char *path, fanns_err_t *err);
/* Reads an optional non-negative integer within [lo, hi]; out of range is FANNS_EVALIDATE. */
int fanns__api_get_uint(const json_t *obj, const char *key, long long def, long long lo, long long hi, long long *out,
                        const char *path, fanns_err_t *err);
/* Parses a dense vector of exactly dim finite numbers into out (dim floats). */
int fanns__api_parse_vector(const json_t *v, uint32_t dim, float *out, const char *path, fanns_err_t *err);

/* Handlers; each returns 0 (ctx->result set) or a FANNS_E* code with ctx->err set. */
int fanns__api_collections_list(api_ctx_t *ctx);
int fanns__api_collection_create(api_ctx_t *ctx, const char *name);
int fanns__api_collection_update(api_ctx_t *ctx, const char *name);
int fanns__api_collection_get(api_ctx_t *ctx, const char *name);
int fanns__api_collection_delete(api_ctx_t *ctx, const char *name);
int fanns__api_collection_exists(api_ctx_t *ctx, const char *name);
int fanns__api_index_create(api_ctx_t *ctx, const char *name);
int fanns__api_index_delete(api_ctx_t *ctx, const char *name, const char *field);

int fanns__api_points_upsert(api_ctx_t *ctx, const char *name);
int fanns__api_points_get(api_ctx_t *ctx, const char *name);
int fanns__api_point_get(api_ctx_t *ctx, const char *name, const char *id);
int fanns__api_points_delete(api_ctx_t *ctx, const char *name);
int fanns__api_points_scroll(api_ctx_t *ctx, const char *name);
int fanns__api_points_count(api_ctx_t *ctx, const char *name);
int fanns__api_points_payload(api_ctx_t *ctx, const char *name, fanns_wop_t op);
int fanns__api_points_search(api_ctx_t *ctx, const char *name, bool batch);
int fanns__api_points_query(api_ctx_t *ctx, const char *name, bool batch);

/* Submits a write and fills ctx->result with Qdrant's UpdateResult. */
int fanns__api_submit(api_ctx_t *ctx, fanns_wentry_t *e);

#endif
