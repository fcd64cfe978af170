/*
 * The CUDA and autograd kernels of the normjit torch ops. Their schemas and
 * fake implementations live in ops.py (one definition shared with the ctypes
 * path); this file registers kernels for them with TORCH_LIBRARY_IMPL.
 *
 * A call checks its tensors (every message names the argument), fills one
 * normjit_norm_args and calls normjit_norm on the current stream of x's
 * device: no Python runs on the hot path. Python is entered only on a miss
 * (the first call on a device gets that device's normjit context from
 * normjit._binding, which also serves normjit.prepare, so both use the same
 * kernels) and on errors (a library failure raises normjit.NormjitError).
 *
 * Gradients come from normjit::norm_backward, whose formula is written once
 * in PyTorch operations in ops.py.
 */
#include <Python.h>

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <array>
#include <atomic>
#include <optional>
#include <string>
#include <tuple>

#include "normjit.h"

namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------
// Error messages

/*
 * Messages are assembled with std::string and std::to_string rather than
 * through c10::str's ostringstream: streaming an integer from a stream made
 * in this extension crashed (SIGSEGV in std::ostream::_M_insert<long>) in a
 * process where torch had loaded its own C++ runtime first. The exception
 * itself is built by c10 (ValueError, TypeError or Error), as TORCH_CHECK does.
 */
void put(std::string &s, const char *v) { s += v; }
void put(std::string &s, const std::string &v) { s += v; }
void put(std::string &s, c10::string_view v) { s.append(v.data(), v.size()); }
void put(std::string &s, int v) { s += std::to_string(v); }
void put(std::string &s, long v) { s += std::to_string(v); }
void put(std::string &s, long long v) { s += std::to_string(v); }
void put(std::string &s, const c10::Device &v) { s += v.str(); }
void put(std::string &s, at::ScalarType v) { s += c10::toString(v); }
void put(std::string &s, at::IntArrayRef v)
{
    s += '[';
    for (size_t i = 0; i < v.size(); ++i) {
        if (i)
            s += ", ";
        s += std::to_string(v[i]);
    }
    s += ']';
}

template <class... Parts> std::string message_of(const Parts &...parts)
{
    std::string s;
    (put(s, parts), ...);
    return s;
}

#define NJ_CHECK(kind, cond, ...)                                                           \
    do {                                                                                    \
        if (C10_UNLIKELY(!(cond)))                                                          \
            throw ::c10::kind(                                                              \
                ::c10::SourceLocation{__func__, __FILE__, static_cast<uint32_t>(__LINE__)},  \
                message_of(__VA_ARGS__));                                                   \
    } while (0)

// ---------------------------------------------------------------------------
// Python: misses and errors only

[[noreturn]] void throw_python_error()
{
    python_error err;
    err.persist();
    throw err;
}

// normjit._binding.<fn>(arg[, message]); returns its int result (None: 0).
int64_t call_binding(const char *fn, int64_t arg, const char *message = nullptr)
{
    pybind11::gil_scoped_acquire gil;
    PyObject *mod = PyImport_ImportModule("normjit._binding");
    PyObject *r = nullptr;
    if (mod)
        r = message ? PyObject_CallMethod(mod, fn, "Ls", (long long)arg, message)
                    : PyObject_CallMethod(mod, fn, "L", (long long)arg);
    Py_XDECREF(mod);
    if (!r)
        throw_python_error();
    int64_t value = r == Py_None ? 0 : PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (PyErr_Occurred())
        throw_python_error();
    return value;
}

// Raise normjit.NormjitError for a failed status, with the library's message.
[[noreturn]] void raise_status(int status)
{
    std::string message = normjit_last_error(); // copied before anything else calls normjit
    call_binding("raise_error", status, message.c_str());
    NJ_CHECK(Error, false, normjit_status_name(status), ": ", message); // raise_error always raises
}

// ---------------------------------------------------------------------------
// Contexts, streams, launches

constexpr int kMaxDevices = 128; // c10::DeviceIndex is an int8_t
std::atomic<normjit_ctx *> g_contexts[kMaxDevices];

normjit_ctx *context_for(c10::DeviceIndex index)
{
    NJ_CHECK(Error, index >= 0 && index < kMaxDevices, "normjit: CUDA device index ", int(index));
    normjit_ctx *ctx = g_contexts[index].load(std::memory_order_acquire);
    if (!ctx) {
        // The binding creates one context per device under its lock, so racing
        // threads store the same pointer.
        ctx = reinterpret_cast<normjit_ctx *>(call_binding("context_handle", index));
        g_contexts[index].store(ctx, std::memory_order_release);
    }
    return ctx;
}

// The current torch stream of `device`: the same cudaStream_t as
// at::cuda::getCurrentCUDAStream(index).stream() (CUDAGuardImpl::getStream returns
// getCurrentCUDAStream(index) and getStreamNativeHandle its .stream()), reached
// through c10's device-generic interface so that no CUDA header is needed here.
void *current_stream(const c10::Device &device)
{
    return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device).native_handle();
}

void launch(int op, const normjit_norm_args &a, const c10::Device &device)
{
    normjit_ctx *ctx = context_for(device.index());
    void *stream = current_stream(device);
    int status = normjit_norm(ctx, op, &a, stream);
    if (status == NORMJIT_ECONTEXT) {
        // This thread has no CUDA context current yet (or another one): torch only
        // makes the primary context current on its first runtime call in a thread.
        call_binding("make_current", device.index());
        status = normjit_norm(ctx, op, &a, stream);
    }
    if (status != NORMJIT_OK)
        raise_status(status);
}

