// ReLU, softmax cross-entropy, tanh, sigmoid and leaky ReLU, one launch each way: what an eager step on the GPU would
// otherwise spend several elementwise and reduction launches on.
//
// The specification is the NumPy reference in xdl/ops/activation.py; each kernel does the same
// operations in the same type T (float or double), so the elementwise ones agree bit for bit (but tanh's and
// exp's own rounding: CUDA's, not NumPy's) and the row sums of the loss to rounding (the reference sums
// pairwise, a thread here in order).
//
// Self-contained (no headers). Grid-stride loops; the loader (xdl/cuda) launches each kernel by
// parameter name.

// y = max(x, 0) as NumPy's maximum(x, 0): NaN kept, −0 and −∞ give +0.
template <typename T>
__global__ void relu_forward(const T* x, T* y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const T v = x[i];
        y[i] = (v > T(0) || v != v) ? v : T(0);
    }
}

// ∂L/∂x = ∂L/∂y·[y > 0], a product with the 0/1 mask as the reference's (∞·0 is NaN there too).
template <typename T>
__global__ void relu_backward(const T* gy, const T* y, T* gx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        gx[i] = gy[i] * T(y[i] > T(0));
    }
}

// One thread per row i of the logits z (rows, C): the probabilities p and the row's loss
// ℓ = log Σ_j e^(s_j) − s_y with s = z − max_j z_j (the host averages ℓ over the rows). Row i is
// model i mod `models`'s logits for example ⌊i/models⌋, whose label is labels[⌊i/models⌋].
template <typename T>
__global__ void softmax_ce_forward(const T* z, const long long* labels, T* probs, T* row_loss, long long rows,
                                   long long classes, long long models) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows; i += (long long)gridDim.x * blockDim.x) {
        const T* zi = z + i * classes;
        T* pi = probs + i * classes;
        T top = zi[0];
        for (long long j = 1; j < classes; ++j) {
            top = zi[j] > top ? zi[j] : top;
        }
        T total = T(0);
        for (long long j = 0; j < classes; ++j) {
            pi[j] = exp(zi[j] - top);
            total += pi[j];
        }
        for (long long j = 0; j < classes; ++j) {
            pi[j] /= total;
        }
        // a label outside [0, C) (unchecked input) makes the row's loss NaN, never an out-of-bounds read
        const long long label = labels[i / models];
        row_loss[i] = (label >= 0 && label < classes) ? log(total) - (zi[label] - top) : T(nan(""));
    }
}

// ∂J/∂z = (p − onehot(y))·(gy/B): gy holds each model's incoming gradient of its mean loss (in
// device memory), B = rows/models examples per model. (A label outside [0, C) subtracts nothing.)
template <typename T>
__global__ void softmax_ce_backward(const T* probs, const long long* labels, const T* gy, T* gz, long long rows,
                                    long long classes, long long models) {
    const long long n = rows * classes;
    const T examples = T(rows / models);
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / classes;
        gz[e] = (probs[e] - T(labels[i / models] == e - i * classes)) * (gy[i % models] / examples);
    }
}

// y = tanh x (CUDA's tanh: within 2 ulp, as NumPy's is within its own).
template <typename T>
__global__ void tanh_forward(const T* x, T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = tanh(x[i]);
    }
}

// a·b rounded, never fused with an addition after it into an FMA (nvcc fuses a·b + c by default)
__device__ __forceinline__ float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double rounded_product(double a, double b) { return __dmul_rn(a, b); }

// ∂L/∂x = ∂L/∂y·(1 − y·y), y·y rounded first as the reference's: these bits on a GPU too.
template <typename T>
__global__ void tanh_backward(const T* gy, const T* y, T* gx, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = y[i];
        gx[i] = (T(1) - rounded_product(v, v)) * gy[i];
    }
}

// y = σ(x) = r = 1/(1 + e) for x ≥ 0 and e·r below, e = e^−|x| ∈ (0, 1]: never overflows, and keeps σ's
// relative precision for a negative x. NaN gives NaN (e·r), ±∞ give 1 and 0.
template <typename T>
__global__ void sigmoid_forward(const T* x, T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = x[i];
        const T e = exp(-fabs(v));
        const T r = T(1) / (e + T(1));
        y[i] = v >= T(0) ? r : e * r;
    }
}

// ∂L/∂x = (∂L/∂y·y)·(1 − y), from the output y (no product added to: no FMA).
template <typename T>
__global__ void sigmoid_backward(const T* gy, const T* y, T* gx, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = y[i];
        gx[i] = (gy[i] * v) * (T(1) - v);
    }
}

// y = x if x > 0 else x·slope, the slope rounded to T first (NumPy's x * slope of a Python float, NEP 50): ±0
// gives ±0·slope, NaN stays NaN.
template <typename T>
__global__ void leaky_relu_forward(const T* x, T* y, double slope, long long n) {
    const T s = T(slope);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = x[i];
        y[i] = v > T(0) ? v : v * s;
    }
}

// ∂L/∂x = ∂L/∂y if saved > 0 else ∂L/∂y·slope; `saved` is the forward's output y for a slope ≥ 0 (positive exactly
// where x is) and its input x for a negative slope (the host chooses): the slope at x = 0 and at NaN.
template <typename T>
__global__ void leaky_relu_backward(const T* gy, const T* saved, T* gx, double slope, long long n) {
    const T s = T(slope);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T g = gy[i];
        gx[i] = saved[i] > T(0) ? g : g * s;
    }
}
