/* Fused dropout for CPU: y = x * keep(i) / (1 - p), where keep(i) is decided by a counter-based
 * hash of (seed, i). Nothing is stored for the backward pass: it recomputes keep(i) from the
 * same seed. One pass over memory each way, vectorisable (32-bit integer ops only).
 *
 * keep(i) = hash(i, seed) >= threshold, threshold = round(p * 2^32): P(drop) = p to within 2^-33.
 * The hash is two rounds of the "lowbias32" integer finaliser (Wellons), keyed by two 32-bit
 * seed words; the seed is drawn from torch's generator for every call.
 *
 * Built with -fopenmp where the compiler has it (see _native.py): the loops split over the
 * OpenMP threads torch uses (same libgomp), with identical results for any thread count.
 */
#include <stdint.h>
#include <stddef.h>

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x21f0aaadu;
    x ^= x >> 15; x *= 0x735a2d97u;
    x ^= x >> 15;
    return x;
}

static inline uint32_t bits(uint32_t i, uint32_t s0, uint32_t s1) {
    return mix32(mix32(i ^ s0) + s1);
}

/* out[i] = in[i] * scale if kept else 0; works in place (out == in). n < 2^32. */
void dt_dropout_f32(const float *in, float *out, size_t n, uint32_t s0, uint32_t s1,
                    uint32_t threshold, float scale) {
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        float keep = bits((uint32_t)i, s0, s1) >= threshold ? scale : 0.0f;
        out[i] = in[i] * keep;
    }
}

/* the keep mask itself (1 = kept), for tests */
void dt_keep_mask_u8(uint8_t *out, size_t n, uint32_t s0, uint32_t s1, uint32_t threshold) {
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) out[i] = bits((uint32_t)i, s0, s1) >= threshold;
}
