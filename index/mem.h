/*
 * mem.h: large, long-lived arrays (graph chunks, the float32 vector array) placed so the
 * kernel can back them with transparent huge pages.
 *
 * Searches touch these arrays at random: each graph node or vector visited is a TLB miss
 * with 4 KiB pages (a 100k x 384 collection spans 40,000 pages; the second-level TLB covers a
 * few thousand).  With 2 MiB pages the same arrays need under a hundred entries.  Linux
 * backs an anonymous mapping with huge pages only where a 2 MiB aligned range lies inside
 * it and, in the usual "madvise" mode, only after madvise(MADV_HUGEPAGE); malloc gives
 * neither.  So arrays of at least FANNS_MEM_HUGE_MIN bytes are mapped here, 2 MiB aligned
 * and advised; smaller ones come from malloc.  Where huge pages are off or unavailable the
 * mapping simply stays on 4 KiB pages.  FANNS_HUGEPAGES=off (read once) maps without the
 * advice, for A/B measurements.
 *
 * Sizes: every call takes the size the block was allocated with (fanns_mem_free,
 * fanns_mem_realloc), so the caller keeps it.  Memory is zeroed.  Pages of a mapping that are
 * never written are never made resident.
 */
#ifndef FANNS_MEM_H
#define FANNS_MEM_H

#include <stddef.h>

#define FANNS_MEM_HUGE_MIN ((size_t)2 << 20)

/* A zeroed block of n bytes (n > 0), 64-byte aligned; NULL when out of memory.  The caller
 * frees it with fanns_mem_free(p, n). */
void *fanns_mem_alloc(size_t n);
/* Frees p (NULL is ignored), allocated with size n. */
void fanns_mem_free(void *p, size_t n);
/* Grows or shrinks p (allocated with size old; NULL with old 0 allocates) to n bytes,
 * keeping the first min(old, n) bytes; bytes past old are zero.  Returns the new block, or
 * NULL when out of memory (p is then still valid with size old). */
void *fanns_mem_realloc(void *p, size_t old, size_t n);
/* True when large blocks are advised for huge pages (not switched off). */
int fanns_mem_huge_enabled(void);

#endif
