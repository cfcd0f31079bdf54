// The L2 and L1 weight penalties over a range of a flat buffer: one launch each way.
//
// The specification is the NumPy reference in xdl/ops/penalty.py (penalty_forward, penalty_backward);
// formulas are repeated here. w is K rows of n weights, row k at w + k·ld (one model: K = 1); kind 0 is
// L2, kind 1 is L1.
//
//   penalty_forward:   S_k = Σ_j w_kj² (L2) or Σ_j |w_kj| (L1), each rounded to T once;
//                      one model:  cost = S_0·scale                 (scale = (λ/m)/2 or λ/m, rounded to T)
//                      K models:   cost = (Σ_k S_k·slopes[k])·scale  (slopes[k] = λ_k/m, scale = ½ or 1)
//   penalty_backward:  g ← g + c·w (L2) or g + c·sign(w) (L1), sign(0) = 0 (|w|'s subgradient at its kink),
//                      c = gy·slope (one model) or gy·slopes[k] (row k), in T
//
// The sums are accumulated in double (a thread's elements along its row, then its block's threads in a
// fixed tree), so float32 weights are summed more exactly than the reference's float32 pairwise sum (the
// terms are ≥ 0: no cancellation; the two agree to its rounding, ~1e-7·log₂ n relative). Each block writes
// its double partial; the last block of the grid to arrive (one atomic int counter, reset by that block)
// sums every row's partials in index order and writes the cost: the same bits whatever order the blocks
// run in, eager or replayed in a CUDA graph. No float atomics.
//
// Self-contained (no headers). The loader (xdl/cuda) passes THREADS (threads per block, a power of two)
// as -DTHREADS=…, the value the host launches with (set once, in xdl/cuda/source.py).
#if !defined(THREADS)
#error "THREADS comes from the loader"
#endif

// Σ over the block's threads of v, in a fixed tree; every thread gets the total. `scratch`: THREADS doubles
// of shared memory, free again when it returns.
__device__ __forceinline__ double block_sum(double* scratch, double v) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int width = THREADS / 2; width > 0; width /= 2) {
        if ((int)threadIdx.x < width) scratch[threadIdx.x] += scratch[threadIdx.x + width];
        __syncthreads();
    }
    const double total = scratch[0];
    __syncthreads();  // every thread has read it before the scratch is written again
    return total;
}

// w² or |w|, exactly in double for float weights.
template <typename T>
__device__ __forceinline__ double penalty_term(T v, int kind) {
    const double x = (double)v;
    return kind == 0 ? x * x : fabs(x);
}

// NumPy's sign: 1, −1, +0 for ±0, NaN for NaN.
template <typename T>
__device__ __forceinline__ T sign_of(T v) {
    return v > T(0) ? T(1) : v < T(0) ? T(-1) : v == T(0) ? T(0) : v;
}

// True in the last block of the grid to finish, called by all its threads after the block wrote its partial
// (activation.cu's protocol, over a 2-D grid): `counter` (zeroed once per stream) counts the blocks, and that
// block resets it.
__device__ __forceinline__ bool last_block(int* counter) {
    __shared__ bool is_last;
    __threadfence();  // make this block's partial visible before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        is_last = atomicAdd(counter, 1) == (int)(gridDim.x * gridDim.y) - 1;
        if (is_last) *counter = 0;  // ready for the next launch on this stream
    }
    __syncthreads();
    if (is_last) __threadfence();
    return is_last;
}

// grid (blocks, K), THREADS threads; `partials`: blocks·K doubles; `counter`: one int, 0 between launches.
template <typename T>
__global__ void penalty_forward(const T* __restrict__ w, long long n, long long ld, int kind, double scale,
                                const T* __restrict__ slopes, int per_model, double* __restrict__ partials,
                                int* counter, T* __restrict__ cost) {
    __shared__ double scratch[THREADS];
    const T* row = w + (long long)blockIdx.y * ld;
    double sum = 0.0;
    for (long long j = (long long)blockIdx.x * THREADS + threadIdx.x; j < n; j += (long long)gridDim.x * THREADS)
        sum += penalty_term(row[j], kind);
    sum = block_sum(scratch, sum);
    if (threadIdx.x == 0) partials[(long long)blockIdx.y * gridDim.x + blockIdx.x] = sum;
    if (!last_block(counter)) return;
    double total = 0.0;  // Σ_k S_k·slopes[k] (K models)
    T cost_of_one = T(0);
    for (unsigned k = 0; k < gridDim.y; ++k) {
        double part = 0.0;
        const double* row_partials = partials + (long long)k * gridDim.x;
        for (unsigned b = threadIdx.x; b < gridDim.x; b += THREADS) part += __ldcg(row_partials + b);
        const T s = (T)block_sum(scratch, part);
        if (per_model) total += (double)(s * slopes[k]);
        else cost_of_one = s * (T)scale;
    }
    if (threadIdx.x == 0) *cost = per_model ? (T)total * (T)scale : cost_of_one;
}

// grid (blocks, K), THREADS threads; grad and w rows at the same stride ld.
template <typename T>
__global__ void penalty_backward(T* __restrict__ grad, const T* __restrict__ w, long long n, long long ld,
                                 int kind, const T* __restrict__ gy, double slope, const T* __restrict__ slopes,
                                 int per_model) {
    const long long offset = (long long)blockIdx.y * ld;
    const T c = per_model ? gy[0] * slopes[blockIdx.y] : gy[0] * (T)slope;
    for (long long j = (long long)blockIdx.x * THREADS + threadIdx.x; j < n; j += (long long)gridDim.x * THREADS) {
        const T v = w[offset + j];
        grad[offset + j] += kind == 0 ? c * v : c * sign_of(v);
    }
}
