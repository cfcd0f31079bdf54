// ReLU, softmax cross-entropy, binary cross-entropy, mean squared error, tanh, sigmoid and leaky ReLU, one launch
// each way: what an eager step on the GPU would otherwise spend several elementwise and reduction launches on.
//
// The specification is the NumPy reference in xdl/ops/activation.py; each kernel does the same
// operations in the same type T (float or double), so the elementwise ones agree bit for bit (but tanh's, exp's
// and log1p's own rounding: CUDA's, not NumPy's) and the losses to rounding (the reference sums a row and the
// rows' losses pairwise, a thread here a row in order, and the rows' losses in lanes, then pairwise).
//
// Self-contained (no headers). Grid-stride loops; the loader (xdl/cuda) launches each kernel by
// parameter name; the losses' forwards with blocks of LOSS_THREADS (a define, xdl/cuda/source.py).

// a·b rounded, never fused with an addition after it into an FMA (nvcc fuses a·b + c by default)
__device__ __forceinline__ float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double rounded_product(double a, double b) { return __dmul_rn(a, b); }

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

// True in the last block of the grid to finish, called by all its threads after the block wrote its
// rows' losses: `counter` (zeroed once per stream) counts the blocks, and that block resets it.
__device__ __forceinline__ bool last_block(int* counter) {
    __shared__ bool is_last;
    __threadfence();  // make this block's row losses visible before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        is_last = atomicAdd(counter, 1) == (int)gridDim.x - 1;
        if (is_last) *counter = 0;  // ready for the next launch on this stream
    }
    __syncthreads();
    if (is_last) __threadfence();
    return is_last;
}

// Each model's mean J_k = (1/B) Σ_b ℓ_(b·models + k) of the rows' losses into loss[k], B = `examples`, called by
// every thread of the grid's last block (`last_block`), once all blocks wrote their rows' losses. The order of
// additions is fixed by `models` and B alone (not by which block finishes last): for a chunk of up to LOSS_THREADS
// models, S lanes per model (S the largest power of two with S·chunk ≤ LOSS_THREADS), lane s adding the rows
// b = s, s + S, … in turn, then the lanes' sums halved pairwise — a captured and an eager step give the same bits
// (no float atomics). The losses' forwards share it: softmax cross-entropy's K models, the elementwise losses' one.
template <typename T>
__device__ void model_means(const T* row_loss, T* loss, long long examples, long long models) {
    __shared__ T lane_sum[LOSS_THREADS];
    const int t = threadIdx.x;
    for (long long first = 0; first < models; first += LOSS_THREADS) {
        const int chunk = (int)(models - first < LOSS_THREADS ? models - first : LOSS_THREADS);
        int lanes = 1;
        while (2 * lanes * chunk <= LOSS_THREADS) lanes *= 2;
        if (t < lanes * chunk) {
            const long long k = first + t % chunk;
            T sum = T(0);
            for (long long b = t / chunk; b < examples; b += lanes) sum += row_loss[b * models + k];
            lane_sum[t] = sum;
        }
        for (int half = lanes / 2; half > 0; half /= 2) {
            __syncthreads();
            if (t < half * chunk) lane_sum[t] += lane_sum[t + half * chunk];
        }
        if (t < chunk) loss[first + t] = lane_sum[t] / T(examples);  // (its own sum: written by this thread)
        __syncthreads();  // lane_sum is the next chunk's
    }
}

// One thread per row i of the logits z (rows, C): the probabilities p and the row's loss
// ℓ = log Σ_j e^(s_j) − s_y with s = z − max_j z_j; then, in the last block to finish, each model's
// mean J_k = (1/B) Σ_b ℓ_(b·models + k) into loss[k], B = rows/models examples (`model_means`). Row i is model
// i mod `models`'s logits for example ⌊i/models⌋, whose label is labels[⌊i/models⌋].
template <typename T>
__global__ void softmax_ce_forward(const T* z, const long long* labels, T* probs, T* row_loss, T* loss,
                                   int* counter, long long rows, long long classes, long long models) {
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
    if (!last_block(counter)) return;
    model_means(row_loss, loss, rows / models, models);
}