// ---------------------------------------------------------------------------
// Checking tensors and filling normjit_norm_args

int dtype_code(at::ScalarType t)
{
    switch (t) {
    case at::kFloat: return NORMJIT_DTYPE_F32;
    case at::kHalf: return NORMJIT_DTYPE_F16;
    case at::kBFloat16: return NORMJIT_DTYPE_BF16;
    case at::kFloat8_e4m3fn: return NORMJIT_DTYPE_FP8_E4M3;
    case at::kFloat8_e5m2: return NORMJIT_DTYPE_FP8_E5M2;
    case at::kChar: return NORMJIT_DTYPE_INT8;
    default: return NORMJIT_DTYPE_NONE;
    }
}

bool is_float_code(int code)
{
    return code == NORMJIT_DTYPE_F32 || code == NORMJIT_DTYPE_F16 || code == NORMJIT_DTYPE_BF16;
}

/*
 * The stride between consecutive rows when dimensions [0, last) of t are read
 * as one (the rows), 0 when they hold a single row (the library's default), or
 * nothing when they cannot be read so.
 */
std::optional<int64_t> rows_stride(const Tensor &t, int64_t last)
{
    std::optional<int64_t> stride;
    int64_t expect = 0;
    for (int64_t i = last - 1; i >= 0; --i) {
        if (t.size(i) == 1)
            continue;
        if (stride && t.stride(i) != expect)
            return std::nullopt;
        if (!stride)
            stride = t.stride(i);
        expect = t.stride(i) * t.size(i);
    }
    return stride.value_or(0);
}

// One normjit_norm call assembled from tensors. Every check runs before the launch.
class Call {
  public:
    Call(const char *name, int op, const Tensor &x) : name_(name), op_(op), x_(x)
    {
        const int64_t min_dim = op == NORMJIT_OP_QK_RMSNORM ? 2 : 1;
        NJ_CHECK(ValueError, x.dim() >= min_dim, name_, ": x must have at least ", min_dim,
                          " dimension(s), got shape ", x.sizes());
        NJ_CHECK(ValueError, x.is_cuda(), name_, ": x is on ", x.device(),
                          "; normjit runs on CUDA tensors");
        a_.x_dtype = dtype_code(x.scalar_type());
        NJ_CHECK(TypeError, is_float_code(a_.x_dtype), name_, ": x has dtype ", x.scalar_type(),
                         "; normjit takes float32, float16 or bfloat16");
        a_.struct_size = sizeof a_;
        a_.hidden = x.size(-1);
        NJ_CHECK(ValueError, a_.hidden >= 1, name_, ": x's last dimension is empty (shape ",
                          x.sizes(), ")");
        guard_.emplace(x.device());
        if (op == NORMJIT_OP_QK_RMSNORM) {
            a_.heads = x.size(-2);
            a_.rows = a_.heads ? x.numel() / (a_.heads * a_.hidden) : 0;
            if (!tokens_view(x, &a_.x_row_stride, &a_.x_head_stride)) {
                x_ = x.contiguous();
                tokens_view(x_, &a_.x_row_stride, &a_.x_head_stride);
            }
        } else {
            a_.rows = x.numel() / a_.hidden;
            std::optional<int64_t> stride = row_view(x);
            if (!stride || (*stride != 0 && *stride < a_.hidden)) { // overlapping rows: read a copy
                x_ = x.contiguous();
                stride = row_view(x_);
            }
            a_.x_row_stride = *stride;
        }
        a_.x = x_.data_ptr();
    }

    void options(double eps, bool weight_plus_one, int64_t cast)
    {
        a_.eps = static_cast<float>(eps);
        a_.flags |= weight_plus_one ? NORMJIT_NORM_WEIGHT_PLUS_ONE : 0u;
        a_.cast = static_cast<int32_t>(cast);
    }

    void weights(const OptTensor &weight, const OptTensor &bias)
    {
        const Tensor *w = param(weight, "weight"), *b = param(bias, "bias");
        if (w && b) {
            NJ_CHECK(TypeError, b->scalar_type() == w->scalar_type(), name_, ": bias has dtype ",
                             b->scalar_type(), " but weight has ", w->scalar_type(),
                             "; normjit reads both as one dtype: convert one of them");
        }
        if (w || b)
            a_.weight_dtype = dtype_code((w ? w : b)->scalar_type());
        a_.weight = w ? w->data_ptr() : nullptr;
        a_.bias = b ? b->data_ptr() : nullptr;
    }

    void residual(const Tensor &r)
    {
        same_shape(r, "residual");
        a_.residual_dtype = dtype_code(r.scalar_type());
        NJ_CHECK(TypeError, is_float_code(a_.residual_dtype), name_, ": residual has dtype ",
                         r.scalar_type(), "; normjit takes float32, float16 or bfloat16");
        residual_ = r;
        std::optional<int64_t> stride = row_view(r);
        if (!stride) {
            residual_ = r.contiguous();
            stride = row_view(residual_);
        }
        a_.residual = residual_.data_ptr();
        a_.residual_row_stride = *stride;
    }

