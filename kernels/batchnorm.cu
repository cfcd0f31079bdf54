// Batch normalization over the batch axis of a row-major (N, C) array.
//
// The specification is the NumPy reference in xdl/ops/batchnorm.py; formulas are repeated here.
// Threads run along C, so a warp reads 32 consecutive features of one row (coalesced). Statistics
// are per-thread Welford (never E[x²] − E[x]²), merged with Chan's formula, first within a block,
// then across the G row-blocks by a finalize kernel. Accumulation is in T (fp32 for fp32 input,
// fp64 for fp64).
//
//   training forward:  bn_partial_stats → bn_finalize_stats → bn_normalize      (x read twice, y written once)
//   backward:          bn_backward_partial → bn_backward_finalize → bn_backward_dx (dy, x read twice, dx written)
//   inference:         bn_inference                                            (x read once, y written once)
//
// Self-contained (no headers): NVRTC compiles it as-is and `nvcc --ptx` checks it in CI.

#define BLOCK_X 32   // features per stats block (one warp wide)
#define BLOCK_Y 8    // row lanes per stats block

template <typename T>
__device__ __forceinline__ T rsqrt_t(T x) { return T(1) / sqrt(x); }
template <>
__device__ __forceinline__ float rsqrt_t<float>(float x) { return 1.0f / sqrtf(x); }

// Chan et al.: merge (n_b, mean_b, m2_b) into (n_a, mean_a, m2_a).
template <typename T>
__device__ __forceinline__ void chan_merge(T& n_a, T& mean_a, T& m2_a, T n_b, T mean_b, T m2_b) {
    if (n_b == T(0)) return;
    const T n = n_a + n_b;
    const T delta = mean_b - mean_a;
    const T w = n_b / n;
    mean_a += delta * w;
    m2_a += m2_b + delta * delta * n_a * w;
    n_a = n;
}

// Per (row-block, feature): count, mean and M2 = Σ(x − mean)² of rows [y·rows, (y+1)·rows).
// Values are shifted by K = x[0, c] (a sample of the feature) before accumulating, so a feature
// whose mean is large against its spread (1e4 ± 1) keeps its precision; the mean stored is of x − K.
// Rows come four at a time: an exact two-pass mean/M2 of the four in registers, then one Chan merge.
template <typename T>
__global__ void bn_partial_stats(const T* __restrict__ x, long long n_rows, int n_cols, long long rows_per_block,
                                 T* __restrict__ part_count, T* __restrict__ part_mean, T* __restrict__ part_m2) {
    __shared__ T s_count[BLOCK_Y][BLOCK_X], s_mean[BLOCK_Y][BLOCK_X], s_m2[BLOCK_Y][BLOCK_X];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * BLOCK_X + tx;
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
    T count = 0, mean = 0, m2 = 0;
    if (c < n_cols) {
        const T shift = x[c];
        long long r = r0 + ty;
        for (; r + 3 * BLOCK_Y < r1; r += 4 * BLOCK_Y) {
            T v[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) v[k] = x[(r + k * BLOCK_Y) * n_cols + c] - shift;
            const T mean4 = T(0.25) * ((v[0] + v[1]) + (v[2] + v[3]));
            T m2_4 = 0;
#pragma unroll
            for (int k = 0; k < 4; ++k) m2_4 += (v[k] - mean4) * (v[k] - mean4);
            chan_merge(count, mean, m2, T(4), mean4, m2_4);
        }
        for (; r < r1; r += BLOCK_Y) chan_merge(count, mean, m2, T(1), x[r * n_cols + c] - shift, T(0));
    }
    s_count[ty][tx] = count;
    s_mean[ty][tx] = mean;
    s_m2[ty][tx] = m2;
    __syncthreads();
    if (ty == 0 && c < n_cols) {
#pragma unroll
        for (int k = 1; k < BLOCK_Y; ++k) chan_merge(count, mean, m2, s_count[k][tx], s_mean[k][tx], s_m2[k][tx]);
        const long long out = (long long)blockIdx.y * n_cols + c;
        part_count[out] = count;
        part_mean[out] = mean;
        part_m2[out] = m2;
    }
}

