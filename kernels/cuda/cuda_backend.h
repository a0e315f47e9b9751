/* kernels/cuda/cuda_backend.h — internal to kernels/cuda: the backend's shared state (device, stream,
 * library handles, modes) and the functions each .cu file contributes to the op table. Included
 * by the .cu files only; host/ never sees it. Knows nothing of nets or files. */
#ifndef DG_CUDA_BACKEND_H
#define DG_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"
#include "shapes.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

/* backend_cuda.cu: state, valid once dg_backend_cuda() returned the table */
cudaStream_t dg_cuda_stream(void);   /* every op runs on this one stream, in order */
cudnnHandle_t dg_cuda_cudnn(void);
cublasHandle_t dg_cuda_cublas(void);
int dg_cuda_sm_count(void);
size_t dg_cuda_ws_cap_bytes(void);
int dg_cuda_is_deterministic(void);
int dg_cuda_is_tf32(void);
int dg_cuda_sync_each_launch(void);  /* DNNGUARD_CUDA_SYNC=1 */

#include "check.h"

/* memory.cu */
void *dg_cuda_alloc(size_t bytes);
void dg_cuda_free(void *p);
void dg_cuda_upload(void *dst, const void *src_host, size_t bytes);
void dg_cuda_download(void *dst_host, const void *src, size_t bytes);
void dg_cuda_copy(void *dst, const void *src, size_t bytes);
void dg_cuda_zero(void *dst, size_t bytes);
void dg_cuda_sync(void);
/* Bytes usable at p: up to the end of the backend allocation holding p (0 for NULL or foreign). */
size_t dg_cuda_room(const void *p);
/* A private scratch buffer of at least bytes (grown on demand; for workspaces a caller did not size). */
void *dg_cuda_scratch(size_t bytes);
void dg_cuda_memory_release(void); /* frees the staging buffers and the scratch */

/* conv_cudnn.cu */
size_t dg_cuda_conv_workspace_bytes(const dg_conv_desc *d);
void dg_cuda_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws);
void dg_cuda_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                           void *ws);
void dg_cuda_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws);
void dg_cuda_conv_release(void);

/* linear_cublas.cu */
void dg_cuda_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
void dg_cuda_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                        int accumulate, float *dw, float *db);

/* relevance.cu */
void dg_cuda_lrp_ratio(size_t n, const float *r, const float *z, float eps, float *s);
void dg_cuda_lrp_share(size_t n, float alpha, const float *x, const float *c, float *rin);

/* elementwise.cu */
void dg_cuda_bias_fwd(int n, int c, int hw, const float *b, float *y);
void dg_cuda_bias_bwd(int n, int c, int hw, const float *dy, float *db);
void dg_cuda_relu_fwd(size_t n, const float *x, float *y);
void dg_cuda_relu_bwd(size_t n, const float *y, const float *dy, float *dx, int accumulate);
void dg_cuda_dropout_fwd(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *mask);
void dg_cuda_dropout_bwd(size_t n, const float *mask, const float *dy, float *dx, int accumulate);
void dg_cuda_add(size_t n, const float *a, const float *b, float *y);
void dg_cuda_axpy(size_t n, float alpha, const float *x, float *y);
void dg_cuda_scale(size_t n, float alpha, float *x);
double dg_cuda_sum_squares(size_t n, const float *x);

/* pool.cu */
void dg_cuda_maxpool_fwd(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax);
void dg_cuda_maxpool_bwd(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx, int accumulate);
void dg_cuda_avgpool_fwd(const dg_pool_desc *d, const float *x, float *y);
void dg_cuda_avgpool_bwd(const dg_pool_desc *d, const float *dy, float *dx, int accumulate);
void dg_cuda_lrp_maxpool(const dg_pool_desc *d, const float *x, const float *y, const float *r, float rel_tol,
                         float *rin);

/* batchnorm.cu */
void dg_cuda_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                          float *running_mean, float *running_var, float momentum, float eps, float *y,
                          float *save_mean, float *save_invstd);
void dg_cuda_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps, float *y);
void dg_cuda_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                    const float *save_invstd, const float *dy, float *dx, int accumulate, float *dgamma,
                    float *dbeta);
void dg_cuda_bn_bwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *running_mean,
                         const float *running_var, float eps, const float *dy, float *dx, int accumulate,
                         float *dgamma, float *dbeta);

/* loss.cu */
void dg_cuda_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *probs, float *loss,
                          float *dlogits, float grad_scale, float smoothing);

/* optim.cu */
void dg_cuda_sgd_step(size_t n, float *w, const float *g, float *buf, float lr, float momentum,
                      float weight_decay, int nesterov, int first);
void dg_cuda_adam_step(size_t n, float *w, const float *g, float *m, float *v, double lr, double beta1, double beta2,
                       float eps, double weight_decay, int decoupled, int t);

/* watermark.cu */
void dg_cuda_wm_reg(int n, const float *w, const int32_t *idx, const float *digits, float a, float b, float lambda,
                    float *mapped, float *dw);

/* cw.cu */
void dg_cuda_cw_box_fwd(int n, int c, int hw, const float *delta, const float *x0, const float *mean, const float *std,
                        int quantize, float *u, float *dist);
void dg_cuda_cw_box_bwd(int n, int c, int hw, const float *delta, const float *x0, const float *std, const float *du,
                        float *ddelta);
void dg_cuda_cw_logits(int n, int k, const float *logits, const int32_t *targets, const float *conf, const float *alpha,
                       float conf_weight, int untargeted, float *probs, float *loss, float *dlogits);

/* Stops with one line naming the op when a shape cannot run on this backend (a caller bug). */
[[noreturn]] void dg_cuda_bad_shape(const char *op, const char *why);

#endif
