// Fused optimizer steps over every parameter of a group: SGD (momentum, Nesterov) and
// Adam/AdamW (AMSGrad).
//
// NumPy spends about ten full passes and as many temporaries per parameter on Adam's rule;
// here each element is read and written once. Parameters are cut into chunks of kChunk
// elements and the chunks of all parameters are shared out among the threads, so one large
// weight and many small biases balance alike. The arithmetic is the reference's
// (backend/reference_optim.py) in the parameter's dtype, operation for operation, with the scalar
// factors rounded to that dtype as NumPy rounds a Python float.
//
// A parameter the kernel cannot take (a dtype other than float32/float64, mixed dtypes, or
// an array that is not C-contiguous and writeable) is skipped and its index returned, and
// the Python wrapper updates it with the NumPy reference.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace {

constexpr int64_t kChunk = 1 << 14;

struct SgdOptions {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize, first_step;
};

struct AdamOptions {
    double step_size, bias_correction2_sqrt, lr, beta1, beta2, eps, weight_decay;
    bool decoupled_weight_decay, amsgrad, maximize;
};

// The options that change the loop's shape are template arguments, so that every variant
// is a straight-line loop that vectorises (a branch or a conditional store would stop it).
template <typename T, bool kMaximize, bool kDecay, bool kMomentum, bool kFirstStep,
          bool kNesterov>
TG_INLINE void sgd_loop(T* param, const T* grad, T* buffer, int64_t n, const SgdOptions& o) {
    // options copied to locals: stores through param (a double*) could alias o's doubles
    const T lr = T(o.lr), momentum = T(o.momentum), weight_decay = T(o.weight_decay);
    const T undamped = T(1 - o.dampening);
    for (int64_t i = 0; i < n; ++i) {
        T g = grad[i];
        if constexpr (kMaximize) g = -g;
        if constexpr (kDecay) g = g + weight_decay * param[i];
        if constexpr (kMomentum) {
            T b = g;  // the first step stores the undamped gradient
            if constexpr (!kFirstStep) b = buffer[i] * momentum + undamped * g;
            buffer[i] = b;
            if constexpr (kNesterov) g = g + momentum * b;
            else g = b;
        }
        param[i] = param[i] - lr * g;
    }
}

template <typename T, bool kMaximize, bool kDecay>
TG_INLINE void sgd_loop(T* param, const T* grad, T* buffer, int64_t n, const SgdOptions& o) {
    if (!buffer)
        sgd_loop<T, kMaximize, kDecay, false, false, false>(param, grad, nullptr, n, o);
    else if (o.first_step && o.nesterov)
        sgd_loop<T, kMaximize, kDecay, true, true, true>(param, grad, buffer, n, o);
    else if (o.first_step)
        sgd_loop<T, kMaximize, kDecay, true, true, false>(param, grad, buffer, n, o);
    else if (o.nesterov)
        sgd_loop<T, kMaximize, kDecay, true, false, true>(param, grad, buffer, n, o);
    else
        sgd_loop<T, kMaximize, kDecay, true, false, false>(param, grad, buffer, n, o);
}

template <typename T, bool kMaximize>
TG_INLINE void sgd_loop(T* param, const T* grad, T* buffer, int64_t n, const SgdOptions& o) {
    if (o.weight_decay != 0)
        sgd_loop<T, kMaximize, true>(param, grad, buffer, n, o);
    else
        sgd_loop<T, kMaximize, false>(param, grad, buffer, n, o);
}

template <typename T>
TG_TARGET_ISA void sgd_chunk(T* param, const T* grad, T* buffer, int64_t n,
                               const SgdOptions& o) {
    if (o.maximize)
        sgd_loop<T, true>(param, grad, buffer, n, o);
    else
        sgd_loop<T, false>(param, grad, buffer, n, o);
}

enum class Decay { kNone, kCoupled, kDecoupled };