    void residual_out(const Tensor &r)
    {
        same_shape(r, "residual_out");
        NJ_CHECK(TypeError, r.scalar_type() == residual_.scalar_type(), name_,
                         ": residual_out has dtype ", r.scalar_type(), " but residual has ",
                         residual_.scalar_type());
        a_.residual_out = r.data_ptr();
        a_.residual_out_row_stride = output_rows(r, "residual_out");
    }

    // y (or the quantized codes); call quant() first for a quantized output.
    void out(const Tensor &y)
    {
        same_shape(y, "out");
        a_.y_dtype = dtype_code(y.scalar_type());
        if (a_.quant == NORMJIT_QUANT_NONE) {
            NJ_CHECK(TypeError, is_float_code(a_.y_dtype), name_, ": out has dtype ",
                             y.scalar_type(), "; normjit writes float32, float16 or bfloat16");
        } else {
            NJ_CHECK(TypeError, a_.y_dtype == quant_dtype_, name_, ": out has dtype ",
                             y.scalar_type(), " but quant '", quant_name_, "' writes ",
                             normjit_dtype_name(quant_dtype_));
        }
        a_.y = y.data_ptr();
        if (op_ == NORMJIT_OP_QK_RMSNORM) {
            NJ_CHECK(ValueError, tokens_view(y, &a_.y_row_stride, &a_.y_head_stride), name_,
                              ": out needs a unit stride in its last dimension and its "
                              "leading dimensions at one token stride (strides ",
                              y.strides(), ")");
        } else {
            a_.y_row_stride = output_rows(y, "out");
        }
    }

    void stats(const OptTensor &rstd, const OptTensor &mean)
    {
        a_.rstd = per_row(rstd, "rstd");
        a_.mean = per_row(mean, "mean");
    }

    void quant(c10::string_view name, const OptTensor &scale, const OptTensor &scales,
               double min_scale, bool column_major, bool pow2)
    {
        quant_name_ = std::string(name);
        int32_t dtype = 0, mode = 0, group = 0;
        if (quant_name_ != "none") { // the common case needs no parsing
            int status = normjit_quant_from_name(quant_name_.c_str(), &dtype, &mode, &group);
            if (status != NORMJIT_OK)
                raise_status(status);
        }
        quant_dtype_ = dtype;
        a_.quant = mode;
        a_.group_size = group;
        a_.min_scale = static_cast<float>(min_scale);
        a_.flags |= (column_major ? NORMJIT_NORM_SCALES_COLUMN_MAJOR : 0u) |
                    (pow2 ? NORMJIT_NORM_SCALES_POW2 : 0u);
        if (scale) {
            NJ_CHECK(ValueError, mode == NORMJIT_QUANT_TENSOR || mode == NORMJIT_QUANT_TOKEN, name_,
                              ": scale is only for tensor quantization (and as the amax cap "
                              "of token quantization), not for quant '", quant_name_, "'");
            same_device(*scale, "scale");
            NJ_CHECK(TypeError, scale->scalar_type() == at::kFloat, name_,
                             ": scale must be float32, not ", scale->scalar_type());
            NJ_CHECK(ValueError, scale->numel() == 1, name_, ": scale must hold one value, not ",
                              scale->numel());
            a_.scale = scale->data_ptr<float>();
        } else {
            NJ_CHECK(ValueError, mode != NORMJIT_QUANT_TENSOR, name_, ": quant '", quant_name_,
                              "' needs scale (the fp32 dequantization scale)");
        }
        if (mode != NORMJIT_QUANT_TOKEN && mode != NORMJIT_QUANT_GROUP) {
            NJ_CHECK(ValueError, !scales, name_, ": scales is only written by token and group "
                                              "quantization");
            return;
        }
        NJ_CHECK(ValueError, scales.has_value(), name_, ": quant '", quant_name_, "' needs scales");
        same_device(*scales, "scales");
        NJ_CHECK(TypeError, scales->scalar_type() == at::kFloat, name_,
                         ": scales must be float32, not ", scales->scalar_type());
        if (mode == NORMJIT_QUANT_TOKEN) {
            NJ_CHECK(ValueError, scales->numel() == a_.rows && scales->is_contiguous(), name_,
                              ": scales must be a contiguous tensor of one value per row (",
                              a_.rows, "), got shape ", scales->sizes());
            a_.scales = scales->data_ptr<float>();
            return;
        }
        NJ_CHECK(ValueError, a_.hidden % group == 0, name_, ": hidden (", a_.hidden,
                          ") is not a multiple of the group size ", group);
        std::vector<int64_t> shape(x_.sizes().begin(), x_.sizes().end());
        shape.back() = a_.hidden / group;
        NJ_CHECK(ValueError, scales->sizes() == at::IntArrayRef(shape), name_,
                          ": scales must have shape ", at::IntArrayRef(shape), ", got ",
                          scales->sizes());
        const int64_t groups = shape.back(), last = scales->dim() - 1;
        std::optional<int64_t> rows = rows_stride(*scales, last);
        if (column_major) {
            NJ_CHECK(ValueError, rows && *rows <= 1, name_,
                              ": column-major scales need rows at stride 1 (strides ",
                              scales->strides(), ")");
            a_.scales_stride = groups > 1 ? scales->stride(last) : 0;
        } else {
            NJ_CHECK(ValueError, rows && (groups == 1 || scales->stride(last) == 1), name_,
                              ": row-major scales need a unit stride in their last dimension "
                              "and rows at one stride (strides ",
                              scales->strides(), ")");
            a_.scales_stride = *rows;
        }
        a_.scales = scales->data_ptr<float>();
    }

