/*
 * faiss_codec.h: vector codecs (product quantization and friends) backed by FAISS.
 *
 * This is the one place fanns calls FAISS.  A codec is a FAISS index built from a factory
 * string ("PQ48x8", "OPQ16,PQ16x8", "SQ8") used only through its standalone codec interface:
 * train it on sample vectors, then encode vectors to fixed-size byte codes and decode codes
 * back to approximate vectors.  fanns keeps the codes itself (in its own index and in LMDB),
 * so the FAISS index never holds any vectors.
 *
 * Threads: a trained codec may be used for encode/decode from several threads at once
 * (FAISS's sa_encode/sa_decode are const); train, deserialize and free need exclusive use.
 * FAISS parallelises large encode/decode batches with OpenMP.
 *
 * Errors: every fallible call returns 0 or a negative FANNS_E* code (index/err.h) and fills
 * err (when not NULL) with FAISS's message.  A FAISS exception never crosses this interface.
 */
#ifndef FANNS_FAISS_CODEC_H
#define FANNS_FAISS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct fanns_faiss_codec fanns_faiss_codec_t;

/* Size of the frame header that fanns_faiss_codec_serialize puts before FAISS's bytes. */
#define FANNS_FAISS_FRAME_SIZE 24

/* Creates an untrained codec.
 *   factory  FAISS index_factory description, e.g. "PQ48x8" (48 sub-quantizers of 8 bits,
 *            48-byte codes) or "OPQ16,PQ16x8" (learned rotation, then PQ); borrowed.  A
 *            final bare "PQ<M>[x<bits>]" gets FAISS's "np" suffix: polysemous training only
 *            helps Hamming-distance search, which fanns never does, and costs minutes.
 *   dim      vector dimension, 1 .. 65536.
 *   metric   a fanns_metric_t (index/distance.h).  Cosine and Dot select FAISS's inner product
 *            metric, Euclid and Manhattan its L2 metric; quantizers are trained to minimise L2
 *            reconstruction error either way, so this only matters for factories that search.
 *   out      set to the new codec on success; caller frees with fanns_faiss_codec_free.
 * @return 0; FANNS_EVALIDATE (bad dim or metric); FANNS_EINVAL (FAISS rejected the factory
 *         string); FANNS_ENOMEM. */
int fanns_faiss_codec_new(const char *factory, size_t dim, int metric,
                          fanns_faiss_codec_t **out, fanns_err_t *err);

/* Trains the codec on n vectors x (n * dim floats, borrowed for the call).  PQ with 8 bits
 * needs at least 256 vectors (FAISS recommends 39 * 256).  Training again retrains.
 * @return 0; FANNS_EINVAL (too few vectors or FAISS refused the data); FANNS_ENOMEM. */
int fanns_faiss_codec_train(fanns_faiss_codec_t *codec, size_t n, const float *x,
                            fanns_err_t *err);

/* True once the codec is trained (or was deserialized from a trained codec). */
int fanns_faiss_codec_is_trained(const fanns_faiss_codec_t *codec);

/* The codec's vector dimension. */
size_t fanns_faiss_codec_dim(const fanns_faiss_codec_t *codec);

/* Bytes per encoded vector; 0 while the codec is untrained.  Measured once after training
 * (FAISS 1.7.3's C API faiss_Index_sa_code_size never writes its result). */
size_t fanns_faiss_codec_code_size(const fanns_faiss_codec_t *codec);

/* Encodes n vectors x (n * dim floats) into codes (n * code_size bytes, caller's buffer).
 * @return 0; FANNS_EINVAL (codec untrained); FANNS_ENOMEM. */
int fanns_faiss_codec_encode(const fanns_faiss_codec_t *codec, size_t n, const float *x,
                             uint8_t *codes, fanns_err_t *err);

/* Decodes n codes (n * code_size bytes) into x (n * dim floats, caller's buffer).
 * @return 0; FANNS_EINVAL (codec untrained); FANNS_ENOMEM. */
int fanns_faiss_codec_decode(const fanns_faiss_codec_t *codec, size_t n, const uint8_t *codes,
                             float *x, fanns_err_t *err);

/* Serializes the codec into a new buffer: a 24-byte frame header, then FAISS's own index file
 * format.  The header is, little-endian: the magic "FNFC", u32 format version (1), u64 payload
 * length, u64 FNV-1a-64 hash of the payload.  It lets deserialize reject truncated or damaged
 * bytes before FAISS sees them (FAISS 1.7.3 leaks the half-read index when it throws).
 *   buf  set to a malloc'd buffer the caller frees with free(); len set to its size.
 * @return 0; FANNS_EIO (stream error); FANNS_ENOMEM. */
int fanns_faiss_codec_serialize(const fanns_faiss_codec_t *codec, uint8_t **buf, size_t *len,
                                fanns_err_t *err);

/* Recreates a codec from len bytes written by fanns_faiss_codec_serialize (buf borrowed for
 * the call).  out is set on success; caller frees with fanns_faiss_codec_free.
 * @return 0; FANNS_ECORRUPT (bad frame, length or hash, or FAISS could not read the payload);
 *         FANNS_ENOMEM; FANNS_EIO. */
int fanns_faiss_codec_deserialize(const uint8_t *buf, size_t len, fanns_faiss_codec_t **out,
                                  fanns_err_t *err);

/* Frees the codec; NULL is allowed. */
void fanns_faiss_codec_free(fanns_faiss_codec_t *codec);

#endif
