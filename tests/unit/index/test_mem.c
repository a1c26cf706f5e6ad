/*
 * test_mem.c: tests index/mem.c: small and large blocks are zeroed and 64-byte aligned, large
 * ones start on a 2 MiB boundary and carry the huge-page advice (unless FANNS_HUGEPAGES=off,
 * which the second CTest registration sets), and growing, shrinking and crossing the
 * small/large threshold keep the contents and zero the new bytes.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31u + seed);
}

static int check_fill(const uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31u + seed)) return 0;
    return 1;
}

/* 1 if the mapping holding p has the "hg" (MADV_HUGEPAGE) flag, 0 if not, -1 if not found. */
static int vma_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, r = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && !strncmp(line, "VmFlags:", 8)) {
            r = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return r;
}

START_TEST(test_small) {
    uint8_t *p = fanns_mem_alloc(1000);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    ck_assert(all_zero(p, 1000));
    fill(p, 1000, 1);
    p = fanns_mem_realloc(p, 1000, 5000);
    ck_assert_ptr_nonnull(p);
    ck_assert(check_fill(p, 1000, 1));
    ck_assert(all_zero(p + 1000, 4000));
    p = fanns_mem_realloc(p, 5000, 10);
    ck_assert(check_fill(p, 10, 1));
    fanns_mem_free(p, 10);
    fanns_mem_free(NULL, 123);
}
END_TEST

START_TEST(test_large) {
    const size_t n = FANNS_MEM_HUGE_MIN * 3 + 12345;
    uint8_t *p = fanns_mem_alloc(n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % FANNS_MEM_HUGE_MIN, 0);
    ck_assert(all_zero(p, n));
    fill(p, n, 7);
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
        ck_assert_int_eq(vma_huge(p), fanns_mem_huge_enabled() ? 1 : 0);
    /* Grow: the pages move, contents stay, the new bytes are zero, still aligned. */
    const size_t n2 = n * 3;
    uint8_t *q = fanns_mem_realloc(p, n, n2);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)q % FANNS_MEM_HUGE_MIN, 0);
    ck_assert(check_fill(q, n, 7));
    ck_assert(all_zero(q + n, n2 - n));
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
        ck_assert_int_eq(vma_huge(q + n2 - 1), fanns_mem_huge_enabled() ? 1 : 0);
    /* Shrink, then grow again: the bytes cut off come back as zeros. */
    fill(q, n2, 9);
    const size_t n3 = FANNS_MEM_HUGE_MIN * 2 + 100;
    q = fanns_mem_realloc(q, n2, n3);
    ck_assert(check_fill(q, n3, 9));
    q = fanns_mem_realloc(q, n3, n2);
    ck_assert_ptr_nonnull(q);
    ck_assert(check_fill(q, n3, 9));
    ck_assert(all_zero(q + n3, n2 - n3));
    fanns_mem_free(q, n2);
}
END_TEST

START_TEST(test_cross_threshold) {
    const size_t small = 4096, large = FANNS_MEM_HUGE_MIN + 4096;
    uint8_t *p = fanns_mem_alloc(small);
    fill(p, small, 3);
    p = fanns_mem_realloc(p, small, large);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % FANNS_MEM_HUGE_MIN, 0);
    ck_assert(check_fill(p, small, 3));
    ck_assert(all_zero(p + small, large - small));
    fill(p, large, 5);
    p = fanns_mem_realloc(p, large, small);
    ck_assert_ptr_nonnull(p);
    ck_assert(check_fill(p, small, 5));
    fanns_mem_free(p, small);
}
END_TEST

int main(void) {
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_small);
    tcase_add_test(tc, test_large);
    tcase_add_test(tc, test_cross_threshold);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
