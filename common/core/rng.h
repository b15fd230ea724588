/* rng.h - the seeded random number generator every stage uses.
 *
 * Algorithm: xoshiro256** (Blackman & Vigna, 2018), state seeded by
 * SplitMix64 from a 64-bit seed. Normal variates: Marsaglia's polar method
 * (no cached spare, so the state alone determines the future). The full
 * state is four uint64 words; saving and restoring them reproduces the
 * stream exactly, which bit-exact resume and image provenance rely on.
 *
 * rng_derive() makes independent streams as a pure function of a seed and
 * up to four 64-bit coordinates (e.g. dataset digest, epoch, batch index),
 * so any position of a stream can be reached without replaying it. */
#ifndef GB_RNG_H
#define GB_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s[4]; } rng_t;

/* Seed from a 64-bit value (any value, including 0, is fine). */
void rng_seed(rng_t *r, uint64_t seed);
/* Seed as a pure function of (seed, a, b, c, d): distinct tuples give
 * unrelated streams. */
void rng_derive(rng_t *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* SplitMix64 finaliser: a good 64-bit mixing function. */
uint64_t rng_mix64(uint64_t x);

uint64_t rng_u64(rng_t *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(rng_t *r, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(rng_t *r);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform_d(rng_t *r);
/* Standard normal variate (mean 0, sd 1). */
float rng_normal(rng_t *r);
/* Fill out[0..n) with standard normal variates. */
void rng_normal_fill(rng_t *r, float *out, size_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle_u64(rng_t *r, uint64_t *idx, uint64_t n);

#endif
