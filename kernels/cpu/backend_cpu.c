/* kernels/cpu/backend_cpu.c — the CPU backend's op table: the reference every other backend is
 * compared with. */
#include "cpu.h"

static const dg_backend cpu_backend = {
    .name = "cpu",
    .alloc = dg_cpu_alloc,
    .free = dg_cpu_free,
    .upload = dg_cpu_upload,
    .download = dg_cpu_download,
    .copy = dg_cpu_copy,
    .zero = dg_cpu_zero,
    .sync = dg_cpu_sync,
    .conv_workspace_bytes = dg_cpu_conv_workspace_bytes,
    .conv_fwd = dg_cpu_conv_fwd,
    .conv_bwd_data = dg_cpu_conv_bwd_data,
    .conv_bwd_filter = dg_cpu_conv_bwd_filter,
    .bias_fwd = dg_cpu_bias_fwd,
    .bias_bwd = dg_cpu_bias_bwd,
    .linear_fwd = dg_cpu_linear_fwd,
    .linear_bwd = dg_cpu_linear_bwd,
    .relu_fwd = dg_cpu_relu_fwd,
    .relu_bwd = dg_cpu_relu_bwd,
    .maxpool_fwd = dg_cpu_maxpool_fwd,
    .maxpool_bwd = dg_cpu_maxpool_bwd,
    .avgpool_fwd = dg_cpu_avgpool_fwd,
    .avgpool_bwd = dg_cpu_avgpool_bwd,
    .bn_fwd_train = dg_cpu_bn_fwd_train,
    .bn_fwd_eval = dg_cpu_bn_fwd_eval,
    .bn_bwd = dg_cpu_bn_bwd,
    .bn_bwd_eval = dg_cpu_bn_bwd_eval,
    .dropout_fwd = dg_cpu_dropout_fwd,
    .dropout_bwd = dg_cpu_dropout_bwd,
    .add = dg_cpu_add,
    .axpy = dg_cpu_axpy,
    .softmax_xent = dg_cpu_softmax_xent,
    .sgd_step = dg_cpu_sgd_step,
    .adam_step = dg_cpu_adam_step,
    .wm_reg = dg_cpu_wm_reg,
};

const dg_backend *dg_backend_cpu(void) { return &cpu_backend; }