template <typename T, bool kMaximize, Decay kDecay, bool kAmsgrad>
TG_INLINE void adam_loop(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                         int64_t n, const AdamOptions& o) {
    // options copied to locals: stores through param (a double*) could alias o's doubles
    const T weight_decay = T(o.weight_decay), shrink = T(1 - o.lr * o.weight_decay);
    const T one_minus_beta1 = T(1 - o.beta1), beta2 = T(o.beta2), one_minus_beta2 = T(1 - o.beta2);
    const T step_size = T(o.step_size), correction = T(o.bias_correction2_sqrt), eps = T(o.eps);
    for (int64_t i = 0; i < n; ++i) {
        T g = grad[i];
        if constexpr (kMaximize) g = -g;
        T p = param[i];
        if constexpr (kDecay == Decay::kCoupled) g = g + weight_decay * p;
        if constexpr (kDecay == Decay::kDecoupled) p = p * shrink;
        const T m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i]);
        const T v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        T second = v;
        if constexpr (kAmsgrad) {
            const T previous = max_exp_avg_sq[i];  // np.maximum: a NaN on either side wins
            second = (std::isnan(previous) || previous >= v) ? previous : v;
            max_exp_avg_sq[i] = second;
        }
        param[i] = p - step_size * m / (std::sqrt(second) / correction + eps);
    }
}

template <typename T, bool kMaximize, Decay kDecay>
TG_INLINE void adam_loop(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                         int64_t n, const AdamOptions& o) {
    if (max_exp_avg_sq)
        adam_loop<T, kMaximize, kDecay, true>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                                              n, o);
    else
        adam_loop<T, kMaximize, kDecay, false>(param, grad, exp_avg, exp_avg_sq, nullptr, n, o);
}

template <typename T, bool kMaximize>
TG_INLINE void adam_loop(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                         int64_t n, const AdamOptions& o) {
    if (o.weight_decay == 0)
        adam_loop<T, kMaximize, Decay::kNone>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                                              n, o);
    else if (o.decoupled_weight_decay)
        adam_loop<T, kMaximize, Decay::kDecoupled>(param, grad, exp_avg, exp_avg_sq,
                                                   max_exp_avg_sq, n, o);
    else
        adam_loop<T, kMaximize, Decay::kCoupled>(param, grad, exp_avg, exp_avg_sq,
                                                 max_exp_avg_sq, n, o);
}

template <typename T>
TG_TARGET_ISA void adam_chunk(T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                T* max_exp_avg_sq, int64_t n, const AdamOptions& o) {
    if (o.maximize)
        adam_loop<T, true>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, o);
    else
        adam_loop<T, false>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, o);
}

// The arrays of one parameter, as raw pointers the threads can use without the GIL.
template <typename T>
struct Slot {
    T* param;
    const T* grad;
    T* state[3];
    int64_t size;
};

// Raw pointers for each parameter the kernel can take; the indices of the others.
template <typename T>
std::vector<Slot<T>> collect(const py::list& params, const py::list& grads,
                             const std::vector<py::list>& states, py::list& skipped) {
    std::vector<Slot<T>> slots;
    auto usable = [](const py::handle& object, bool writeable) {
        if (!py::isinstance<py::array>(object)) return false;
        auto array = py::reinterpret_borrow<py::array>(object);
        return array.dtype().is(py::dtype::of<T>()) &&
               (array.flags() & py::array::c_style) && (!writeable || array.writeable());
    };
    for (size_t i = 0; i < params.size(); ++i) {
        bool ok = usable(params[i], true) && usable(grads[i], false);
        for (const auto& state : states) ok = ok && usable(state[i], true);
        if (ok) {
            auto param = py::reinterpret_borrow<py::array>(params[i]);
            auto grad = py::reinterpret_borrow<py::array>(grads[i]);
            ok = grad.size() == param.size();
            Slot<T> slot{static_cast<T*>(param.mutable_data()), static_cast<const T*>(grad.data()),
                         {nullptr, nullptr, nullptr}, param.size()};
            for (size_t s = 0; s < states.size(); ++s) {
                auto array = py::reinterpret_borrow<py::array>(states[s][i]);
                ok = ok && array.size() == param.size();
                slot.state[s] = static_cast<T*>(array.mutable_data());
            }
            if (ok) {
                slots.push_back(slot);
                continue;
            }
        }
        skipped.append(i);
    }
    return slots;
}

