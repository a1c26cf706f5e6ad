/*
 * mem.c: large arrays on 2 MiB aligned anonymous mappings advised for transparent huge
 * pages, see mem.h.
 *
 * A large block is an mmap of its size rounded up to 4 KiB, placed at a 2 MiB boundary by
 * mapping 2 MiB more and unmapping the slack on both sides.  Growing moves the old pages
 * into the start of a new aligned mapping with mremap(MREMAP_FIXED), so no byte is copied
 * and huge pages stay whole (source and target are both 2 MiB aligned); when mremap fails
 * the bytes are copied.  A block's last partial 2 MiB range gets 4 KiB pages (the kernel
 * only uses a huge page where the whole aligned range is mapped), so rounding wastes
 * nothing.  Small blocks (< FANNS_MEM_HUGE_MIN) are malloc'ed: a huge page would be mostly
 * empty.
 */
#include "mem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ALIGN_HUGE ((size_t)2 << 20)
#define PAGE ((size_t)4096)

static pthread_once_t huge_once = PTHREAD_ONCE_INIT;
static int huge_on = 1;

static void huge_init(void) {
    const char *e = getenv("FANNS_HUGEPAGES");
    if (e && (!strcmp(e, "off") || !strcmp(e, "0"))) huge_on = 0;
}

int fanns_mem_huge_enabled(void) {
    pthread_once(&huge_once, huge_init);
    return huge_on;
}

static size_t map_len(size_t n) { return (n + PAGE - 1) & ~(PAGE - 1); }

/* A fresh aligned mapping of map_len(n) bytes, advised; NULL on failure. */
static void *map_aligned(size_t n) {
    size_t len = map_len(n), want = len + ALIGN_HUGE;
    uint8_t *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + ALIGN_HUGE - 1) & ~(uintptr_t)(ALIGN_HUGE - 1);
    size_t head = a - (uintptr_t)p, tail = want - head - len;
    if (head) munmap(p, head);
    if (tail) munmap((uint8_t *)a + len, tail);
    if (fanns_mem_huge_enabled()) (void)madvise((void *)a, len, MADV_HUGEPAGE); /* advice only */
    return (void *)a;
}

void *fanns_mem_alloc(size_t n) {
    if (n < FANNS_MEM_HUGE_MIN) {
        /* 64-byte aligned like the mappings; aligned_alloc wants a multiple of the alignment. */
        size_t r = (n + 63) & ~(size_t)63;
        void *p = aligned_alloc(64, r ? r : 64);
        if (p) memset(p, 0, r ? r : 64);
        return p;
    }
    return map_aligned(n);
}

void fanns_mem_free(void *p, size_t n) {
    if (!p) return;
    if (n < FANNS_MEM_HUGE_MIN) free(p);
    else munmap(p, map_len(n));
}

void *fanns_mem_realloc(void *p, size_t old, size_t n) {
    if (!p) return fanns_mem_alloc(n);
    if (n == old) return p;
    if (old >= FANNS_MEM_HUGE_MIN && n >= FANNS_MEM_HUGE_MIN) {
        size_t ol = map_len(old), nl = map_len(n);
        if (nl == ol) return p;
        if (nl < ol) {
            munmap((uint8_t *)p + nl, ol - nl);
            memset((uint8_t *)p + n, 0, nl - n); /* so a later growth reads zeros there */
            return p;
        }
        uint8_t *q = map_aligned(n);
        if (!q) return NULL;
        /* Move the old pages into the head of q (this replaces q's fresh pages there). */
        void *r = mremap(p, ol, ol, MREMAP_MAYMOVE | MREMAP_FIXED, q);
        if (r != MAP_FAILED) return q;
        memcpy(q, p, old);
        munmap(p, ol);
        return q;
    }
    uint8_t *q = fanns_mem_alloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    fanns_mem_free(p, old);
    return q;
}
