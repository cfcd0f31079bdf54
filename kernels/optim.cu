// Fused optimizer updates over flat parameter buffers: one launch per parameter group and dtype,
// for one model or K stacked models alike.
//
// The specification is the NumPy reference in xdl/ops/optim.py; each rule below carries the same
// formula. Every rule reads p, g and its state once and writes p and the state once (fp32 Adam:
// 28 bytes per parameter). Math and state are in T (float or double). Hyperparameters are doubles
// in device memory and are rounded to T once, as NumPy rounds a Python float against a float32 array.
//
// Loads and stores are 16 bytes wide (float4 / double2) when the host says every pointer is
// 16-byte aligned; the tail and unaligned buffers take the scalar path. Grid-stride loops.
//
// Self-contained (no headers). The loader (xdl/cuda) reads each kernel's parameter list from this
// file and launches it by parameter name; the template instances (T = float, double) are listed
// there once and instantiated by NVRTC, or by the translation unit the nvcc test generates.

template <typename T>
struct alignas(16) Pack {
    T x[16 / sizeof(T)];
};

// Apply `rule` to elements [0, n) of up to two state arrays (S = number of state arrays used).
template <typename T, int S, typename Rule>
__device__ __forceinline__ void for_each_element(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ s1,
                                                 T* __restrict__ s2, long long n, int vectorized, const Rule& rule) {
    constexpr int W = 16 / sizeof(T);
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long start = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long done = 0;
    if (vectorized) {
        const long long nvec = n / W;
        for (long long i = start; i < nvec; i += stride) {
            Pack<T> pp = reinterpret_cast<Pack<T>*>(p)[i];
            const Pack<T> gg = reinterpret_cast<const Pack<T>*>(g)[i];
            Pack<T> a, b;
            if (S >= 1) a = reinterpret_cast<Pack<T>*>(s1)[i];
            if (S >= 2) b = reinterpret_cast<Pack<T>*>(s2)[i];
#pragma unroll
            for (int k = 0; k < W; ++k) rule(pp.x[k], gg.x[k], a.x[k], b.x[k]);
            reinterpret_cast<Pack<T>*>(p)[i] = pp;
            if (S >= 1) reinterpret_cast<Pack<T>*>(s1)[i] = a;
            if (S >= 2) reinterpret_cast<Pack<T>*>(s2)[i] = b;
        }
        done = nvec * W;
    }
    for (long long i = done + start; i < n; i += stride) {
        T pi = p[i], a = S >= 1 ? s1[i] : T(0), b = S >= 2 ? s2[i] : T(0);
        rule(pi, g[i], a, b);
        p[i] = pi;
        if (S >= 1) s1[i] = a;
        if (S >= 2) s2[i] = b;
    }
}

template <typename T>
__device__ __forceinline__ T sqrt_t(T x) { return sqrt(x); }
template <>
__device__ __forceinline__ float sqrt_t<float>(float x) { return sqrtf(x); }

// SGD: p ← p − lr·(g + wd·p)
template <typename T>
struct SgdRule {
    T lr, weight_decay;
    __device__ void operator()(T& p, T g, T&, T&) const {
        const T gw = g + weight_decay * p;
        p -= lr * gw;
    }
};

// Momentum (EWA form): v ← β·v + (1 − β)·g;  p ← p − lr·v.  Nesterov: p ← p − lr·(β·v + (1 − β)·g)
template <typename T>
struct MomentumRule {
    T lr, beta, one_minus_beta, weight_decay;
    int nesterov;
    __device__ void operator()(T& p, T g, T& v, T&) const {
        const T gw = g + weight_decay * p;
        const T scaled = one_minus_beta * gw;
        v = beta * v + scaled;
        p -= lr * (nesterov ? beta * v + scaled : v);
    }
};

// RMSprop: s ← β·s + (1 − β)·g²;  p ← p − lr·g/(√s + ε)
template <typename T>
struct RmspropRule {
    T lr, beta, one_minus_beta, eps, weight_decay;
    __device__ void operator()(T& p, T g, T& s, T&) const {
        const T gw = g + weight_decay * p;
        s = beta * s + one_minus_beta * (gw * gw);
        p -= lr * (gw / (sqrt_t(s) + eps));
    }
};