// Runs update(slot, offset, count) over every kChunk-sized piece of every slot.
template <typename T, typename Update>
void for_each_chunk(const std::vector<Slot<T>>& slots, Update update) {
    std::vector<std::pair<int64_t, int64_t>> chunks;  // (slot, offset)
    int64_t total = 0;
    for (size_t s = 0; s < slots.size(); ++s) {
        for (int64_t offset = 0; offset < slots[s].size; offset += kChunk)
            chunks.emplace_back(int64_t(s), offset);
        total += slots[s].size;
    }
    py::gil_scoped_release release;
    tg::parallel_items(int64_t(chunks.size()), total, [&](int64_t c) {
        const Slot<T>& slot = slots[chunks[c].first];
        const int64_t offset = chunks[c].second;
        update(slot, offset, std::min(kChunk, slot.size - offset));
    });
}

std::vector<py::list> lists(std::initializer_list<py::object> objects) {
    std::vector<py::list> out;
    for (const auto& object : objects)
        if (!object.is_none()) out.push_back(py::reinterpret_borrow<py::list>(object));
    return out;
}

template <typename T>
void sgd_for(const py::list& params, const py::list& grads, const py::object& buffers,
             const SgdOptions& o, py::list& skipped) {
    auto slots = collect<T>(params, grads, lists({buffers}), skipped);
    for_each_chunk<T>(slots, [&](const Slot<T>& s, int64_t offset, int64_t n) {
        sgd_chunk<T>(s.param + offset, s.grad + offset,
                     s.state[0] ? s.state[0] + offset : nullptr, n, o);
    });
}

template <typename T>
void adam_for(const py::list& params, const py::list& grads, const py::list& exp_avgs,
              const py::list& exp_avg_sqs, const py::object& max_exp_avg_sqs,
              const AdamOptions& o, py::list& skipped) {
    auto slots = collect<T>(params, grads, lists({exp_avgs, exp_avg_sqs, max_exp_avg_sqs}),
                            skipped);
    for_each_chunk<T>(slots, [&](const Slot<T>& s, int64_t offset, int64_t n) {
        adam_chunk<T>(s.param + offset, s.grad + offset, s.state[0] + offset,
                      s.state[1] + offset, s.state[2] ? s.state[2] + offset : nullptr, n, o);
    });
}

// Parameters of both float dtypes may share a group: each dtype takes its own pass, and a
// parameter that neither pass took is returned for the NumPy reference.
py::list skipped_by_both(const py::list& first, const py::list& second) {
    py::list both;
    for (const auto& index : first)
        if (second.contains(index)) both.append(index);
    return both;
}

py::list sgd_step(py::list params, py::list grads, py::list momentum_buffers, double lr,
                  double momentum, double dampening, bool nesterov, double weight_decay,
                  bool maximize, bool first_step) {
    require(grads.size() == params.size(), "sgd_step: params and grads differ in length");
    const SgdOptions o{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
    py::object buffers = py::none();
    if (momentum != 0) {
        require(momentum_buffers.size() == params.size(),
                "sgd_step: params and momentum_buffers differ in length");
        buffers = momentum_buffers;
    }
    py::list skipped32, skipped64;
    sgd_for<float>(params, grads, buffers, o, skipped32);
    sgd_for<double>(params, grads, buffers, o, skipped64);
    return skipped_by_both(skipped32, skipped64);
}

py::list adam_step(py::list params, py::list grads, py::list exp_avgs, py::list exp_avg_sqs,
                   py::object max_exp_avg_sqs, double step, double lr, double beta1,
                   double beta2, double eps, double weight_decay, bool decoupled_weight_decay,
                   bool amsgrad, bool maximize) {
    require(grads.size() == params.size() && exp_avgs.size() == params.size() &&
                exp_avg_sqs.size() == params.size(),
            "adam_step: params, grads, exp_avgs and exp_avg_sqs differ in length");
    if (!amsgrad) max_exp_avg_sqs = py::none();
    require(max_exp_avg_sqs.is_none() || py::len(max_exp_avg_sqs) == params.size(),
            "adam_step: amsgrad needs one max_exp_avg_sq per parameter");
    const AdamOptions o{lr / (1 - std::pow(beta1, step)), std::sqrt(1 - std::pow(beta2, step)),
                        lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, amsgrad,
                        maximize};
    py::list skipped32, skipped64;
    adam_for<float>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, o, skipped32);
    adam_for<double>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, o, skipped64);
    return skipped_by_both(skipped32, skipped64);
}

}  // namespace

void register_optim(py::module_& m) {
    m.def("sgd_step", &sgd_step, "SGD over lists of arrays in place; returns skipped indices");
    m.def("adam_step", &adam_step, "Adam over lists of arrays in place; returns skipped indices");
}