    void run() { launch(op_, a_, x_.device()); }

  private:
    void same_device(const Tensor &t, const char *what) const
    {
        NJ_CHECK(ValueError, t.device() == x_.device(), name_, ": ", what, " is on ", t.device(),
                          " but x is on ", x_.device());
    }

    void same_shape(const Tensor &t, const char *what) const
    {
        same_device(t, what);
        NJ_CHECK(ValueError, t.sizes() == x_.sizes(), name_, ": ", what, " has shape ", t.sizes(),
                          " but x has ", x_.sizes());
    }

    const Tensor *param(const OptTensor &t, const char *what) const
    {
        if (!t || !t->defined())
            return nullptr;
        same_device(*t, what);
        NJ_CHECK(ValueError, t->dim() == 1 && t->size(0) == a_.hidden, name_, ": ", what,
                          " must have shape [", a_.hidden, "], got ", t->sizes());
        NJ_CHECK(TypeError, is_float_code(dtype_code(t->scalar_type())), name_, ": ", what,
                         " has dtype ", t->scalar_type(),
                         "; normjit takes float32, float16 or bfloat16");
        NJ_CHECK(ValueError, t->stride(0) == 1 || a_.hidden == 1, name_, ": ", what,
                          " must be contiguous");
        return &*t;
    }

    float *per_row(const OptTensor &t, const char *what) const
    {
        if (!t)
            return nullptr;
        same_device(*t, what);
        NJ_CHECK(TypeError, t->scalar_type() == at::kFloat, name_, ": ", what,
                         " must be float32, not ", t->scalar_type());
        NJ_CHECK(ValueError, t->numel() == a_.rows && t->is_contiguous(), name_, ": ", what,
                          " must be a contiguous tensor of one value per row (", a_.rows,
                          "), got shape ", t->sizes());
        return t->data_ptr<float>();
    }

    std::optional<int64_t> row_view(const Tensor &t) const
    {
        if (a_.hidden > 1 && t.stride(-1) != 1)
            return std::nullopt;
        return rows_stride(t, t.dim() - 1);
    }

    int64_t output_rows(const Tensor &t, const char *what) const
    {
        std::optional<int64_t> stride = row_view(t);
        NJ_CHECK(ValueError, stride.has_value(), name_, ": ", what,
                          " needs a unit stride in its last dimension and its leading "
                          "dimensions at one row stride (strides ",
                          t.strides(), ")");
        return *stride;
    }

    // [tokens..., heads, head_dim]: token stride and head stride, or false.
    bool tokens_view(const Tensor &t, int64_t *token_stride, int64_t *head_stride) const
    {
        const int64_t dims = t.dim();
        if (a_.hidden > 1 && t.stride(-1) != 1)
            return false;
        std::optional<int64_t> tokens = rows_stride(t, dims - 2);
        if (!tokens)
            return false;
        *token_stride = *tokens;
        *head_stride = t.size(-2) > 1 ? t.stride(-2) : 0;
        return true;
    }

    const char *name_;
    int op_;
    Tensor x_, residual_;
    normjit_norm_args a_{};
    std::optional<c10::DeviceGuard> guard_;
    std::string quant_name_ = "none";
    int32_t quant_dtype_ = 0;
};

at::ScalarType result_dtype(const Tensor &x, std::optional<at::ScalarType> out_dtype,
                            const char *name)
{
    if (!out_dtype)
        return x.scalar_type();
    NJ_CHECK(TypeError, is_float_code(dtype_code(*out_dtype)), name, ": out_dtype ", *out_dtype,
                     " is not float32, float16 or bfloat16 (quantized outputs take quant=)");
    return *out_dtype;
}

// ---------------------------------------------------------------------------
// CUDA kernels: functional ops (they allocate their results)

Tensor rms_norm_cuda(const Tensor &x, const OptTensor &weight, double eps,
                     std::optional<at::ScalarType> out_dtype, bool weight_plus_one, int64_t cast)
{
    Call c("rms_norm", NORMJIT_OP_RMSNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, std::nullopt);
    Tensor y = at::empty(x.sizes(), x.options().dtype(result_dtype(x, out_dtype, "rms_norm")));
    c.out(y);
    c.run();
    return y;
}

Tensor layer_norm_cuda(const Tensor &x, const OptTensor &weight, const OptTensor &bias,
                       double eps, std::optional<at::ScalarType> out_dtype, bool weight_plus_one,
                       int64_t cast)
{
    Call c("layer_norm", NORMJIT_OP_LAYERNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, bias);
    Tensor y = at::empty(x.sizes(), x.options().dtype(result_dtype(x, out_dtype, "layer_norm")));
    c.out(y);
    c.run();
    return y;
}

std::tuple<Tensor, Tensor> fused_add_cuda(const char *name, int op, const Tensor &x,
                                          const Tensor &residual, const OptTensor &weight,
                                          const OptTensor &bias, double eps,
                                          std::optional<at::ScalarType> out_dtype,
                                          bool weight_plus_one, int64_t cast)
{
    Call c(name, op, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, bias);
    c.residual(residual);
    Tensor y = at::empty(x.sizes(), x.options().dtype(result_dtype(x, out_dtype, name)));
    Tensor sum = at::empty(x.sizes(), residual.options());
    c.out(y);
    c.residual_out(sum);
    c.run();
    return {y, sum};
}

