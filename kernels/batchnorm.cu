// Batch normalization over the batch axis of a row-major (N, C) array.
//
// The specification is the NumPy reference in xdl/ops/batchnorm.py; formulas are repeated here.
//
// Layout: blocks of BLOCK_X × BLOCK_Y threads. A thread owns V consecutive features (V = 16 bytes
// of T when the host says every row array is 16-byte aligned and C % V == 0, else 1) and visits rows
// ty, ty + BLOCK_Y, … of its block's run of rows, so a warp reads 32·V consecutive features of one
// row: coalesced, 16-byte loads. Reductions keep T accumulators (fp32 for fp32, fp64 for fp64).
//
//   training forward:  bn_stats → bn_normalize          (x read twice, y written once)
//                      or, for few rows (SHORT_ROWS; up to SMALL_ROWS when the features fill the GPU),
//                      bn_forward_small (one launch; the second read hits cache)
//   backward:          bn_backward_reduce → bn_backward_dx (dy and x read twice, dx written once)
//   inference:         bn_inference                      (x read once, y written once)
//
// The two reductions finish in the same launch: each block writes its partial result, and the last
// block of a column of blocks to arrive (an atomic counter per column, reset by that block) merges
// the partials of its features in a fixed order, so results are deterministic. The partials are
// scratch of that one launch (the host keeps one buffer of them per stream).
//
// The momentum m of the running statistics is one double, or one per feature (K stacked models with momenta of
// their own: `momentum_of`), read by the forward kernels that update the statistics, bn_stats and bn_forward_small.
//
// γ, β (and ∂L/∂γ, ∂L/∂β) are per-feature arrays addressed by rows: feature c is element
// (c / group)·ld + c % group (`feature_at`) — a (C,) array (group = ld = C), or K stacked models' rows of
// `group` features each, ld apart (their (K, C/K) views of the models' (K, P) parameter buffer), read in
// place: no gathering copy per launch.
//
// Self-contained (no headers). The loader (xdl/cuda) reads each kernel's parameter list from this
// file and launches it by parameter name; it also passes the block shape and row grouping as
// -DBLOCK_X=… -DBLOCK_Y=… -DROW_GROUP=… (the one place they are set is xdl/cuda/source.py, and the
// host launches with the same values) and lists the template instances (T, V), which NVRTC
// instantiates.

// BLOCK_X: threads along features (one warp); BLOCK_Y: row lanes; ROW_GROUP: rows per lane the
// reductions load together (loads in flight per thread; the host gives each reduction block at
// least ROW_GROUP·BLOCK_Y rows).
#if !defined(BLOCK_X) || !defined(BLOCK_Y) || !defined(ROW_GROUP)
#error "BLOCK_X, BLOCK_Y and ROW_GROUP come from the loader"
#endif
#define THREADS (BLOCK_X * BLOCK_Y)
#define PREFETCH 4   // partials loaded together by the last block of a column
#define REDUCE_MIN_BLOCKS 3  // resident blocks per SM the reductions are compiled for (caps registers)

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
    T v[V];
};

template <typename T, int V>
__device__ __forceinline__ Vec<T, V> load(const T* p) { return *reinterpret_cast<const Vec<T, V>*>(p); }

template <typename T, int V>
__device__ __forceinline__ void store(T* p, const Vec<T, V>& a) { *reinterpret_cast<Vec<T, V>*>(p) = a; }

template <typename T>
__device__ __forceinline__ T rsqrt_t(T x) { return T(1) / sqrt(x); }
template <>
__device__ __forceinline__ float rsqrt_t<float>(float x) { return 1.0f / sqrtf(x); }

// a·b rounded to T, never contracted into an FMA with an add that uses it (nvcc fuses a·b + c by default)
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Chan et al.: fold a group (n_b values, mean_b, M2_b) into (n_a, mean_a, M2_a), given w = n_b/(n_a + n_b).
// Split from the count update so V features that share their counts share one division.
template <typename T>
__device__ __forceinline__ void chan_update(T& mean_a, T& m2_a, T n_a, T w, T mean_b, T m2_b) {
    const T delta = mean_b - mean_a;
    mean_a += delta * w;
    m2_a += m2_b + delta * delta * n_a * w;
}