// Adam / AdamW: m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
//               p ← p − step_size·m/(√v·inv_sqrt_bias2 + ε)
// with step_size = lr/(1 − β₁ᵗ), inv_sqrt_bias2 = 1/√(1 − β₂ᵗ) computed once per block in double.
// Coupled L2 adds wd·p to g; AdamW (decay_factor = 1 − lr·wd) scales p first.
template <typename T>
struct AdamRule {
    T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, inv_sqrt_bias2, weight_decay, decay_factor;
    __device__ void operator()(T& p, T g, T& m, T& v) const {
        p *= decay_factor;
        const T gw = g + weight_decay * p;
        m = beta1 * m + one_minus_beta1 * gw;
        v = beta2 * v + one_minus_beta2 * (gw * gw);
        p -= step_size * (m / (sqrt_t(v) * inv_sqrt_bias2 + eps));
    }
};

// The kernels: row k of p, g and the state is model k's (rows `ld` elements apart, columns [0, n)
// updated; one model is K = 1), and each hyperparameter is an array of K doubles in device memory,
// so a launch captured in a CUDA graph reads the values of the moment it runs (an optimizer writes
// a new learning rate there between replays). blockIdx.y is the model: one launch for all K.
template <typename T>
__global__ void sgd_update(T* p, const T* g, long long n, long long ld, int vectorized, const double* lr,
                           const double* weight_decay) {
    const long long k = blockIdx.y;
    SgdRule<T> rule{T(lr[k]), T(weight_decay[k])};
    for_each_element<T, 0>(p + k * ld, g + k * ld, nullptr, nullptr, n, vectorized, rule);
}

template <typename T>
__global__ void momentum_update(T* p, const T* g, T* v, long long n, long long ld, int vectorized, const double* lr,
                                const double* beta, int nesterov, const double* weight_decay) {
    const long long k = blockIdx.y;
    MomentumRule<T> rule{T(lr[k]), T(beta[k]), T(1.0 - beta[k]), T(weight_decay[k]), nesterov};
    for_each_element<T, 1>(p + k * ld, g + k * ld, v + k * ld, nullptr, n, vectorized, rule);
}

template <typename T>
__global__ void rmsprop_update(T* p, const T* g, T* s, long long n, long long ld, int vectorized, const double* lr,
                               const double* beta, const double* eps, const double* weight_decay) {
    const long long k = blockIdx.y;
    RmspropRule<T> rule{T(lr[k]), T(beta[k]), T(1.0 - beta[k]), T(eps[k]), T(weight_decay[k])};
    for_each_element<T, 1>(p + k * ld, g + k * ld, s + k * ld, nullptr, n, vectorized, rule);
}

template <typename T>
__global__ void adam_update(T* p, const T* g, T* m, T* v, long long n, long long ld, int vectorized, const double* lr,
                            const double* beta1, const double* beta2, const double* eps, const double* weight_decay,
                            int decoupled, long long step, const long long* steps_done) {
    // The step number t = step + steps_done[0] (steps_done: the optimizer's step counter in device
    // memory, so a replayed graph counts on), and model k's scalars of the Adam formula from its
    // own values: step_size = lr/(1 − β₁ᵗ), inv_sqrt_bias2 = 1/√(1 − β₂ᵗ).
    const long long k = blockIdx.y;
    const double t = (double)(step + steps_done[0]);
    const double rate = lr[k], b1 = beta1[k], b2 = beta2[k], wd = weight_decay[k];
    const double step_size = rate / (1.0 - pow(b1, t));
    const double inv_sqrt_bias2 = 1.0 / sqrt(1.0 - pow(b2, t));
    AdamRule<T> rule{T(b1), T(1.0 - b1), T(b2), T(1.0 - b2), T(eps[k]), T(step_size), T(inv_sqrt_bias2),
                     T(decoupled ? 0.0 : wd), T(decoupled ? 1.0 - rate * wd : 1.0)};
    for_each_element<T, 2>(p + k * ld, g + k * ld, m + k * ld, v + k * ld, n, vectorized, rule);
}