std::tuple<Tensor, Tensor> fused_add_rms_norm_cuda(const Tensor &x, const Tensor &residual,
                                                   const OptTensor &weight, double eps,
                                                   std::optional<at::ScalarType> out_dtype,
                                                   bool weight_plus_one, int64_t cast)
{
    return fused_add_cuda("fused_add_rms_norm", NORMJIT_OP_ADD_RMSNORM, x, residual, weight,
                          std::nullopt, eps, out_dtype, weight_plus_one, cast);
}

std::tuple<Tensor, Tensor> fused_add_layer_norm_cuda(const Tensor &x, const Tensor &residual,
                                                     const OptTensor &weight,
                                                     const OptTensor &bias, double eps,
                                                     std::optional<at::ScalarType> out_dtype,
                                                     bool weight_plus_one, int64_t cast)
{
    return fused_add_cuda("fused_add_layer_norm", NORMJIT_OP_ADD_LAYERNORM, x, residual, weight,
                          bias, eps, out_dtype, weight_plus_one, cast);
}

Tensor qk_rms_norm_cuda(const Tensor &x, const Tensor &weight, double eps, int64_t cast)
{
    Call c("qk_rms_norm", NORMJIT_OP_QK_RMSNORM, x);
    c.options(eps, false, cast);
    c.weights(weight, std::nullopt);
    Tensor y = at::empty(x.sizes(), x.options());
    c.out(y);
    c.run();
    return y;
}

// ---------------------------------------------------------------------------
// CUDA kernels: out ops (they write into the given tensors)

struct QuantArgs {
    c10::string_view quant;
    const OptTensor &scale;
    const OptTensor &scales;
    double min_scale;
    bool column_major;
    bool pow2;
};

void out_call(Call &c, const Tensor &out, const OptTensor &rstd, const OptTensor &mean,
              const QuantArgs &q)
{
    c.quant(q.quant, q.scale, q.scales, q.min_scale, q.column_major, q.pow2);
    c.out(out);
    c.stats(rstd, mean);
    c.run();
}

void rms_norm_out_cuda(const Tensor &x, const OptTensor &weight, double eps, const Tensor &out,
                       const OptTensor &rstd, const OptTensor &scales, const OptTensor &scale,
                       c10::string_view quant, double min_scale, bool column_major_scales,
                       bool pow2_scales, bool weight_plus_one, int64_t cast)
{
    Call c("rms_norm", NORMJIT_OP_RMSNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, std::nullopt);
    out_call(c, out, rstd, std::nullopt,
             {quant, scale, scales, min_scale, column_major_scales, pow2_scales});
}

void layer_norm_out_cuda(const Tensor &x, const OptTensor &weight, const OptTensor &bias,
                         double eps, const Tensor &out, const OptTensor &mean,
                         const OptTensor &rstd, const OptTensor &scales, const OptTensor &scale,
                         c10::string_view quant, double min_scale, bool column_major_scales,
                         bool pow2_scales, bool weight_plus_one, int64_t cast)
{
    Call c("layer_norm", NORMJIT_OP_LAYERNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, bias);
    out_call(c, out, rstd, mean,
             {quant, scale, scales, min_scale, column_major_scales, pow2_scales});
}

void fused_add_rms_norm_out_cuda(const Tensor &x, const Tensor &residual, const OptTensor &weight,
                                 double eps, const Tensor &out, const Tensor &residual_out,
                                 const OptTensor &rstd, const OptTensor &scales,
                                 const OptTensor &scale, c10::string_view quant,
                                 double min_scale, bool column_major_scales, bool pow2_scales,
                                 bool weight_plus_one, int64_t cast)
{
    Call c("fused_add_rms_norm", NORMJIT_OP_ADD_RMSNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, std::nullopt);
    c.residual(residual);
    c.residual_out(residual_out);
    out_call(c, out, rstd, std::nullopt,
             {quant, scale, scales, min_scale, column_major_scales, pow2_scales});
}

void fused_add_layer_norm_out_cuda(const Tensor &x, const Tensor &residual,
                                   const OptTensor &weight, const OptTensor &bias, double eps,
                                   const Tensor &out, const Tensor &residual_out,
                                   const OptTensor &mean, const OptTensor &rstd,
                                   const OptTensor &scales, const OptTensor &scale,
                                   c10::string_view quant, double min_scale,
                                   bool column_major_scales, bool pow2_scales,
                                   bool weight_plus_one, int64_t cast)
{
    Call c("fused_add_layer_norm", NORMJIT_OP_ADD_LAYERNORM, x);
    c.options(eps, weight_plus_one, cast);
    c.weights(weight, bias);
    c.residual(residual);
    c.residual_out(residual_out);
    out_call(c, out, rstd, mean,
             {quant, scale, scales, min_scale, column_major_scales, pow2_scales});
}

void qk_rms_norm_out_cuda(const Tensor &x, const Tensor &weight, double eps, const Tensor &out,
                          int64_t cast)
{
    Call c("qk_rms_norm", NORMJIT_OP_QK_RMSNORM, x);
    c.options(eps, false, cast);
    c.weights(weight, std::nullopt);
    c.out(out);
    c.run();
}

// ---------------------------------------------------------------------------
// Handles for calling the ops through the dispatcher