// Per feature: merge the row-block partials (Chan), add back the shift; μ, 1/√(σ² + ε) (biased σ²); running statistics
// running ← momentum·running + (1 − momentum)·batch, with the unbiased variance σ²·N/(N − 1).
template <typename T>
__global__ void bn_finalize_stats(const T* __restrict__ x, const T* __restrict__ part_count, const T* __restrict__ part_mean,
                                  const T* __restrict__ part_m2, int n_parts, long long n_rows, int n_cols,
                                  T* __restrict__ mean_out, T* __restrict__ inv_std_out, T* __restrict__ running_mean,
                                  T* __restrict__ running_var, double momentum, double eps) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n_cols) return;
    T count = 0, mean = 0, m2 = 0;
    for (int k = 0; k < n_parts; ++k) {
        const long long i = (long long)k * n_cols + c;
        chan_merge(count, mean, m2, part_count[i], part_mean[i], part_m2[i]);
    }
    mean += x[c];  // undo the shift K = x[0, c] of bn_partial_stats
    const T var = m2 / T(n_rows);
    mean_out[c] = mean;
    inv_std_out[c] = rsqrt_t(var + T(eps));
    const T m = T(momentum);
    running_mean[c] = m * running_mean[c] + (T(1) - m) * mean;
    running_var[c] = m * running_var[c] + (T(1) - m) * (m2 / T(n_rows - 1));
}

// y = (x − μ)·(γ/σ) + β.  mode 0: a = μ, b = 1/σ (training);  mode 1: a = running_mean,
// b = running_var, 1/σ = 1/√(b + ε) (inference). Each thread owns one feature over a run of rows.
template <typename T>
__device__ __forceinline__ void affine_rows(const T* __restrict__ x, T* __restrict__ y, long long n_rows, int n_cols,
                                            const T* __restrict__ a, const T* __restrict__ b,
                                            const T* __restrict__ gamma, const T* __restrict__ beta, double eps,
                                            int mode, long long rows_per_block) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n_cols) return;
    const T shift = a[c];
    const T inv_std = mode == 0 ? b[c] : rsqrt_t(b[c] + T(eps));
    const T scale = gamma[c] * inv_std;
    const T offset = beta[c];
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
#pragma unroll 4
    for (long long r = r0; r < r1; ++r) {
        const long long i = r * n_cols + c;
        y[i] = (x[i] - shift) * scale + offset;
    }
}

template <typename T>
__global__ void bn_normalize(const T* x, T* y, long long n_rows, int n_cols, const T* mean, const T* inv_std,
                             const T* gamma, const T* beta, long long rows_per_block) {
    affine_rows(x, y, n_rows, n_cols, mean, inv_std, gamma, beta, 0.0, 0, rows_per_block);
}

template <typename T>
__global__ void bn_inference(const T* x, T* y, long long n_rows, int n_cols, const T* running_mean,
                             const T* running_var, const T* gamma, const T* beta, double eps,
                             long long rows_per_block) {
    affine_rows(x, y, n_rows, n_cols, running_mean, running_var, gamma, beta, eps, 1, rows_per_block);
}

