/* nn_extra.h - layers beyond nn.h that the evaluator's feature classifier
 * needs: softmax cross-entropy over class logits. Kept apart from nn.h so
 * the core layer files can be optimised independently; same conventions
 * (caller-owned buffers, nothing allocated, dlogits overwritten). */
#ifndef GB_NN_EXTRA_H
#define GB_NN_EXTRA_H

#include <stddef.h>
#include <stdint.h>

/* Mean softmax cross-entropy of N rows of K logits (N x K) against labels
 * (N ints in [0, K); a label outside that range is a caller bug, ASSERT).
 * Computed with the max-subtraction (log-sum-exp) trick so large logits
 * do not overflow. dlogits (N x K, may be NULL or logits itself) [=] gets
 * d(mean loss)/d(logits) = (softmax - onehot) / N. correct (may be NULL)
 * gets the number of rows whose arg-max equals the label. Returns the
 * mean loss in nats. */
float softmax_ce(int N, int K, const float *logits, const int32_t *labels, float *dlogits, int *correct);

/* Row-wise arg-max of N rows of K values into out (N); ties go to the
 * lowest index. */
void argmax_rows(int N, int K, const float *x, int32_t *out);

#endif