// The dispatcher handle of the op whose CUDA kernel is Fn (one handle per kernel).
template <auto *Fn> const auto &op_handle(const char *name)
{
    using Sig = std::remove_pointer_t<decltype(Fn)>;
    static const c10::TypedOperatorHandle<Sig> handle =
        c10::Dispatcher::singleton().findSchemaOrThrow(name, "").template typed<Sig>();
    return handle;
}

#define NJ_HANDLE(fn, name) op_handle<&fn>(name)

using Grads = std::tuple<Tensor, Tensor, Tensor>;

const c10::TypedOperatorHandle<Grads(const OptTensor &, const Tensor &, const OptTensor &,
                                     const OptTensor &, double, bool, bool, int64_t,
                                     const OptTensor &, std::array<bool, 3>)> &
norm_backward_handle()
{
    static const auto handle =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("normjit::norm_backward", "")
            .typed<Grads(const OptTensor &, const Tensor &, const OptTensor &, const OptTensor &,
                         double, bool, bool, int64_t, const OptTensor &, std::array<bool, 3>)>();
    return handle;
}

// ---------------------------------------------------------------------------
// Autograd

bool records_grad(const Tensor &x, const OptTensor &a = std::nullopt,
                  const OptTensor &b = std::nullopt, const OptTensor &c = std::nullopt)
{
    if (!c10::GradMode::is_enabled())
        return false;
    auto requires = [](const OptTensor &t) { return t && t->defined() && t->requires_grad(); };
    return x.requires_grad() || requires(a) || requires(b) || requires(c);
}

enum Kind : int64_t { kRms, kLayer, kAddRms, kAddLayer, kQk };

// The functional ops under autograd: the forward runs the op; the backward is
// normjit::norm_backward on the normalized input (the sum, for the fused ops).
struct NormFunction : public torch::autograd::Function<NormFunction> {
    static variable_list forward(AutogradContext *ctx, int64_t kind, const Tensor &x,
                                 const OptTensor &residual, const OptTensor &weight,
                                 const OptTensor &bias, double eps,
                                 std::optional<at::ScalarType> out_dtype, bool weight_plus_one,
                                 int64_t cast)
    {
        variable_list out;
        switch (kind) {
        case kRms:
            out = {NJ_HANDLE(rms_norm_cuda, "normjit::rms_norm")
                       .call(x, weight, eps, out_dtype, weight_plus_one, cast)};
            break;
        case kLayer:
            out = {NJ_HANDLE(layer_norm_cuda, "normjit::layer_norm")
                       .call(x, weight, bias, eps, out_dtype, weight_plus_one, cast)};
            break;
        case kAddRms: {
            auto r = NJ_HANDLE(fused_add_rms_norm_cuda, "normjit::fused_add_rms_norm")
                         .call(x, *residual, weight, eps, out_dtype, weight_plus_one, cast);
            out = {std::get<0>(r), std::get<1>(r)};
            break;
        }
        case kAddLayer: {
            auto r = NJ_HANDLE(fused_add_layer_norm_cuda, "normjit::fused_add_layer_norm")
                         .call(x, *residual, weight, bias, eps, out_dtype, weight_plus_one, cast);
            out = {std::get<0>(r), std::get<1>(r)};
            break;
        }
        default:
            out = {NJ_HANDLE(qk_rms_norm_cuda, "normjit::qk_rms_norm")
                       .call(x, *weight, eps, cast)};
        }
        const bool fused = kind == kAddRms || kind == kAddLayer;
        ctx->save_for_backward({fused ? out[1] : x, weight.value_or(Tensor()),
                                bias.value_or(Tensor())});
        ctx->saved_data["kind"] = kind;
        ctx->saved_data["eps"] = eps;
        ctx->saved_data["weight_plus_one"] = weight_plus_one;
        ctx->saved_data["cast"] = cast;
        ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
        ctx->saved_data["input_grad"] = x.requires_grad() || (residual && residual->requires_grad());
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads)
    {
        const int64_t kind = ctx->saved_data["kind"].toInt();
        const bool fused = kind == kAddRms || kind == kAddLayer;
        auto saved = ctx->get_saved_variables();
        const Tensor &input = saved[0];
        OptTensor weight, bias, grad_y, grad_sum;
        if (saved[1].defined())
            weight = saved[1];
        if (saved[2].defined())
            bias = saved[2];
        if (grads[0].defined())
            grad_y = grads[0];
        if (fused && grads.size() > 1 && grads[1].defined())
            grad_sum = grads[1];
        std::array<bool, 3> mask = {ctx->saved_data["input_grad"].toBool(),
                                    weight && weight->requires_grad(),
                                    bias && bias->requires_grad()};
        auto [d_input, d_weight, d_bias] =
            norm_backward_handle().call(grad_y, input, weight, bias, ctx->saved_data["eps"].toDouble(),
                      kind == kLayer || kind == kAddLayer,
                      ctx->saved_data["weight_plus_one"].toBool(),
                      ctx->saved_data["cast"].toInt(), grad_sum, mask);
        Tensor none;
        Tensor dx = mask[0] ? d_input : none, dw = mask[1] ? d_weight : none,
               db = mask[2] ? d_bias : none;
        auto x_dtype = static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt());
        Tensor d_residual = fused ? dx : none;
        if (fused && dx.defined() && dx.scalar_type() != x_dtype)
            dx = dx.to(x_dtype);
        return {none, dx, d_residual, dw, db, none, none, none, none};
    }
};

