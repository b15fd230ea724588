/* nn_ce.c - softmax cross-entropy and arg-max for classifiers (see
 * nn_extra.h). Double accumulation per row: K is small (tens of classes),
 * so precision costs nothing here. */
#include "base.h"
#include "nn_extra.h"

#include <math.h>

float softmax_ce(int N, int K, const float *logits, const int32_t *labels, float *dlogits, int *correct) {
    ASSERT(N >= 1 && K >= 1);
    double loss = 0;
    int ok = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * K;
        int32_t y = labels[n];
        ASSERT(y >= 0 && y < K);
        float mx = l[0];
        int am = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > mx) { mx = l[k]; am = k; }
        ok += am == y;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((double)l[k] - mx);
        double lse = mx + log(s);
        loss += lse - l[y];
        if (dlogits) {
            float *d = dlogits + (size_t)n * K;
            for (int k = 0; k < K; k++) d[k] = (float)(exp((double)l[k] - lse) / N);
            d[y] -= 1.0f / (float)N;
        }
    }
    if (correct) *correct = ok;
    return (float)(loss / N);
}

void argmax_rows(int N, int K, const float *x, int32_t *out) {
    for (int n = 0; n < N; n++) {
        const float *l = x + (size_t)n * K;
        int am = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > l[am]) am = k;
        out[n] = am;
    }
}
