/*
 * optim_math.h — AdamW's update of one parameter (DESIGN.md, "The
 * transformer": torch.optim.AdamW's order), shared by the CPU backend, the
 * CUDA backend and the --check reference.  SGD's is mlp_math.h's pp_sgd.
 */
#ifndef PP_OPTIM_MATH_H
#define PP_OPTIM_MATH_H

#include "mlp_math.h" /* PP_HD */

/* AdamW's settings for one update; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
 * for the update's count t (from 1), decay 0 where weight decay does not
 * apply (biases, LayerNorm). */
typedef struct pp_adamw_step {
    float lr, beta1, beta2, eps, decay, bc1, bc2;
} pp_adamw_step;

/* p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
 * p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), the form of
 * torch.optim.AdamW's single-tensor step. */
static inline PP_HD void pp_adamw(float *p, float g, float *m, float *v, const pp_adamw_step *a)
{
    float q = *p * (1.0f - a->lr * a->decay);
    float mi = a->beta1 * *m + (1.0f - a->beta1) * g;
    float vi = a->beta2 * *v + (1.0f - a->beta2) * g * g;
    *m = mi;
    *v = vi;
    *p = q - (a->lr / a->bc1) * mi / (sqrtf(vi) / sqrtf(a->bc2) + a->eps);
}

#endif
