/*
 * faiss_codec.c: fanns_faiss_codec_t, a FAISS index used as a standalone vector codec.
 *
 * Owns: one FaissIndex built by faiss_index_factory (or read back by faiss_read_index), its
 * dimension and its measured code size.  All FAISS calls of fanns are in this file, and every
 * FAISS return code goes through faiss_error(), which turns FAISS's -1/-2/-4 codes and its
 * thread-local message (read on the thread that failed, right after the call) into a FANNS_E*
 * code and a fanns_err_t.
 *
 * Serialized form: a 24-byte frame (magic, version, payload length, FNV-1a-64 of the payload;
 * see the header) around FAISS's index file bytes.  The frame is checked before FAISS reads
 * anything, because FAISS 1.7.3 leaks the partly read index when a truncated file makes it
 * throw, and an unchecked length field could make it allocate without bound.
 *
 * Invariants: code_size is 0 while the index is untrained and the true bytes-per-vector once
 * it is trained; encode/decode refuse an untrained codec before calling FAISS.
 *
 * Code size: FAISS 1.7.3's faiss_Index_sa_code_size computes the size but never stores it in
 * its output argument, and the C API does not expose the quantizer's parameters.  So after
 * training we encode one probe vector twice, into buffers pre-filled with 0x00 and with 0xff:
 * a byte FAISS wrote holds the same value in both, a byte it did not write differs, so the
 * code size is one past the last byte that agrees.  The buffers are sized from the largest
 * code any FAISS codec makes (4 bytes per dimension for "Flat", plus a few bytes of list
 * number for IVF), using the inner index's dimension when a transform changes it.
 *
 * References: Jegou, Douze, Schmid, "Product quantization for nearest neighbor search",
 * IEEE TPAMI 2011; Ge et al., "Optimized product quantization", CVPR 2013; the FAISS wiki
 * page "The index factory".
 */
#include "faiss_codec.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "distance.h"

#define MAX_DIM 65536
#define MAX_FACTORY 256
/* Slack on top of 4 bytes per dimension when measuring the code size (IVF list numbers). */
#define CODE_SLACK 64

struct fanns_faiss_codec {
    FaissIndex *index;
    size_t dim;
    size_t code_size; /* 0 until trained */
};

/* Translates a FAISS C API return code into a FANNS_E* code and fills err.
 *   rc       what the FAISS call returned (0, -1 unknown exception, -2 FaissException,
 *            -4 std::exception).
 *   code     the FANNS_E* code for a FaissException in this context: FAISS throws those for
 *            bad arguments (EINVAL) and for unreadable index bytes (ECORRUPT).
 *   what     the operation, for the message.
 * A std::bad_alloc becomes FANNS_ENOMEM; other std:: exceptions FANNS_EINTERNAL. */
static int faiss_error(int rc, int code, fanns_err_t *err, const char *what) {
    const char *msg;
    if (rc == 0)
        return 0;
    msg = faiss_get_last_error();
    if (!msg)
        msg = "no message";
    switch (rc) {
    case FAISS_EXCEPT:
        break;
    case STD_EXCEPT:
        code = strstr(msg, "bad_alloc") ? FANNS_ENOMEM : FANNS_EINTERNAL;
        break;
    default: /* UNKNOWN_EXCEPT and anything newer */
        code = FANNS_EINTERNAL;
        break;
    }
    return fanns_err_set(err, code, NULL, "faiss %s failed (%d): %s", what, rc, msg);
}

/* Copies factory to out, appending "np" when its last component is a bare product quantizer
 * ("PQ16", "PQ16x8", "OPQ16,PQ16x8", "IVF256,PQ8").  index_factory turns polysemous training
 * on for those; it only reorders centroids for Hamming-distance search, which fanns never
 * does, and it costs minutes where plain PQ training takes seconds. */
static int factory_no_polysemous(const char *factory, char *out, size_t cap, fanns_err_t *err) {
    const char *last = strrchr(factory, ','), *p;
    size_t len = strlen(factory);
    int bare_pq;

    last = last ? last + 1 : factory;
    p = last + 2;
    bare_pq = strncmp(last, "PQ", 2) == 0 && *p >= '0' && *p <= '9';
    while (bare_pq && *p >= '0' && *p <= '9')
        p++;
    if (bare_pq && *p == 'x') {
        p++;
        bare_pq = *p >= '0' && *p <= '9';
        while (*p >= '0' && *p <= '9')
            p++;
    }
    bare_pq = bare_pq && *p == 0;
    if (len + (bare_pq ? 2 : 0) >= cap)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "faiss factory string is too long");
    memcpy(out, factory, len);
    if (bare_pq) {
        memcpy(out + len, "np", 2);
        len += 2;
    }
    out[len] = 0;
    return 0;
}

/* Largest dimension of the vectors reaching the innermost index (transforms like "RR256,"
 * or "OPQ16_64," change it). */
