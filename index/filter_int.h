/*
 * filter_int.h: private layout of a compiled filter (filter.c), shared with the payload
 * indexes (payload_index.c) so they can walk the tree and answer conditions from bitmaps.
 *
 * Nothing outside index/ may include this header.  A compiled tree is immutable after
 * fanns_filter_compile() returns; readers may walk it from many threads at once.
 *
 * Layout: a filter is a tree of node_t.  N_FILTER nodes hold four condition lists (must,
 * should, must_not, min_should with min_count); leaves are field conditions (N_FIELD, a
 * field_t with a key path and any of match / range / values_count / is_empty / is_null /
 * geo checks), N_IS_EMPTY and N_IS_NULL on a key path, N_HAS_ID with sorted 17-byte id keys,
 * and N_NESTED with a key path (always ending in "[]") and an inner filter evaluated per
 * array element.  Key paths are arrays of segments: an object key, an array index, or "[]"
 * (every element).
 */
#ifndef FANNS_FILTER_INT_H
#define FANNS_FILTER_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"


enum { SEG_KEY, SEG_INDEX, SEG_ALL };

typedef struct {
    uint8_t kind;
    size_t index;   /* SEG_INDEX */
    char *key;      /* SEG_KEY, NUL-terminated copy */
} seg_t;

typedef struct {
    seg_t *segs;
    size_t n;
} kpath_t;

typedef struct {
    char *s;
    size_t len;
} str_t;

enum {
    M_VALUE_STR, M_VALUE_INT, M_VALUE_BOOL, M_TEXT, M_TEXT_ANY, M_PREFIX,
    M_ANY_STR, M_ANY_INT, M_EXCEPT_STR, M_EXCEPT_INT
};

enum { B_LT = 0, B_GT = 1, B_GTE = 2, B_LTE = 3 };

typedef struct {
    double lon, lat;
} geo_pt_t;

typedef struct {
    geo_pt_t *pts;
    size_t n;
} ring_t;

typedef struct {
    kpath_t key;
    bool has_match;
    uint8_t mkind;
    str_t str;          /* value / text / prefix */
    int64_t ival;       /* value (integer) */
    bool bval;          /* value (bool) */
    str_t *strs;        /* sorted any/except strings, or text_any tokens */
    size_t nstrs;
    int64_t *ints;      /* sorted any/except integers */
    size_t nints;

    bool has_range, range_dt;
    uint8_t rset;       /* bit B_* set when that bound is present */
    double rnum[4];
    int64_t rdt[4];

    bool has_vc;
    uint8_t vcset;
    uint64_t vc[4];

    int8_t is_empty;    /* -1 unset, 0 false, 1 true */
    int8_t is_null;

    bool has_radius;
    geo_pt_t center;
    double radius;
    bool has_bbox;
    geo_pt_t top_left, bottom_right;
    bool has_poly;
    ring_t *rings;      /* rings[0] exterior, then interiors */
    size_t nrings;
} field_t;

enum { N_FILTER, N_FIELD, N_IS_EMPTY, N_IS_NULL, N_HAS_ID, N_NESTED };

typedef struct node node_t;

typedef struct {
    node_t **v;
    size_t n;
} list_t;

struct node {
    uint8_t kind;
    union {
        struct {
            list_t must, should, must_not, min_should;
            size_t min_count;   /* 0 when there is no min_should */
        } f;
        field_t fc;
        kpath_t key;            /* N_IS_EMPTY, N_IS_NULL */
        struct {
            uint8_t (*keys)[FANNS_PID_KEYLEN];
            size_t n;
        } has_id;
        struct {
            kpath_t key;
            node_t *filter;
        } nested;
    } u;
};

struct fanns_filter {
    node_t *root;
    size_t nconds;
};


/* Visitor for fanns__filter_walk: returns true to stop the walk (the walk then returns true).
 * *seen is already true when it is called. */
typedef bool (*fanns__filter_visit_fn)(const json_t *v, const void *ctx, bool *seen);

/* Visits every value key path k yields from payload (an object or NULL), in document order,
 * as fanns_filter_match does.  *seen is set when at least one value was yielded.  Returns
 * true when fn stopped the walk. */
bool fanns__filter_walk(const kpath_t *k, const json_t *payload, fanns__filter_visit_fn fn, const void *ctx,
                        bool *seen);

/* Parses a payload key path ("a.b", "a[]", "a[2].b", quoted segments) into *out, which the
 * caller frees with fanns__filter_kpath_free.  path names the field in error messages.
 * Returns 0, FANNS_EINVAL or FANNS_ENOMEM. */
int fanns__filter_key_parse(const char *key, const char *path, kpath_t *out, fanns_err_t *err);
void fanns__filter_kpath_free(kpath_t *k);
/* True when a and b have the same segments. */
bool fanns__filter_kpath_eq(const kpath_t *a, const kpath_t *b);

/* The match part of field condition f (f->has_match) applied to one string value, exactly
 * as fanns_filter_match applies it to a JSON string. */
bool fanns__filter_match_str(const field_t *f, const char *s, size_t len);

#endif