Tensor rms_norm_autograd(const Tensor &x, const OptTensor &weight, double eps,
                         std::optional<at::ScalarType> out_dtype, bool weight_plus_one,
                         int64_t cast)
{
    if (!records_grad(x, weight)) {
        at::AutoDispatchBelowADInplaceOrView below;
        return NJ_HANDLE(rms_norm_cuda, "normjit::rms_norm")
            .call(x, weight, eps, out_dtype, weight_plus_one, cast);
    }
    return NormFunction::apply(int64_t(kRms), x, OptTensor(), weight, OptTensor(), eps,
                               out_dtype, weight_plus_one, cast)[0];
}

Tensor layer_norm_autograd(const Tensor &x, const OptTensor &weight, const OptTensor &bias,
                           double eps, std::optional<at::ScalarType> out_dtype,
                           bool weight_plus_one, int64_t cast)
{
    if (!records_grad(x, weight, bias)) {
        at::AutoDispatchBelowADInplaceOrView below;
        return NJ_HANDLE(layer_norm_cuda, "normjit::layer_norm")
            .call(x, weight, bias, eps, out_dtype, weight_plus_one, cast);
    }
    return NormFunction::apply(int64_t(kLayer), x, OptTensor(), weight, bias, eps, out_dtype,
                               weight_plus_one, cast)[0];
}

std::tuple<Tensor, Tensor> fused_add_rms_norm_autograd(const Tensor &x, const Tensor &residual,
                                                       const OptTensor &weight, double eps,
                                                       std::optional<at::ScalarType> out_dtype,
                                                       bool weight_plus_one, int64_t cast)
{
    if (!records_grad(x, residual, weight)) {
        at::AutoDispatchBelowADInplaceOrView below;
        return NJ_HANDLE(fused_add_rms_norm_cuda, "normjit::fused_add_rms_norm")
            .call(x, residual, weight, eps, out_dtype, weight_plus_one, cast);
    }
    auto r = NormFunction::apply(int64_t(kAddRms), x, OptTensor(residual), weight, OptTensor(),
                                 eps, out_dtype, weight_plus_one, cast);
    return {r[0], r[1]};
}

std::tuple<Tensor, Tensor> fused_add_layer_norm_autograd(const Tensor &x, const Tensor &residual,
                                                         const OptTensor &weight,
                                                         const OptTensor &bias, double eps,
                                                         std::optional<at::ScalarType> out_dtype,
                                                         bool weight_plus_one, int64_t cast)
{
    if (!records_grad(x, residual, weight, bias)) {
        at::AutoDispatchBelowADInplaceOrView below;
        return NJ_HANDLE(fused_add_layer_norm_cuda, "normjit::fused_add_layer_norm")
            .call(x, residual, weight, bias, eps, out_dtype, weight_plus_one, cast);
    }
    auto r = NormFunction::apply(int64_t(kAddLayer), x, OptTensor(residual), weight, bias, eps,
                                 out_dtype, weight_plus_one, cast);
    return {r[0], r[1]};
}

Tensor qk_rms_norm_autograd(const Tensor &x, const Tensor &weight, double eps, int64_t cast)
{
    if (!records_grad(x, weight)) {
        at::AutoDispatchBelowADInplaceOrView below;
        return NJ_HANDLE(qk_rms_norm_cuda, "normjit::qk_rms_norm").call(x, weight, eps, cast);
    }
    return NormFunction::apply(int64_t(kQk), x, OptTensor(), OptTensor(weight), OptTensor(), eps,
                               std::optional<at::ScalarType>(), false, cast)[0];
}

/*
 * The out ops write into given tensors, which autograd cannot differentiate:
 * refuse when it would record the call (quantized codes are never
 * differentiable, so those calls just run), and bump the written tensors'
 * versions as every in-place op does.
 */
void refuse_grad(const char *name, c10::string_view quant, bool grad,
                 std::initializer_list<const OptTensor *> written)
{
    NJ_CHECK(Error, !grad || quant != "none", name,
                ": results written into given tensors (out=, return_rstd/return_stats, an "
                "in-place residual or QK-norm) are not differentiable, and an input requires "
                "grad; call it without them, or under torch.no_grad()");
    for (const OptTensor *t : written)
        NJ_CHECK(Error, !(*t && (*t)->requires_grad() && c10::GradMode::is_enabled()), name,
                    ": an output tensor requires grad and cannot be written in place");
}

void bump(std::initializer_list<const OptTensor *> written)
{
    for (const OptTensor *t : written)
        if (*t)
            torch::autograd::impl::bump_version(**t);
}

void rms_norm_out_autograd(const Tensor &x, const OptTensor &weight, double eps,
                           const Tensor &out, const OptTensor &rstd, const OptTensor &scales,
                           const OptTensor &scale, c10::string_view quant, double min_scale,
                           bool column_major_scales, bool pow2_scales, bool weight_plus_one,
                           int64_t cast)
{
    OptTensor o(out);
    refuse_grad("rms_norm", quant, records_grad(x, weight), {&o, &rstd, &scales});
    {
        at::AutoDispatchBelowADInplaceOrView below;
        NJ_HANDLE(rms_norm_out_cuda, "normjit::rms_norm_out")
            .call(x, weight, eps, out, rstd, scales, scale, quant, min_scale,
                  column_major_scales, pow2_scales, weight_plus_one, cast);
    }
    bump({&o, &rstd, &scales});
}