static size_t inner_dim(FaissIndex *index) {
    size_t d = (size_t)faiss_Index_d(index);
    for (;;) {
        FaissIndexPreTransform *pt = faiss_IndexPreTransform_cast(index);
        size_t di;
        if (!pt)
            break;
        index = faiss_IndexPreTransform_index(pt);
        if (!index)
            break;
        di = (size_t)faiss_Index_d(index);
        if (di > d)
            d = di;
    }
    return d;
}

/* Measures the code size of a trained index (see the file comment).  Sets codec->code_size. */
static int measure_code_size(fanns_faiss_codec_t *codec, fanns_err_t *err) {
    size_t cap = 4 * inner_dim(codec->index) + CODE_SLACK;
    float *probe = calloc(codec->dim, sizeof(float));
    uint8_t *a = malloc(cap), *b = malloc(cap);
    size_t i, size = 0;
    int rc;

    if (!probe || !a || !b) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory measuring the code size");
        goto fail;
    }
    /* A non-zero probe keeps normalising transforms ("L2norm,") away from 0/0. */
    for (i = 0; i < codec->dim; i++)
        probe[i] = (float)((i % 7) + 1) * 0.125f;
    memset(a, 0x00, cap);
    memset(b, 0xff, cap);
    rc = faiss_error(faiss_Index_sa_encode(codec->index, 1, probe, a), FANNS_EINVAL, err,
                     "encode");
    if (rc)
        goto fail;
    rc = faiss_error(faiss_Index_sa_encode(codec->index, 1, probe, b), FANNS_EINVAL, err,
                     "encode");
    if (rc)
        goto fail;
    for (i = cap; i > 0; i--) {
        if (a[i - 1] == b[i - 1]) {
            size = i;
            break;
        }
    }
    if (size == 0 || size > cap - CODE_SLACK / 2) {
        rc = fanns_err_set(err, FANNS_EINVAL, NULL,
                           "faiss codec writes %zu bytes per vector; not a usable codec", size);
        goto fail;
    }
    codec->code_size = size;
    rc = 0;
fail:
    free(probe);
    free(a);
    free(b);
    return rc;
}

int fanns_faiss_codec_new(const char *factory, size_t dim, int metric,
                          fanns_faiss_codec_t **out, fanns_err_t *err) {
    fanns_faiss_codec_t *codec = NULL;
    FaissMetricType fm;
    char desc[MAX_FACTORY];
    int rc;

    assert(factory && out);
    *out = NULL;
    if (dim == 0 || dim > MAX_DIM)
        return fanns_err_set(err, FANNS_EVALIDATE, NULL,
                             "vector dimension %zu is outside 1..%d", dim, MAX_DIM);
    switch (metric) {
    case FANNS_METRIC_COSINE:
    case FANNS_METRIC_DOT:
        fm = METRIC_INNER_PRODUCT;
        break;
    case FANNS_METRIC_EUCLID:
    case FANNS_METRIC_MANHATTAN:
        fm = METRIC_L2;
        break;
    default:
        return fanns_err_set(err, FANNS_EVALIDATE, NULL, "unknown metric %d", metric);
    }
    rc = factory_no_polysemous(factory, desc, sizeof(desc), err);
    if (rc)
        return rc;
    codec = calloc(1, sizeof(*codec));
    if (!codec)
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    codec->dim = dim;
    rc = faiss_error(faiss_index_factory(&codec->index, (int)dim, desc, fm), FANNS_EINVAL, err,
                     "index_factory");
    if (rc)
        goto fail;
    /* Factories without a training step ("Flat", "SQfp16") are ready at once. */
    if (faiss_Index_is_trained(codec->index)) {
        rc = measure_code_size(codec, err);
        if (rc)
            goto fail;
    }
    *out = codec;
    return 0;
fail:
    fanns_faiss_codec_free(codec);
    return rc;
}

int fanns_faiss_codec_train(fanns_faiss_codec_t *codec, size_t n, const float *x,
                            fanns_err_t *err) {
    int rc;
    assert(codec && (x || n == 0));
    if (n == 0 || n > (size_t)INT64_MAX / codec->dim)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "cannot train on %zu vectors", n);
    codec->code_size = 0;
    rc = faiss_error(faiss_Index_train(codec->index, (idx_t)n, x), FANNS_EINVAL, err, "train");
    if (rc)
        return rc;
    return measure_code_size(codec, err);
}

int fanns_faiss_codec_is_trained(const fanns_faiss_codec_t *codec) {
    assert(codec);
    return codec->code_size != 0;
}

size_t fanns_faiss_codec_dim(const fanns_faiss_codec_t *codec) {
    assert(codec);
    return codec->dim;
}

size_t fanns_faiss_codec_code_size(const fanns_faiss_codec_t *codec) {
    assert(codec);
    return codec->code_size;
}

