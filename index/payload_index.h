/*
 * payload_index.h: the payload indexes of one collection, and filter evaluation to bitmaps.
 *
 * A payload index is declared on one key path ("categories", "meta.year", "authors[]") with a
 * Qdrant field_schema type.  It keeps, for every point (a dense 32-bit offset), what that path
 * yields in the point's payload, as roaring bitmaps and sorted arrays:
 *   keyword, uuid   string value -> bitmap of offsets (an array puts one point in several)
 *   integer         integer value -> bitmap, and every number in a sorted (key, offset) array
 *   float           every number in a sorted (key, offset) array
 *   datetime        every string that parses as a datetime (datetime.h) in a sorted array
 *   bool            a bitmap for true and one for false
 *   text, geo       accepted and listed, but only their "shape" bitmaps below are kept: text
 *                   matches and geo conditions on them are checked per point
 * Every index also keeps shape bitmaps (path yields something, yields null, array lengths),
 * which answer values_count, is_empty and is_null conditions on its path.
 *
 * fanns_pindex_eval() answers a compiled filter (filter.h) with three-valued logic: each
 * sub-condition is a pair sure <= match <= maybe of bitmaps, exact when equal.  A condition on
 * a path without an index is (nothing, everything); and/or/not/min_should combine pairs so the
 * result is always a superset of the matching points (and a subset when `sure` is asked for),
 * never wrong under must_not.  The semantics are those of fanns_filter_match exactly: a
 * property test checks every answer against it.
 *
 * Which conditions an index answers exactly (key path equal to the index's path):
 *   match value / any (strings on keyword/uuid, integers on integer), text / phrase /
 *   text_any / prefix on keyword/uuid (by scanning the distinct values), except (exact but
 *   for points holding two or more distinct values one of which is excluded: those are
 *   "maybe"), value bool on bool, range on integer/float (numbers) and datetime (datetime
 *   bounds), values_count, is_empty, is_null, {is_empty}, {is_null}: on every index type.
 * An index on "a" also answers match and range conditions on "a[]" (and one on "a[]" those
 * on "a"), exactly for points whose "a" is an array of non-arrays or null; other points are
 * "maybe".  has_id is exact when the caller gives an id -> offset resolver, else "maybe"
 * for every point.  nested conditions and conditions on other paths are "maybe".
 *
 * Threads: the mutators (create, drop, index_field_point, update) are called by one writer
 * thread holding the collection's write lock; the const functions (eval, estimate, schema,
 * memory, has) may run on many reader threads at once under the read lock: they never write
 * to the index.
 */
#ifndef FANNS_PAYLOAD_INDEX_H
#define FANNS_PAYLOAD_INDEX_H

#include <jansson.h>
#include <roaring/roaring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "filter.h"
#include "pid.h"

#define FANNS_PINDEX_MAX_FIELDS 256     /* indexes per collection */
#define FANNS_PINDEX_SAMPLE 512         /* points checked per estimate when indexes do not answer */

typedef struct fanns_pindex fanns_pindex_t;   /* every payload index of one collection */

/* Access to the collection's points, for has_id and for estimates.  Every callback may be
 * NULL; they are called on the reader's thread under its read lock.
 *   pid:     external id of a live offset (NULL if unknown).
 *   payload: payload object of a live offset (NULL: none); borrowed until the call returns.
 *   offset:  live offset of an external id; returns false when the id is not a live point. */
typedef struct fanns_pindex_points {
    const fanns_pid_t *(*pid)(void *ctx, uint32_t off);
    const json_t *(*payload)(void *ctx, uint32_t off);
    bool (*offset)(void *ctx, const fanns_pid_t *id, uint32_t *off);
    void *ctx;
} fanns_pindex_points_t;

/* New empty set of indexes; *out is freed with fanns_pindex_free.  Returns 0 or FANNS_ENOMEM. */
int fanns_pindex_new(fanns_pindex_t **out);
/* Frees every index; NULL is ignored. */
void fanns_pindex_free(fanns_pindex_t *pi);

/* Declares an index on field (a key path as filters use them) with a Qdrant field_schema:
 * "keyword" | "integer" | "float" | "bool" | "datetime" | "uuid" | "text" | "geo", or an
 * object {"type": ..., other params} (kept and shown by fanns_pindex_schema).  Borrows both
 * arguments.  An existing index on the same path is replaced.  The new index is empty: the
 * caller then feeds every live point with fanns_pindex_index_field_point(pi, field, ...).
 * Returns 0; FANNS_EINVAL for a bad key path or schema (err names "field_name" or
 * "field_schema"); FANNS_ELIMIT past FANNS_PINDEX_MAX_FIELDS; FANNS_ENOMEM. */