template <typename T>
__device__ __forceinline__ void chan_merge(T& n_a, T& mean_a, T& m2_a, T n_b, T mean_b, T m2_b) {
    if (n_b == T(0)) return;
    chan_update(mean_a, m2_a, n_a, n_b / (n_a + n_b), mean_b, m2_b);
    n_a += n_b;
}

// Where feature c is in a per-feature array of rows of `group` features, rows `ld` elements apart.
__device__ __forceinline__ long long feature_at(int c, int group, long long ld) {
    return (long long)(c / group) * ld + c % group;
}

// Rows in [r0, r1) that row lane `lane` visits (r0 + lane, r0 + lane + BLOCK_Y, …).
__device__ __forceinline__ long long lane_rows(long long r0, long long r1, int lane) {
    return r1 - r0 > lane ? (r1 - r0 - lane + BLOCK_Y - 1) / BLOCK_Y : 0;
}

// Called by all threads after the block wrote its partials: true in the last block of this column.
__device__ __forceinline__ bool last_block_of_column(int* counters) {
    __shared__ bool is_last;
    __threadfence();  // make this block's partials visible before it is counted
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        is_last = atomicAdd(&counters[blockIdx.x], 1) == (int)gridDim.y - 1;
        if (is_last) counters[blockIdx.x] = 0;  // ready for the next launch on this stream
    }
    __syncthreads();
    if (is_last) __threadfence();
    return is_last;
}

// Row lane 0 of a block writes its two partial rows: part[0][blockIdx.y][c…] = a, part[1][blockIdx.y][c…] = b.
template <typename T, int V>
__device__ __forceinline__ void store_partials(T* __restrict__ part, long long n_parts, int n_cols, int c,
                                               const T (&a)[V], const T (&b)[V]) {
    Vec<T, V> va, vb;
#pragma unroll
    for (int k = 0; k < V; ++k) {
        va.v[k] = a[k];
        vb.v[k] = b[k];
    }
    store<T, V>(part + (long long)blockIdx.y * n_cols + c, va);
    store<T, V>(part + (n_parts + blockIdx.y) * n_cols + c, vb);
}

// In the last block of a column: visit the partials p = lane, lane + lanes, … of feature col in
// order, calling fn(p, part[0][p][col], part[1][p][col]); PREFETCH of them are loaded before any is
// used (the merges form a dependent chain, the loads need not wait for it).
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_partial(const T* __restrict__ part, long long n_parts, int n_cols, int col,
                                                 int lane, int lanes, Fn fn) {
    for (long long p0 = lane; p0 < n_parts; p0 += PREFETCH * lanes) {
        T a[PREFETCH], b[PREFETCH];
#pragma unroll
        for (int u = 0; u < PREFETCH; ++u) {
            const long long p = p0 + u * lanes;
            a[u] = p < n_parts ? __ldcg(part + p * n_cols + col) : T(0);
            b[u] = p < n_parts ? __ldcg(part + (n_parts + p) * n_cols + col) : T(0);
        }
#pragma unroll
        for (int u = 0; u < PREFETCH; ++u) {
            const long long p = p0 + u * lanes;
            if (p < n_parts) fn(p, a[u], b[u]);
        }
    }
}

// -- training forward: statistics -------------------------------------------------------------
// Per feature c: μ = (1/N) Σ x, σ² = (1/N) Σ (x − μ)² (Welford/Chan, never E[x²] − E[x]²),
// 1/√(σ² + ε); running_mean ← m·running_mean + (1 − m)·μ, running_var ← m·running_var + (1 − m)·σ²·N/(N − 1).
// Values are shifted by K = x[0, c] before accumulating, so a feature whose mean is large against its
// spread (1e4 ± 1) keeps its precision. Rows come ROW_GROUP at a time: an exact two-pass mean/M2 of
// the group in registers, then one Chan merge.