int fanns_faiss_codec_encode(const fanns_faiss_codec_t *codec, size_t n, const float *x,
                             uint8_t *codes, fanns_err_t *err) {
    assert(codec && (n == 0 || (x && codes)));
    if (!codec->code_size)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "codec is not trained");
    if (n == 0)
        return 0;
    return faiss_error(faiss_Index_sa_encode(codec->index, (idx_t)n, x, codes), FANNS_EINVAL,
                       err, "encode");
}

int fanns_faiss_codec_decode(const fanns_faiss_codec_t *codec, size_t n, const uint8_t *codes,
                             float *x, fanns_err_t *err) {
    assert(codec && (n == 0 || (x && codes)));
    if (!codec->code_size)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "codec is not trained");
    if (n == 0)
        return 0;
    return faiss_error(faiss_Index_sa_decode(codec->index, (idx_t)n, codes, x), FANNS_EINVAL,
                       err, "decode");
}

/* FNV-1a, 64 bits: detects truncation and stray bit flips (not an adversary). */
static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int fanns_faiss_codec_serialize(const fanns_faiss_codec_t *codec, uint8_t **buf, size_t *len,
                                fanns_err_t *err) {
    static const uint8_t zeros[FANNS_FAISS_FRAME_SIZE];
    char *mem = NULL;
    size_t size = 0;
    uint8_t *p;
    FILE *f;
    int rc = 0;

    assert(codec && buf && len);
    *buf = NULL;
    *len = 0;
    f = open_memstream(&mem, &size);
    if (!f)
        return fanns_err_errno(err, errno, "open_memstream");
    /* Room for the frame header, filled in once the payload length is known. */
    if (fwrite(zeros, 1, sizeof(zeros), f) != sizeof(zeros))
        rc = fanns_err_errno(err, errno, "writing the codec stream");
    if (rc == 0)
        rc = faiss_error(faiss_write_index(codec->index, f), FANNS_EIO, err, "write_index");
    /* fclose flushes and finalises mem/size even after a failed write. */
    if (fclose(f) != 0 && rc == 0)
        rc = fanns_err_errno(err, errno, "closing the codec stream");
    if (rc)
        goto fail;
    if (size < FANNS_FAISS_FRAME_SIZE) {
        rc = fanns_err_set(err, FANNS_EIO, NULL, "codec stream is short");
        goto fail;
    }
    p = (uint8_t *)mem;
    memcpy(p, "FNFC", 4);
    put_le(p + 4, 1, 4);
    put_le(p + 8, size - FANNS_FAISS_FRAME_SIZE, 8);
    put_le(p + 16, fnv1a64(p + FANNS_FAISS_FRAME_SIZE, size - FANNS_FAISS_FRAME_SIZE), 8);
    *buf = p;
    *len = size;
    return 0;
fail:
    free(mem);
    return rc;
}

int fanns_faiss_codec_deserialize(const uint8_t *buf, size_t len, fanns_faiss_codec_t **out,
                                  fanns_err_t *err) {
    fanns_faiss_codec_t *codec = NULL;
    const uint8_t *payload;
    size_t plen;
    FILE *f;
    int rc, d;

    assert(out && (buf || len == 0));
    *out = NULL;
    if (len < FANNS_FAISS_FRAME_SIZE || memcmp(buf, "FNFC", 4) != 0)
        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "not a fanns faiss codec blob");
    if (get_le(buf + 4, 4) != 1)
        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "codec blob format %u is not supported",
                             (unsigned)get_le(buf + 4, 4));
    payload = buf + FANNS_FAISS_FRAME_SIZE;
    plen = len - FANNS_FAISS_FRAME_SIZE;
    if (get_le(buf + 8, 8) != plen || plen == 0)
        return fanns_err_set(err, FANNS_ECORRUPT, NULL,
                             "codec blob holds %zu payload bytes, header says %llu", plen,
                             (unsigned long long)get_le(buf + 8, 8));
    if (get_le(buf + 16, 8) != fnv1a64(payload, plen))
        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "codec blob fails its hash check");
    /* fmemopen in read mode never writes through its buffer, so dropping const is safe. */
    f = fmemopen((void *)payload, plen, "rb");
    if (!f)
        return fanns_err_errno(err, errno, "fmemopen");
    codec = calloc(1, sizeof(*codec));
    if (!codec) {
        fclose(f);
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    }
    rc = faiss_error(faiss_read_index(f, 0, &codec->index), FANNS_ECORRUPT, err, "read_index");
    fclose(f);
    if (rc)
        goto fail;
    d = faiss_Index_d(codec->index);
    if (d <= 0 || d > MAX_DIM) {
        rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "codec blob has dimension %d", d);
        goto fail;
    }
    codec->dim = (size_t)d;
    if (faiss_Index_is_trained(codec->index)) {
        rc = measure_code_size(codec, err);
        if (rc)
            goto fail;
    }
    *out = codec;
    return 0;
fail:
    fanns_faiss_codec_free(codec);
    return rc;
}

void fanns_faiss_codec_free(fanns_faiss_codec_t *codec) {
    if (!codec)
        return;
    if (codec->index)
        faiss_Index_free(codec->index);
    free(codec);
}