// Per (row-block, feature): Σ dy and Σ dy·(x − μ) (μ subtracted first: no cancellation).
template <typename T>
__global__ void bn_backward_partial(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean,
                                    long long n_rows, int n_cols, long long rows_per_block,
                                    T* __restrict__ part_dy, T* __restrict__ part_dy_xmu) {
    __shared__ T s_dy[BLOCK_Y][BLOCK_X], s_dy_xmu[BLOCK_Y][BLOCK_X];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * BLOCK_X + tx;
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
    T sum_dy = 0, sum_dy_xmu = 0;
    if (c < n_cols) {
        const T mu = mean[c];
        long long r = r0 + ty;
        for (; r + 3 * BLOCK_Y < r1; r += 4 * BLOCK_Y) {
            T d[4], v[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const long long i = (r + k * BLOCK_Y) * n_cols + c;
                d[k] = dy[i];
                v[k] = x[i];
            }
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                sum_dy += d[k];
                sum_dy_xmu += d[k] * (v[k] - mu);
            }
        }
        for (; r < r1; r += BLOCK_Y) {
            const long long i = r * n_cols + c;
            sum_dy += dy[i];
            sum_dy_xmu += dy[i] * (x[i] - mu);
        }
    }
    s_dy[ty][tx] = sum_dy;
    s_dy_xmu[ty][tx] = sum_dy_xmu;
    __syncthreads();
    if (ty == 0 && c < n_cols) {
#pragma unroll
        for (int k = 1; k < BLOCK_Y; ++k) {
            sum_dy += s_dy[k][tx];
            sum_dy_xmu += s_dy_xmu[k][tx];
        }
        const long long out = (long long)blockIdx.y * n_cols + c;
        part_dy[out] = sum_dy;
        part_dy_xmu[out] = sum_dy_xmu;
    }
}

// ∂L/∂β = Σ dy;  ∂L/∂γ = Σ dy·x̂ = (1/σ)·Σ dy·(x − μ)
template <typename T>
__global__ void bn_backward_finalize(const T* __restrict__ part_dy, const T* __restrict__ part_dy_xmu, int n_parts,
                                     int n_cols, const T* __restrict__ inv_std, T* __restrict__ dgamma,
                                     T* __restrict__ dbeta) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n_cols) return;
    T sum_dy = 0, sum_dy_xmu = 0;
    for (int k = 0; k < n_parts; ++k) {
        sum_dy += part_dy[(long long)k * n_cols + c];
        sum_dy_xmu += part_dy_xmu[(long long)k * n_cols + c];
    }
    dbeta[c] = sum_dy;
    dgamma[c] = sum_dy_xmu * inv_std[c];
}

// ∂L/∂x = (γ/σ)/N · (N·dy − ∂L/∂β − x̂·∂L/∂γ),  x̂ = (x − μ)/σ
template <typename T>
__global__ void bn_backward_dx(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean,
                               const T* __restrict__ inv_std, const T* __restrict__ gamma,
                               const T* __restrict__ dgamma, const T* __restrict__ dbeta, long long n_rows, int n_cols,
                               T* __restrict__ dx, long long rows_per_block) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n_cols) return;
    const T n = T(n_rows);
    const T mu = mean[c], s = inv_std[c];
    const T k = gamma[c] * s / n;
    const T mean_dy = dbeta[c];
    const T xhat_coef = dgamma[c] * s;  // x̂·∂L/∂γ = (x − μ)·(1/σ)·∂L/∂γ
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
#pragma unroll 4
    for (long long r = r0; r < r1; ++r) {
        const long long i = r * n_cols + c;
        dx[i] = k * (n * dy[i] - mean_dy - (x[i] - mu) * xhat_coef);
    }
}

#define INSTANTIATE(T)                                                                                           \
    template __global__ void bn_partial_stats<T>(const T*, long long, int, long long, T*, T*, T*);              \
    template __global__ void bn_finalize_stats<T>(const T*, const T*, const T*, const T*, int, long long, int, T*, T*, T*, \
                                                  T*, double, double);                                         \
    template __global__ void bn_normalize<T>(const T*, T*, long long, int, const T*, const T*, const T*,        \
                                             const T*, long long);                                              \
    template __global__ void bn_inference<T>(const T*, T*, long long, int, const T*, const T*, const T*,        \
                                             const T*, double, long long);                                      \
    template __global__ void bn_backward_partial<T>(const T*, const T*, const T*, long long, int, long long, T*, \
                                                    T*);                                                        \
    template __global__ void bn_backward_finalize<T>(const T*, const T*, int, int, const T*, T*, T*);           \
    template __global__ void bn_backward_dx<T>(const T*, const T*, const T*, const T*, const T*, const T*,      \
                                               const T*, long long, int, T*, long long);

INSTANTIATE(float)
INSTANTIATE(double)