void layer_norm_out_autograd(const Tensor &x, const OptTensor &weight, const OptTensor &bias,
                             double eps, const Tensor &out, const OptTensor &mean,
                             const OptTensor &rstd, const OptTensor &scales,
                             const OptTensor &scale, c10::string_view quant, double min_scale,
                             bool column_major_scales, bool pow2_scales, bool weight_plus_one,
                             int64_t cast)
{
    OptTensor o(out);
    refuse_grad("layer_norm", quant, records_grad(x, weight, bias), {&o, &mean, &rstd, &scales});
    {
        at::AutoDispatchBelowADInplaceOrView below;
        NJ_HANDLE(layer_norm_out_cuda, "normjit::layer_norm_out")
            .call(x, weight, bias, eps, out, mean, rstd, scales, scale, quant, min_scale,
                  column_major_scales, pow2_scales, weight_plus_one, cast);
    }
    bump({&o, &mean, &rstd, &scales});
}

void fused_add_rms_norm_out_autograd(const Tensor &x, const Tensor &residual,
                                     const OptTensor &weight, double eps, const Tensor &out,
                                     const Tensor &residual_out, const OptTensor &rstd,
                                     const OptTensor &scales, const OptTensor &scale,
                                     c10::string_view quant, double min_scale,
                                     bool column_major_scales, bool pow2_scales,
                                     bool weight_plus_one, int64_t cast)
{
    OptTensor o(out), r(residual_out);
    refuse_grad("fused_add_rms_norm", quant, records_grad(x, residual, weight),
                {&o, &r, &rstd, &scales});
    {
        at::AutoDispatchBelowADInplaceOrView below;
        NJ_HANDLE(fused_add_rms_norm_out_cuda, "normjit::fused_add_rms_norm_out")
            .call(x, residual, weight, eps, out, residual_out, rstd, scales, scale, quant,
                  min_scale, column_major_scales, pow2_scales, weight_plus_one, cast);
    }
    bump({&o, &r, &rstd, &scales});
}

void fused_add_layer_norm_out_autograd(const Tensor &x, const Tensor &residual,
                                       const OptTensor &weight, const OptTensor &bias,
                                       double eps, const Tensor &out, const Tensor &residual_out,
                                       const OptTensor &mean, const OptTensor &rstd,
                                       const OptTensor &scales, const OptTensor &scale,
                                       c10::string_view quant, double min_scale,
                                       bool column_major_scales, bool pow2_scales,
                                       bool weight_plus_one, int64_t cast)
{
    OptTensor o(out), r(residual_out);
    refuse_grad("fused_add_layer_norm", quant, records_grad(x, residual, weight, bias),
                {&o, &r, &mean, &rstd, &scales});
    {
        at::AutoDispatchBelowADInplaceOrView below;
        NJ_HANDLE(fused_add_layer_norm_out_cuda, "normjit::fused_add_layer_norm_out")
            .call(x, residual, weight, bias, eps, out, residual_out, mean, rstd, scales, scale,
                  quant, min_scale, column_major_scales, pow2_scales, weight_plus_one, cast);
    }
    bump({&o, &r, &mean, &rstd, &scales});
}

void qk_rms_norm_out_autograd(const Tensor &x, const Tensor &weight, double eps,
                              const Tensor &out, int64_t cast)
{
    OptTensor o(out);
    refuse_grad("qk_rms_norm", "none", records_grad(x, weight), {&o});
    {
        at::AutoDispatchBelowADInplaceOrView below;
        NJ_HANDLE(qk_rms_norm_out_cuda, "normjit::qk_rms_norm_out").call(x, weight, eps, out, cast);
    }
    bump({&o});
}

} // namespace

TORCH_LIBRARY_IMPL(normjit, CUDA, m)
{
    m.impl("rms_norm", &rms_norm_cuda);
    m.impl("layer_norm", &layer_norm_cuda);
    m.impl("fused_add_rms_norm", &fused_add_rms_norm_cuda);
    m.impl("fused_add_layer_norm", &fused_add_layer_norm_cuda);
    m.impl("qk_rms_norm", &qk_rms_norm_cuda);
    m.impl("rms_norm_out", &rms_norm_out_cuda);
    m.impl("layer_norm_out", &layer_norm_out_cuda);
    m.impl("fused_add_rms_norm_out", &fused_add_rms_norm_out_cuda);
    m.impl("fused_add_layer_norm_out", &fused_add_layer_norm_out_cuda);
    m.impl("qk_rms_norm_out", &qk_rms_norm_out_cuda);
}

TORCH_LIBRARY_IMPL(normjit, Autograd, m)
{
    m.impl("rms_norm", &rms_norm_autograd);
    m.impl("layer_norm", &layer_norm_autograd);
    m.impl("fused_add_rms_norm", &fused_add_rms_norm_autograd);
    m.impl("fused_add_layer_norm", &fused_add_layer_norm_autograd);
    m.impl("qk_rms_norm", &qk_rms_norm_autograd);
    m.impl("rms_norm_out", &rms_norm_out_autograd);
    m.impl("layer_norm_out", &layer_norm_out_autograd);
    m.impl("fused_add_rms_norm_out", &fused_add_rms_norm_out_autograd);
    m.impl("fused_add_layer_norm_out", &fused_add_layer_norm_out_autograd);
    m.impl("qk_rms_norm_out", &qk_rms_norm_out_autograd);
}