int fanns_pindex_create(fanns_pindex_t *pi, const char *field, const json_t *field_schema, fanns_err_t *err);

/* Removes the index on field.  Returns 0 or FANNS_ENOTFOUND. */
int fanns_pindex_drop(fanns_pindex_t *pi, const char *field);

/* True if an index exists on field (same key path). */
bool fanns_pindex_has(const fanns_pindex_t *pi, const char *field);

/* Adds point off (payload: an object or NULL) to the index on field only, for building a new
 * index over existing points.  Adding the same point twice is harmless.  Returns 0,
 * FANNS_ENOTFOUND (no such index) or FANNS_ENOMEM. */
int fanns_pindex_index_field_point(fanns_pindex_t *pi, const char *field, uint32_t off, const json_t *payload);

/* Point off's payload went from old_payload (NULL: none, or the point is new) to new_payload
 * (NULL: none, or the point was deleted); updates every index.  old_payload must be what was
 * last given for off.  Borrows both.  Returns 0 or FANNS_ENOMEM; on ENOMEM the indexes that
 * could not be updated are marked broken and answer every condition with "maybe" from then
 * on (still correct, only slower), until dropped and re-created. */
int fanns_pindex_update(fanns_pindex_t *pi, uint32_t off, const json_t *old_payload, const json_t *new_payload);

/* Evaluates compiled filter f (NULL: match all) over the live points `universe`, which must
 * contain every offset whose payload is indexed.  pts may be NULL (has_id is then "maybe").
 *   *out   offsets that may match (a superset of the matching ones; all of them when *exact);
 *          caller frees with roaring_bitmap_free.
 *   *sure  (if sure != NULL) offsets certain to match; caller frees; NULL when *exact.
 *          The caller needs fanns_filter_match only for *out minus *sure.
 *   *exact true when *out is exactly the matching set.
 * Read-only on pi, f and universe.  Returns 0 or FANNS_ENOMEM (outputs are then NULL). */
int fanns_pindex_eval(const fanns_pindex_t *pi, const fanns_filter_t *f, const roaring_bitmap_t *universe,
                      const fanns_pindex_points_t *pts, roaring_bitmap_t **out, roaring_bitmap_t **sure, bool *exact,
                      fanns_err_t *err);

/* Estimated number of points of universe matching f.  Exact (and *exact set) when indexes
 * answer every condition: a single match or range condition is counted without building a
 * bitmap (value bitmap cardinality, or a range count over the sorted array); other trees are
 * evaluated with fanns_pindex_eval.  Otherwise the points that are "maybe" are sampled (up to
 * FANNS_PINDEX_SAMPLE of them, spread evenly, deterministic) with fanns_filter_match through
 * pts->pid and pts->payload, and the sure count plus the scaled sample is returned (exact
 * when there are no more maybe points than samples; has_id conditions then need pts->pid);
 * without a payload callback, the midpoint of the sure and maybe counts.  Returns 0 or
 * FANNS_ENOMEM. */
int fanns_pindex_estimate(const fanns_pindex_t *pi, const fanns_filter_t *f, const roaring_bitmap_t *universe,
                          const fanns_pindex_points_t *pts, uint64_t *estimate, bool *exact);

/* Qdrant's payload_schema: {field: {"data_type": type, "params"?: {...}, "points": n}} where n
 * counts points holding at least one value of the index's type (points with the path at all
 * for text and geo).  New object owned by the caller, NULL on ENOMEM. */
json_t *fanns_pindex_schema(const fanns_pindex_t *pi);

/* Calls fn for every value of a keyword, uuid, integer or bool index held by at least min
 * and at most max points, in index order, then value-table order (deterministic for equal
 * histories): field is the index's key path, key/keylen an identity of the value unique
 * within the field ("k" + the string, "i" + the decimal integer, "b1" / "b0"), bm its points
 * (borrowed for the call).  Broken indexes are skipped.  Read-only (readers under the read
 * lock).  Stops at, and returns, fn's first nonzero answer; else 0. */
int fanns_pindex_values(const fanns_pindex_t *pi, uint64_t min, uint64_t max,
                        int (*fn)(void *ctx, const char *field, const char *key, size_t keylen,
                                  const roaring_bitmap_t *bm),
                        void *ctx);

/* Bytes held by all indexes (bitmaps, hash tables, sorted arrays). */
size_t fanns_pindex_memory(const fanns_pindex_t *pi);

#endif