// ∂J/∂z = (p − onehot(y))·(gy/B): gy holds each model's incoming gradient of its mean loss (in
// device memory; model k's at gy[k·gy_stride], a stride of 0 when one value is every model's, as the
// broadcast gradient of a sum of the K losses is), B = rows/models examples per model. (A label outside
// [0, C) subtracts nothing.)
template <typename T>
__global__ void softmax_ce_backward(const T* probs, const long long* labels, const T* gy, T* gz, long long rows,
                                    long long classes, long long models, long long gy_stride) {
    const long long n = rows * classes;
    const T examples = T(rows / models);
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / classes;
        gz[e] = (probs[e] - T(labels[i / models] == e - i * classes)) * (gy[i % models * gy_stride] / examples);
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

// ∂L/∂x = ∂L/∂y·(1 − y·y), y·y rounded first as the reference's: these bits on a GPU too.
template <typename T>
__global__ void tanh_backward(const T* gy, const T* y, T* gx, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = y[i];
        gx[i] = (T(1) - rounded_product(v, v)) * gy[i];
    }
}

// σ(x) = r = 1/(1 + e) for x ≥ 0 and e·r below, e = e^−|x| ∈ (0, 1]: never overflows, and keeps σ's relative
// precision for a negative x. NaN gives NaN (e·r), ±∞ give 1 and 0. (e·r rounded: binary cross-entropy's backward
// subtracts the label from it, which nvcc would fuse into an FMA.)
template <typename T>
__device__ __forceinline__ T sigmoid(T x) {
    const T e = exp(-fabs(x));
    const T r = T(1) / (e + T(1));
    return x >= T(0) ? r : rounded_product(e, r);
}

// y = σ(x)
template <typename T>
__global__ void sigmoid_forward(const T* x, T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = sigmoid(x[i]);
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

// Binary cross-entropy of logits z against targets y (both n elements): each element's
// ℓ = max(z, 0) − z·y + log(1 + e^−|z|) (max as NumPy's maximum(z, 0): NaN kept; z·y rounded, not fused into an
// FMA with the subtraction), then, in the last block to finish, their mean J = (1/n) Σ ℓ into loss[0]
// (`model_means`, one model).
template <typename T>
__global__ void bce_forward(const T* z, const T* labels, T* element_loss, T* loss, int* counter, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = z[i];
        const T positive = (v > T(0) || v != v) ? v : T(0);
        element_loss[i] = (positive - rounded_product(v, labels[i])) + log1p(exp(-fabs(v)));
    }
    if (!last_block(counter)) return;
    model_means(element_loss, loss, n, 1LL);
}

// ∂J/∂z = (σ(z) − y)·(gy/n), gy the incoming gradient of the mean J (in device memory).
template <typename T>
__global__ void bce_backward(const T* z, const T* labels, const T* gy, T* gz, long long n) {
    const T scale = gy[0] / T(n);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        gz[i] = (sigmoid(z[i]) - labels[i]) * scale;
    }
}

// Mean squared error of predictions p against targets t (both n elements): each element's ℓ = d·d, d = p − t
// (stored, so never fused with the sums after it), then, in the last block to finish, their mean
// J = (1/n) Σ ℓ into loss[0] (`model_means`, one model).
template <typename T>
__global__ void mse_forward(const T* predictions, const T* targets, T* element_loss, T* loss, int* counter,
                            long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T d = predictions[i] - targets[i];
        element_loss[i] = d * d;
    }
    if (!last_block(counter)) return;
    model_means(element_loss, loss, n, 1LL);
}

// ∂J/∂p = 2·(d·(gy/n)), d = p − t, gy the incoming gradient of the mean J (in device memory): the doubling exact,
// as the sum of d·d's two products' gradients, x + x, is.
template <typename T>
__global__ void mse_backward(const T* predictions, const T* targets, const T* gy, T* gp, long long n) {
    const T scale = gy[0] / T(n);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        gp[i] = T(2) * ((predictions[i] - targets[i]) * scale);
    }
}
