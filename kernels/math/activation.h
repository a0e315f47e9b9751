/* kernels/math/activation.h — per-element ReLU and its gradient, shared by the CPU loops and the
 * CUDA kernels. Formulas only: no loops, no memory, nothing but <math.h>-level arithmetic. */
#ifndef DG_MATH_ACTIVATION_H
#define DG_MATH_ACTIVATION_H

#include "common.h"

/* y = max(x, 0), but NaN passes through (as torch.relu) so a diverging run shows up as NaN
 * instead of being silently clamped: x <= 0 is false for NaN. */
DG_HD float dg_relu(float x) { return x <= 0.0f ? 0.0f : x; }

/* dL/dx given the forward OUTPUT y: 0 where y <= 0, else dy, as PyTorch's threshold_backward
 * (so a NaN output passes its gradient on, as in torch, instead of stopping it). */
DG_HD float dg_relu_grad(float y, float dy) { return y <= 0.0f ? 0.0f : dy; }

#endif
