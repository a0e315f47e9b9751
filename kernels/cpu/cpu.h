/* kernels/cpu/cpu.h — the CPU backend's functions, one group per file; backend_cpu.c puts them in
 * the op table. Plain C loops with OpenMP, GEMMs through OpenBLAS. Knows nothing of nets or files. */
#ifndef DG_CPU_H
#define DG_CPU_H

#include "../backend.h"

/* Below this many elements (or taps) a loop runs on one thread: waking an OpenMP team costs more
 * than it saves, and on busy cores it can cost far more. */
#define DG_CPU_PAR_MIN 32768

/* memory.c */
void *dg_cpu_alloc(size_t bytes);
void dg_cpu_free(void *p);
void dg_cpu_upload(void *dst, const void *src_host, size_t bytes);
void dg_cpu_download(void *dst_host, const void *src, size_t bytes);
void dg_cpu_copy(void *dst, const void *src, size_t bytes);
void dg_cpu_zero(void *dst, size_t bytes);
void dg_cpu_sync(void);

/* conv.c */
size_t dg_cpu_conv_workspace_bytes(const dg_conv_desc *d);
void dg_cpu_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws);
void dg_cpu_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                          void *ws);
void dg_cpu_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws);
void dg_cpu_bias_fwd(int n, int c, int hw, const float *b, float *y);
void dg_cpu_bias_bwd(int n, int c, int hw, const float *dy, float *db);
/* the im2col passes alone (the op table's conv entries above choose between them and oneDNN's) */
void dg_cpu_im2col_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws);
void dg_cpu_im2col_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                                 void *ws);
void dg_cpu_im2col_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws);

/* conv_dnnl.c: the same three passes through oneDNN where it is built in and chosen for d; 0 done,
 * -1 not taken (conv.c then runs im2col). */
int dg_cpu_dnnl_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y);
int dg_cpu_dnnl_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate);
int dg_cpu_dnnl_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw);
/* "oneDNN 2.6.3, convolutions auto" or "no oneDNN, convolutions im2col", for dnnguard --version */
void dg_cpu_dnnl_describe(char *buf, size_t n);

/* linear.c */
void dg_cpu_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
void dg_cpu_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, int accumulate, float *dw, float *db);

/* pool.c */
void dg_cpu_maxpool_fwd(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax);
void dg_cpu_maxpool_bwd(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx, int accumulate);
void dg_cpu_avgpool_fwd(const dg_pool_desc *d, const float *x, float *y);
void dg_cpu_avgpool_bwd(const dg_pool_desc *d, const float *dy, float *dx, int accumulate);
void dg_cpu_lrp_maxpool(const dg_pool_desc *d, const float *x, const float *y, const float *r, float rel_tol,
                        float *rin);

/* elementwise.c */
void dg_cpu_relu_fwd(size_t n, const float *x, float *y);
void dg_cpu_relu_bwd(size_t n, const float *y, const float *dy, float *dx, int accumulate);
void dg_cpu_dropout_fwd(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *mask);
void dg_cpu_dropout_bwd(size_t n, const float *mask, const float *dy, float *dx, int accumulate);
void dg_cpu_add(size_t n, const float *a, const float *b, float *y);
void dg_cpu_axpy(size_t n, float alpha, const float *x, float *y);
void dg_cpu_scale(size_t n, float alpha, float *x);
double dg_cpu_sum_squares(size_t n, const float *x);

/* batchnorm.c */
void dg_cpu_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         float *running_mean, float *running_var, float momentum, float eps,
                         float *y, float *save_mean, float *save_invstd);
void dg_cpu_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, float *y);
void dg_cpu_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                   const float *save_invstd, const float *dy, float *dx, int accumulate, float *dgamma,
                   float *dbeta);
void dg_cpu_bn_bwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *running_mean,
                        const float *running_var, float eps, const float *dy, float *dx, int accumulate,
                        float *dgamma, float *dbeta);

/* loss.c */
void dg_cpu_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *probs,
                         float *loss, float *dlogits, float grad_scale, float smoothing);

/* optim.c */
void dg_cpu_sgd_step(size_t n, float *w, const float *g, float *buf, float lr, float momentum,
                     float weight_decay, int nesterov, int first);
void dg_cpu_adam_step(size_t n, float *w, const float *g, float *m, float *v, double lr, double beta1,
                      double beta2, float eps, double weight_decay, int decoupled, int t);

/* watermark.c */
void dg_cpu_wm_reg(int n, const float *w, const int32_t *idx, const float *digits, float a, float b, float lambda,
                   float *mapped, float *dw);

/* relevance.c */
void dg_cpu_lrp_ratio(size_t n, const float *r, const float *z, float eps, float *s);
void dg_cpu_lrp_share(size_t n, float alpha, const float *x, const float *c, float *rin);

/* cw.c */
void dg_cpu_cw_box_fwd(int n, int c, int hw, const float *delta, const float *x0, const float *mean, const float *std,
                       int quantize, float *u, float *dist);
void dg_cpu_cw_box_bwd(int n, int c, int hw, const float *delta, const float *x0, const float *std, const float *du,
                       float *ddelta);
void dg_cpu_cw_logits(int n, int k, const float *logits, const int32_t *targets, const float *conf, const float *alpha,
                      float conf_weight, int untargeted, float *probs, float *loss, float *dlogits);

#endif
