/* softmax.c - softmax (engine.h): in double, the maximum subtracted first, so any logits
 * (even 1000 apart) give finite probabilities. */
#include <math.h>

#include "engine/engine.h"

void softmax(const float *logits, int n, float *probs)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    for (int i = 0; i < n; i++) probs[i] = (float)(exp((double)logits[i] - mx) / sum);
}