// Moments of the block's rows [r0, r1) for features c…c+V−1: each row lane accumulates its rows,
// then lane 0 merges the others and ends with the block's (mean of x − K, M2); returns the count.
template <typename T, int V>
__device__ __forceinline__ T block_moments(const T* __restrict__ x, long long r0, long long r1, int n_cols, int c,
                                           T (&mean)[V], T (&m2)[V], T (*s_mean)[BLOCK_X * V],
                                           T (*s_m2)[BLOCK_X * V]) {
    const int tx = threadIdx.x, ty = threadIdx.y;
    T count = 0;
#pragma unroll
    for (int k = 0; k < V; ++k) mean[k] = m2[k] = T(0);
    if (c < n_cols) {
        const Vec<T, V> shift = load<T, V>(x + c);
        long long r = r0 + ty;
        constexpr int G = ROW_GROUP;
        for (; r + (G - 1) * BLOCK_Y < r1; r += G * BLOCK_Y) {
            Vec<T, V> a[G];
#pragma unroll
            for (int j = 0; j < G; ++j) a[j] = load<T, V>(x + (r + j * BLOCK_Y) * n_cols + c);
            const T w = T(G) / (count + T(G));
#pragma unroll
            for (int k = 0; k < V; ++k) {
                T d[G], sum = T(0);
#pragma unroll
                for (int j = 0; j < G; ++j) sum += d[j] = a[j].v[k] - shift.v[k];
                const T mean_g = sum * (T(1) / T(G));
                T m2_g = T(0);
#pragma unroll
                for (int j = 0; j < G; ++j) m2_g += (d[j] - mean_g) * (d[j] - mean_g);
                chan_update(mean[k], m2[k], count, w, mean_g, m2_g);
            }
            count += T(G);
        }
        for (; r < r1; r += BLOCK_Y) {
            const Vec<T, V> a = load<T, V>(x + r * n_cols + c);
            const T w = T(1) / (count + T(1));
#pragma unroll
            for (int k = 0; k < V; ++k) chan_update(mean[k], m2[k], count, w, a.v[k] - shift.v[k], T(0));
            count += T(1);
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
        s_mean[ty][tx * V + k] = mean[k];
        s_m2[ty][tx * V + k] = m2[k];
    }
    __syncthreads();
    if (ty == 0 && c < n_cols) {
        for (int lane = 1; lane < BLOCK_Y; ++lane) {
            const T n_b = T(lane_rows(r0, r1, lane));
            if (n_b == T(0)) break;  // later lanes have no rows either
            const T w = n_b / (count + n_b);
#pragma unroll
            for (int k = 0; k < V; ++k) chan_update(mean[k], m2[k], count, w, s_mean[lane][tx * V + k], s_m2[lane][tx * V + k]);
            count += n_b;
        }
    }
    return count;
}

// Feature col's momentum m: `momentum` for every feature (per_feature = 0; momenta is then any array, unread), or
// momenta[col], one double per feature (K stacked models with momenta of their own, each repeated over its
// features): either way the double a model alone passes as `momentum`, so its running statistics are the same bits.
__device__ __forceinline__ double momentum_of(int col, double momentum, const double* __restrict__ momenta,
                                              int per_feature) {
    return per_feature ? momenta[col] : momentum;
}

// Feature col's μ and 1/√(σ² + ε) from its moments over all n_rows rows; writes them to stats and
// updates the running statistics.
template <typename T>
__device__ __forceinline__ void finish_feature(const T* __restrict__ x, int col, T mean_shifted, T m2, long long n_rows,
                                               int n_cols, T* __restrict__ stats, T* __restrict__ running_mean,
                                               T* __restrict__ running_var, double momentum, double eps, T& mu,
                                               T& inv_std) {
    mu = mean_shifted + x[col];  // undo the shift K = x[0, c]
    inv_std = rsqrt_t(m2 / T(n_rows) + T(eps));
    stats[col] = mu;
    stats[n_cols + col] = inv_std;
    const T m = T(momentum), rest = T(1.0 - momentum);  // 1 − m in double, rounded once: the reference's factor
    running_mean[col] = m * running_mean[col] + rest * mu;
    running_var[col] = m * running_var[col] + rest * (m2 / T(n_rows - 1));
}

// Statistics over row blocks: each block writes its partial, the last block of a column merges them.
//   stats: [2, C] out μ, 1/√(σ² + ε);  partials: [2·gridDim.y, C] scratch, the block partials
//   (mean of x − K; M2);  momentum, momenta, per_feature: m (`momentum_of`).
template <typename T, int V>
__global__ void __launch_bounds__(THREADS, REDUCE_MIN_BLOCKS)
bn_stats(const T* __restrict__ x, long long n_rows, int n_cols, long long rows_per_block, T* __restrict__ stats,
         T* __restrict__ partials, int* __restrict__ counters, T* __restrict__ running_mean,
         T* __restrict__ running_var, double momentum, const double* __restrict__ momenta, int per_feature,
         double eps) {
    constexpr int F = BLOCK_X * V;  // features per block
    __shared__ T s_count[BLOCK_Y][F], s_mean[BLOCK_Y][F], s_m2[BLOCK_Y][F];
    const int c = (blockIdx.x * BLOCK_X + threadIdx.x) * V;
    const long long n_parts = gridDim.y;
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    T* part = partials;
    T mean[V], m2[V];
    block_moments<T, V>(x, r0, min(r0 + rows_per_block, n_rows), n_cols, c, mean, m2, s_mean, s_m2);
    if (threadIdx.y == 0 && c < n_cols) store_partials<T, V>(part, n_parts, n_cols, c, mean, m2);
    if (!last_block_of_column(counters)) return;

    // Last block of this column: merge the n_parts partials of its F features, L lanes per feature.
    constexpr int L = THREADS / F;
    const int t = threadIdx.y * BLOCK_X + threadIdx.x, j = t % F, lane = t / F;
    const int col = blockIdx.x * F + j;
    T n_a = 0, mu = 0, q = 0;
    if (col < n_cols) {
        for_each_partial(part, n_parts, n_cols, col, lane, L, [&](long long p, T part_mean, T part_m2) {
            chan_merge(n_a, mu, q, T(min(rows_per_block, n_rows - p * rows_per_block)), part_mean, part_m2);
        });
    }
    s_count[lane][j] = n_a;
    s_mean[lane][j] = mu;
    s_m2[lane][j] = q;
    __syncthreads();
    if (lane == 0 && col < n_cols) {
        for (int l = 1; l < L; ++l) chan_merge(n_a, mu, q, s_count[l][j], s_mean[l][j], s_m2[l][j]);
        T mean_out, inv_std;
        finish_feature(x, col, mu, q, n_rows, n_cols, stats, running_mean, running_var,
                       momentum_of(col, momentum, momenta, per_feature), eps, mean_out, inv_std);
    }
}

// -- elementwise passes -----------------------------------------------------------------------
// y = (x − a)·(γ·s) + β over the block's rows, with per-feature a and s:
//   training (bn_normalize):  a = μ, s = 1/√(σ² + ε) from bn_stats;
//   inference (bn_inference): a = running_mean, s = 1/√(running_var + ε).
template <typename T, int V>
__device__ __forceinline__ void affine_rows(const T* __restrict__ x, T* __restrict__ y, long long n_rows, int n_cols,
                                            long long rows_per_block, const T (&a)[V], const T (&scale)[V],
                                            const T (&offset)[V], int c) {
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
#pragma unroll 4
    for (long long r = r0 + threadIdx.y; r < r1; r += BLOCK_Y) {
        const long long i = r * n_cols + c;
        Vec<T, V> v = load<T, V>(x + i);
#pragma unroll
        for (int k = 0; k < V; ++k) v.v[k] = (v.v[k] - a[k]) * scale[k] + offset[k];
        store<T, V>(y + i, v);
    }
}

template <typename T, int V>
__global__ void __launch_bounds__(THREADS)
bn_normalize(const T* __restrict__ x, T* __restrict__ y, long long n_rows, int n_cols, long long rows_per_block,
             const T* __restrict__ stats, const T* __restrict__ gamma, const T* __restrict__ beta, int group,
             long long gamma_ld, long long beta_ld) {
    const int c = (blockIdx.x * BLOCK_X + threadIdx.x) * V;
    if (c >= n_cols) return;
    T a[V], scale[V], offset[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
        a[k] = stats[c + k];
        scale[k] = gamma[feature_at(c + k, group, gamma_ld)] * stats[n_cols + c + k];
        offset[k] = beta[feature_at(c + k, group, beta_ld)];
    }
    affine_rows<T, V>(x, y, n_rows, n_cols, rows_per_block, a, scale, offset, c);
}

// Small batches, one launch: a block owns its features over all rows (gridDim.y == 1), computes
// their statistics, then normalizes the rows it has just read (now in cache).
//   stats: [2, C] out (μ, 1/√(σ² + ε)); γ, β addressed by (group, *_ld) as in bn_normalize; m as in bn_stats.
template <typename T, int V>
__global__ void __launch_bounds__(THREADS)
bn_forward_small(const T* __restrict__ x, T* __restrict__ y, long long n_rows, int n_cols, T* __restrict__ stats,
                 const T* __restrict__ gamma, const T* __restrict__ beta, int group, long long gamma_ld,
                 long long beta_ld, T* __restrict__ running_mean, T* __restrict__ running_var, double momentum,
                 const double* __restrict__ momenta, int per_feature, double eps) {
    constexpr int F = BLOCK_X * V;
    __shared__ T s_mean[BLOCK_Y][F], s_m2[BLOCK_Y][F];
    const int c = (blockIdx.x * BLOCK_X + threadIdx.x) * V;
    T mean[V], m2[V];
    block_moments<T, V>(x, 0, n_rows, n_cols, c, mean, m2, s_mean, s_m2);
    // Row lane 0 finishes the statistics and hands μ and γ/σ to the other lanes through shared memory.
    if (threadIdx.y == 0 && c < n_cols) {
#pragma unroll
        for (int k = 0; k < V; ++k) {
            T mu, inv_std;
            finish_feature(x, c + k, mean[k], m2[k], n_rows, n_cols, stats, running_mean, running_var,
                           momentum_of(c + k, momentum, momenta, per_feature), eps, mu, inv_std);
            s_mean[0][threadIdx.x * V + k] = mu;
            s_m2[0][threadIdx.x * V + k] = gamma[feature_at(c + k, group, gamma_ld)] * inv_std;
        }
    }
    __syncthreads();
    if (c >= n_cols) return;
    T a[V], scale[V], offset[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
        a[k] = s_mean[0][threadIdx.x * V + k];
        scale[k] = s_m2[0][threadIdx.x * V + k];
        offset[k] = beta[feature_at(c + k, group, beta_ld)];
    }
    affine_rows<T, V>(x, y, n_rows, n_cols, n_rows, a, scale, offset, c);
}

template <typename T, int V>
__global__ void __launch_bounds__(THREADS)
bn_inference(const T* __restrict__ x, T* __restrict__ y, long long n_rows, int n_cols, long long rows_per_block,
             const T* __restrict__ running_mean, const T* __restrict__ running_var, const T* __restrict__ gamma,
             const T* __restrict__ beta, int group, long long gamma_ld, long long beta_ld, double eps) {
    const int c = (blockIdx.x * BLOCK_X + threadIdx.x) * V;
    if (c >= n_cols) return;
    T a[V], scale[V], offset[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
        a[k] = running_mean[c + k];
        scale[k] = gamma[feature_at(c + k, group, gamma_ld)] * rsqrt_t(running_var[c + k] + T(eps));
        offset[k] = beta[feature_at(c + k, group, beta_ld)];
    }
    affine_rows<T, V>(x, y, n_rows, n_cols, rows_per_block, a, scale, offset, c);
}

// -- backward ---------------------------------------------------------------------------------
// Per feature: ∂L/∂β = Σ dy;  ∂L/∂γ = Σ dy·x̂ = (1/σ)·Σ dy·(x − μ)  (μ subtracted first: no cancellation).
//   mean, inv_std: μ, 1/σ from bn_stats;
//   grads: [2, C] out ∂L/∂γ, ∂L/∂β (what bn_backward_dx reads);
//   partials: [2·gridDim.y, C] scratch, the block partials (Σ dy; Σ dy·(x − μ));
//   dgamma, dbeta: where ∂L/∂γ and ∂L/∂β go as well when `outputs` says so (its bits OUT_DGAMMA, OUT_DBETA,
//          defines; one not named is never touched and may be any array) — γ's and β's views of the flat
//          gradient buffer: dgamma += ∂L/∂γ where accumulate ≠ 0, dgamma = ∂L/∂γ otherwise (dbeta likewise).
//          Feature c is element `feature_at`(c, group, ld) of each: C in a row ((C,) arrays, group = ld = C),
//          or K models' rows of `group` features each, rows ld apart (their (K, C/K) views of a (K, P)
//          buffer; dgamma_ld, dbeta_ld).
//          So the backward needs no add of its own: a read and a write of 2·C values, against the N·C of dy, x.
template <typename T, int V>
__global__ void __launch_bounds__(THREADS, REDUCE_MIN_BLOCKS)
bn_backward_reduce(const T* __restrict__ dy, const T* __restrict__ x, long long n_rows, int n_cols,
                   long long rows_per_block, const T* __restrict__ mean, const T* __restrict__ inv_std,
                   T* __restrict__ grads, T* __restrict__ partials, int* __restrict__ counters,
                   T* __restrict__ dgamma, T* __restrict__ dbeta, int outputs, int accumulate, int group,
                   long long dgamma_ld, long long dbeta_ld) {
    constexpr int F = BLOCK_X * V;
    __shared__ T s_dy[BLOCK_Y][F], s_dy_xmu[BLOCK_Y][F];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = (blockIdx.x * BLOCK_X + tx) * V;
    const long long n_parts = gridDim.y;
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
    T* part = partials;
    T sum_dy[V], sum_dy_xmu[V];
#pragma unroll
    for (int k = 0; k < V; ++k) sum_dy[k] = sum_dy_xmu[k] = T(0);
    if (c < n_cols) {
        const Vec<T, V> mu = load<T, V>(mean + c);
        long long r = r0 + ty;
        constexpr int G = ROW_GROUP;
        for (; r + (G - 1) * BLOCK_Y < r1; r += G * BLOCK_Y) {
            Vec<T, V> d[G], a[G];
#pragma unroll
            for (int j = 0; j < G; ++j) {
                const long long i = (r + j * BLOCK_Y) * n_cols + c;
                d[j] = load<T, V>(dy + i);
                a[j] = load<T, V>(x + i);
            }
#pragma unroll
            for (int j = 0; j < G; ++j)
#pragma unroll
                for (int k = 0; k < V; ++k) {
                    sum_dy[k] += d[j].v[k];
                    sum_dy_xmu[k] += d[j].v[k] * (a[j].v[k] - mu.v[k]);
                }
        }
        for (; r < r1; r += BLOCK_Y) {
            const long long i = r * n_cols + c;
            const Vec<T, V> d = load<T, V>(dy + i), a = load<T, V>(x + i);
#pragma unroll
            for (int k = 0; k < V; ++k) {
                sum_dy[k] += d.v[k];
                sum_dy_xmu[k] += d.v[k] * (a.v[k] - mu.v[k]);
            }
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
        s_dy[ty][tx * V + k] = sum_dy[k];
        s_dy_xmu[ty][tx * V + k] = sum_dy_xmu[k];
    }
    __syncthreads();
    if (ty == 0 && c < n_cols) {
#pragma unroll
        for (int k = 0; k < V; ++k) {
            for (int lane = 1; lane < BLOCK_Y; ++lane) {
                sum_dy[k] += s_dy[lane][tx * V + k];
                sum_dy_xmu[k] += s_dy_xmu[lane][tx * V + k];
            }
        }
        store_partials<T, V>(part, n_parts, n_cols, c, sum_dy, sum_dy_xmu);
    }
    if (!last_block_of_column(counters)) return;

    constexpr int L = THREADS / F;
    const int t = ty * BLOCK_X + tx, j = t % F, lane = t / F;
    const int col = blockIdx.x * F + j;
    T a = 0, b = 0;
    if (col < n_cols) {
        for_each_partial(part, n_parts, n_cols, col, lane, L, [&](long long, T part_dy, T part_dy_xmu) {
            a += part_dy;
            b += part_dy_xmu;
        });
    }
    s_dy[lane][j] = a;
    s_dy_xmu[lane][j] = b;
    __syncthreads();
    if (lane == 0 && col < n_cols) {
        for (int l = 1; l < L; ++l) {
            a += s_dy[l][j];
            b += s_dy_xmu[l][j];
        }
        // ∂L/∂γ rounded once, never fused into the add below: the bits the add of a separate pass made
        const T dgamma_col = mul_rn(b, inv_std[col]);
        grads[col] = dgamma_col;
        grads[n_cols + col] = a;  // ∂L/∂β
        if (outputs & OUT_DGAMMA) {
            T& out = dgamma[feature_at(col, group, dgamma_ld)];
            out = accumulate ? out + dgamma_col : dgamma_col;
        }
        if (outputs & OUT_DBETA) {
            T& out = dbeta[feature_at(col, group, dbeta_ld)];
            out = accumulate ? out + a : a;
        }
    }
}

// ∂L/∂x = (γ/σ)/N · (N·dy − ∂L/∂β − x̂·∂L/∂γ),  x̂ = (x − μ)/σ
//   grads: bn_backward_reduce's [2, C] ∂L/∂γ, ∂L/∂β; γ addressed by (group, gamma_ld) as in the forward.
template <typename T, int V>
__global__ void __launch_bounds__(THREADS)
bn_backward_dx(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx, long long n_rows, int n_cols,
               long long rows_per_block, const T* __restrict__ mean, const T* __restrict__ inv_std,
               const T* __restrict__ gamma, int group, long long gamma_ld, const T* __restrict__ grads) {
    const int c = (blockIdx.x * BLOCK_X + threadIdx.x) * V;
    if (c >= n_cols) return;
    const T n = T(n_rows);
    T mu[V], k_coef[V], dbeta[V], xhat_coef[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
        const T s = inv_std[c + k];
        mu[k] = mean[c + k];
        k_coef[k] = gamma[feature_at(c + k, group, gamma_ld)] * s / n;
        xhat_coef[k] = grads[c + k] * s;  // x̂·∂L/∂γ = (x − μ)·(1/σ)·∂L/∂γ
        dbeta[k] = grads[n_cols + c + k];
    }
    const long long r0 = (long long)blockIdx.y * rows_per_block;
    const long long r1 = min(r0 + rows_per_block, n_rows);
#pragma unroll 4
    for (long long r = r0 + threadIdx.y; r < r1; r += BLOCK_Y) {
        const long long i = r * n_cols + c;
        const Vec<T, V> d = load<T, V>(dy + i), a = load<T, V>(x + i);
        Vec<T, V> out;
#pragma unroll
        for (int k = 0; k < V; ++k) out.v[k] = k_coef[k] * (n * d.v[k] - dbeta[k] - (a.v[k] - mu[k]) * xhat_coef[k]);
        store<T, V>(dx + i, out);
    }
}
