// ReLU and softmax cross-entropy, one launch each way: what an eager step on the GPU would
// otherwise spend several elementwise and reduction launches on.
//
// The specification is the NumPy reference in xdl/ops/activation.py; each kernel does the same
// operations in the same type T (float or double), so the elementwise ones agree bit for bit and
// the row sums of the loss to rounding (the reference sums pairwise, a thread here in order).
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
