/*
 * filter.h: Qdrant payload filters, compiled once per query and evaluated per point.
 *
 * fanns_filter_compile() checks a filter JSON object (the `filter` field of a Qdrant request)
 * and turns it into an immutable tree: key paths split into segments, match lists sorted for
 * binary search, datetime bounds parsed.  fanns_filter_match() then walks the tree against one
 * point's id and payload without allocating, so one compiled filter may be shared by many
 * threads.
 *
 * Supported, with Qdrant's semantics (lib/segment/src/payload_storage/condition_checker.rs,
 * query_checker.rs, types.rs of qdrant/qdrant):
 *   Filter     {must, should, must_not, min_should:{conditions, min_count}}; each list may be
 *              a single condition object; an empty `should` list is no constraint.
 *   Field      {key, match | range | values_count | geo_radius | geo_bounding_box |
 *               geo_polygon | is_empty: bool | is_null: bool}
 *   match      {value: string|integer|bool}, {any: [...]}, {except: [...]}, {text}, {phrase},
 *              {text_any}, {prefix}.  There is no full-text index here, so text and phrase are
 *              substring matches, text_any matches when any whitespace-separated token is a
 *              substring, prefix is byte-wise starts-with: Qdrant's behaviour on a field
 *              without a full-text index.
 *   range      {gt, gte, lt, lte} numbers; if any bound is a string the range is a datetime
 *              range (see datetime.h) and payload strings are parsed per point.
 *   other      {is_empty:{key}}, {is_null:{key}}, {has_id:[ids]}, {nested:{key, filter}}, and
 *              a Filter object used as a condition.
 * Key paths: "a.b.c", "a[]", "a[].b", "a[2].b", quoted segments ("a.\"x.y\""), as Qdrant's
 * JsonPath.  A dotted segment does not look inside arrays: use "a[].b" for arrays of objects.
 * An array value at the end of the path matches if any element matches.
 * Not supported (compile error): has_vector, slice.
 */
#ifndef FANNS_FILTER_H
#define FANNS_FILTER_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "pid.h"

#define FANNS_FILTER_MAX_DEPTH 32          /* filters nested in filters, nested conditions */
#define FANNS_FILTER_MAX_CONDITIONS 10000  /* conditions in the whole tree */
#define FANNS_FILTER_MAX_LIST 100000       /* entries in one any / except / has_id list */

typedef struct fanns_filter fanns_filter_t;

/* Compiles filter JSON (an object; JSON null or a NULL pointer -> *out = NULL, meaning "match
 * all").  Borrows filter for the duration of the call only (strings are copied).  path is the
 * JSON path prefix used in error messages, e.g. "filter".  On success *out is owned by the
 * caller (free with fanns_filter_free).  Returns 0; FANNS_EINVAL for a bad shape, an unknown
 * key, a wrong type, an unparsable datetime or key path, or a limit exceeded (err->path names
 * the field, e.g. "filter.must[1].range.gt"); FANNS_EVALIDATE for a well-formed but invalid
 * value (min_count < 1, a field condition without any condition), as Qdrant answers 422;
 * FANNS_ENOMEM. */
int fanns_filter_compile(const json_t *filter, const char *path, fanns_filter_t **out, fanns_err_t *err);

/* Frees a compiled filter; NULL is ignored. */
void fanns_filter_free(fanns_filter_t *f);

/* True if the point (external id, may be NULL = unknown; payload object, may be NULL = empty)
 * matches.  f NULL -> true.  Read-only on all arguments, so thread-safe. */
bool fanns_filter_match(const fanns_filter_t *f, const fanns_pid_t *id, const json_t *payload);

/* Number of conditions in the compiled tree (0 for NULL), for planners and tests. */
size_t fanns_filter_count(const fanns_filter_t *f);

#endif
