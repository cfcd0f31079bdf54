// Counter-based dropout: the keep mask is drawn inside the kernel, never stored.
//
// The specification is xdl/ops/random.py. Value j of the draw keyed by (seed, stream, step) is
// lane j mod 4 of the Philox4x64-10 block with counter (1 + ⌊j/4⌋, step, 0, 0) and key
// (seed, stream); mask element i uses the 16 bits 16·(i mod 4) … 16·(i mod 4) + 15 of value ⌊i/4⌋
// and is kept when that uniform u ∈ [0, 2¹⁶) reaches `threshold` = ⌈rate·2¹⁶⌉. So one Philox block
// gives the mask of 16 consecutive elements: element i belongs to block ⌊i/16⌋.
//
// The same kernel applies dropout forward (x → y) and backward (∂L/∂y → ∂L/∂x): output = input·d·scale
// with d the keep mask and scale = 1/(1 − rate), computed as input·(d ? scale : 0) so that a dropped
// NaN stays NaN and a dropped −x gives −0, as NumPy's input·mask does. ReLU followed by dropout is
// one kernel each way too (relu_dropout_forward, relu_dropout_backward; for K stacked models
// stacked_relu_dropout_forward, stacked_relu_dropout_backward), bit for bit the pair's.
//
// The step of the key is `step + steps_done[0]`: `steps_done` is a counter in device memory, so a
// captured step (CUDA graph) that advances the counter draws a new mask on every replay.
//
// The Philox functions are __host__ __device__ so that the CPU test suite compiles them for the
// host and checks them against NumPy's Philox. Self-contained (no headers).

typedef unsigned long long u64;

struct Philox4 {
    u64 v[4];
};

__host__ __device__ __forceinline__ void mul_hi_lo(u64 a, u64 b, u64& hi, u64& lo) {
#ifdef __CUDA_ARCH__
    lo = a * b;
    hi = __umul64hi(a, b);
#else
    const unsigned __int128 product = (unsigned __int128)a * b;
    lo = (u64)product;
    hi = (u64)(product >> 64);
#endif
}

// Philox4x64-10 (Salmon et al., SC 2011): 10 rounds of two 64×64→128-bit products, the key bumped
// by the Weyl constants between rounds.
__host__ __device__ __forceinline__ Philox4 philox4x64_10(u64 c0, u64 c1, u64 c2, u64 c3, u64 k0, u64 k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B97F4A7C15ULL;
            k1 += 0xBB67AE8584CAA73BULL;
        }
        u64 hi0, lo0, hi1, lo1;
        mul_hi_lo(0xD2E7470EE14C6C93ULL, c0, hi0, lo0);
        mul_hi_lo(0xCA5A826395121157ULL, c2, hi1, lo1);
        const u64 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    return Philox4{{c0, c1, c2, c3}};
}

// The 16 keep bits of mask elements 16·group … 16·group + 15 (bit e set: element 16·group + e kept).
__host__ __device__ __forceinline__ unsigned keep_bits(u64 group, u64 seed, u64 stream, u64 step, int threshold) {
    const Philox4 block = philox4x64_10(1 + group, step, 0, 0, seed, stream);
    unsigned bits = 0;
#pragma unroll
    for (int e = 0; e < 16; ++e) {
        const unsigned u = (unsigned)(block.v[e >> 2] >> (16 * (e & 3))) & 0xFFFFu;
        bits |= (unsigned)(u >= (unsigned)threshold) << e;
    }
    return bits;
}

// Threads and elements: a warp takes a chunk of 512 consecutive mask elements (32 Philox blocks): lane
// l draws block ⌊first/16⌋ + l, then the warp walks the chunk in coalesced steps (lane l on elements
// 32r + l of step r, or on 16-byte packs when the host says the buffers are aligned), each lane
// taking the keep bits of its element's block from the lane that drew them (__shfl_sync). (One
// thread over its own 16 consecutive elements put a warp's loads 64 bytes apart: a sixth of copy
// bandwidth.) Loops are grid-stride over chunks; a chunk's loop bounds are the same for the whole
// warp, so every lane reaches each shuffle.
#define CHUNK 512  // mask elements per warp and chunk: 32 lanes × 16 elements per Philox block
#define FULL_WARP 0xFFFFFFFFu

template <typename T>
struct alignas(16) Pack {
    T x[16 / sizeof(T)];
};

// Calls op.one(i, kept) for every element i of [0, n) of the draw keyed by (seed, stream, key_step),
// or op.pack(q, bits) for the q-th 16-byte pack (bit w: element W·q + w kept) where `vectorized`.
template <typename T, typename Op>
__device__ __forceinline__ void for_each_masked(long long n, u64 seed, u64 stream, u64 key_step, int threshold,
                                                int vectorized, const Op& op) {
    constexpr int W = 16 / sizeof(T);  // elements per 16-byte pack: a pack lies inside one block (W divides 16)
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * blockDim.x / 32;
    for (long long chunk = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32; chunk * CHUNK < n;
         chunk += warps) {
        const long long first = chunk * CHUNK, group = first / 16 + lane;
        const unsigned bits = 16 * group < n ? keep_bits((u64)group, seed, stream, key_step, threshold) : 0u;
        if (vectorized && first + CHUNK <= n) {
#pragma unroll
            for (int r = 0; r < CHUNK / (32 * W); ++r) {
                const int e = (32 * r + lane) * W;
                op.pack(first / W + 32 * r + lane, __shfl_sync(FULL_WARP, bits, e / 16) >> (e % 16));
            }
        } else {
#pragma unroll 4
            for (int r = 0; r < CHUNK / 32; ++r) {
                const int e = 32 * r + lane;
                const unsigned mine = __shfl_sync(FULL_WARP, bits, e / 16);
                if (first + e < n) op.one(first + e, (mine >> (e % 16)) & 1u);
            }
        }
    }
}

// y = max(x, 0) as activation.cu's relu_forward (NumPy's maximum: NaN kept, −0 and −∞ give +0).
template <typename T>
__device__ __forceinline__ T relu_of(T v) { return (v > T(0) || v != v) ? v : T(0); }

// output = f(input)·(kept ? scale : 0), f the identity (dropout) or ReLU (ReLU then dropout) — a
// product, so that a dropped NaN stays NaN and a dropped −x gives −0, as NumPy's input·mask does.
template <typename T, bool RELU>
struct KeptScaled {
    const T* input;
    T* output;
    T scale;
    __device__ __forceinline__ T of(T v, unsigned kept) const {
        return (RELU ? relu_of(v) : v) * (kept ? scale : T(0));
    }
    __device__ __forceinline__ void one(long long i, unsigned kept) const { output[i] = of(input[i], kept); }
    __device__ __forceinline__ void pack(long long q, unsigned bits) const {
        Pack<T> v = reinterpret_cast<const Pack<T>*>(input)[q];
#pragma unroll
        for (int w = 0; w < 16 / (int)sizeof(T); ++w) v.x[w] = of(v.x[w], (bits >> w) & 1u);
        reinterpret_cast<Pack<T>*>(output)[q] = v;
    }
};

// ∂L/∂x of ReLU then dropout, from the forward's output y: (∂L/∂y·(kept ? scale : 0))·[y > 0], the
// dropout's backward then relu_backward's product (where kept, y > 0 exactly where ReLU's output is —
// scale ≥ 1, and no flush-to-zero in these compile options keeps a subnormal positive; where dropped,
// the first factor is ±0 or NaN and the second cannot change it).
template <typename T>
struct ReluDropoutGradient {
    const T* gy;
    const T* y;
    T* output;
    T scale;
    __device__ __forceinline__ T of(T g, T out, unsigned kept) const {
        return (g * (kept ? scale : T(0))) * T(out > T(0));
    }
    __device__ __forceinline__ void one(long long i, unsigned kept) const { output[i] = of(gy[i], y[i], kept); }
    __device__ __forceinline__ void pack(long long q, unsigned bits) const {
        Pack<T> g = reinterpret_cast<const Pack<T>*>(gy)[q];
        const Pack<T> out = reinterpret_cast<const Pack<T>*>(y)[q];
#pragma unroll
        for (int w = 0; w < 16 / (int)sizeof(T); ++w) g.x[w] = of(g.x[w], out.x[w], (bits >> w) & 1u);
        reinterpret_cast<Pack<T>*>(output)[q] = g;
    }
};

// output[i] = input[i]·(kept ? scale : 0) over [0, n): dropout forward (x → y) and backward
// (∂L/∂y → ∂L/∂x) alike.
template <typename T>
__global__ void dropout_apply(const T* input, T* output, long long n, int threshold, double scale, long long seed,
                              long long stream, long long step, const long long* steps_done, int vectorized) {
    for_each_masked<T>(n, (u64)seed, (u64)stream, (u64)step + (u64)steps_done[0], threshold, vectorized,
                       KeptScaled<T, false>{input, output, T(scale)});
}

// output = ReLU(input)·(kept ? scale : 0): ReLU then dropout in one pass (`xdl.nn.Sequential` runs
// a ReLU layer followed by a keyed Dropout layer so), bit for bit the two kernels' result.
template <typename T>
__global__ void relu_dropout_forward(const T* input, T* output, long long n, int threshold, double scale,
                                     long long seed, long long stream, long long step, const long long* steps_done,
                                     int vectorized) {
    for_each_masked<T>(n, (u64)seed, (u64)stream, (u64)step + (u64)steps_done[0], threshold, vectorized,
                       KeptScaled<T, true>{input, output, T(scale)});
}

// Its backward: output = (gy·(kept ? scale : 0))·[y > 0], y the forward's output.
template <typename T>
__global__ void relu_dropout_backward(const T* gy, const T* y, T* output, long long n, int threshold, double scale,
                                      long long seed, long long stream, long long step, const long long* steps_done,
                                      int vectorized) {
    for_each_masked<T>(n, (u64)seed, (u64)stream, (u64)step + (u64)steps_done[0], threshold, vectorized,
                       ReluDropoutGradient<T>{gy, y, output, T(scale)});
}

// K stacked models (activations (B, K, C), row-major): model k's slice input[:, k, :] is dropped with
// model k's own key and rate, exactly the mask it draws alone over its (B, C) activations:
// element (b, k, c) is element b·C + c of model k's draw. Per-model values are arrays of K; grid.y
// is the model. Chunks as above over model k's B·C elements (coalesced within each run of C; no
// packs: a model's elements are not contiguous). As alone, f is the identity (dropout) or ReLU
// (ReLU then dropout: `Stacked` runs a ReLU layer followed by its stacked Dropout layer so).
template <typename T, bool RELU>
struct StackedKeptScaled {
    const T* input;
    T* output;
    T scale;
    long long models, cols, k;
    __device__ __forceinline__ void one(long long i, unsigned kept) const {
        const long long at = (i / cols * models + k) * cols + i % cols;
        output[at] = KeptScaled<T, RELU>{input, output, scale}.of(input[at], kept);
    }
    __device__ __forceinline__ void pack(long long, unsigned) const {}  // never called: vectorized is 0
};

// Its backward of ReLU then dropout, element (b, k, c) as `ReluDropoutGradient`'s from model k's mask.
template <typename T>
struct StackedReluDropoutGradient {
    const T* gy;
    const T* y;
    T* output;
    T scale;
    long long models, cols, k;
    __device__ __forceinline__ void one(long long i, unsigned kept) const {
        const long long at = (i / cols * models + k) * cols + i % cols;
        output[at] = ReluDropoutGradient<T>{gy, y, output, scale}.of(gy[at], y[at], kept);
    }
    __device__ __forceinline__ void pack(long long, unsigned) const {}  // never called: vectorized is 0
};

template <typename T>
__global__ void stacked_dropout_apply(const T* input, T* output, long long rows, int models, long long cols,
                                      const int* threshold, const double* scale, const long long* seed,
                                      long long stream, long long step, const long long* steps_done) {
    const int k = blockIdx.y;
    for_each_masked<T>(rows * cols, (u64)seed[k], (u64)stream, (u64)step + (u64)steps_done[0], threshold[k], 0,
                       StackedKeptScaled<T, false>{input, output, T(scale[k]), models, cols, k});
}

// output[:, k] = ReLU(input[:, k])·(kept ? scale[k] : 0): K models' ReLU then dropout in one pass, bit for
// bit relu_forward then stacked_dropout_apply (and model k's relu_dropout_forward alone).
template <typename T>
__global__ void stacked_relu_dropout_forward(const T* input, T* output, long long rows, int models, long long cols,
                                             const int* threshold, const double* scale, const long long* seed,
                                             long long stream, long long step, const long long* steps_done) {
    const int k = blockIdx.y;
    for_each_masked<T>(rows * cols, (u64)seed[k], (u64)stream, (u64)step + (u64)steps_done[0], threshold[k], 0,
                       StackedKeptScaled<T, true>{input, output, T(scale[k]), models, cols, k});
}

// Its backward: output[:, k] = (gy[:, k]·(kept ? scale[k] : 0))·[y[:, k] > 0], y the forward's output.
template <typename T>
__global__ void stacked_relu_dropout_backward(const T* gy, const T* y, T* output, long long rows, int models,
                                              long long cols, const int* threshold, const double* scale,
                                              const long long* seed, long long stream, long long step,
                                              const long long* steps_done) {
    const int k = blockIdx.y;
    for_each_masked<T>(rows * cols, (u64)seed[k], (u64)stream, (u64)step + (u64)steps_done[0], threshold[k], 0,
                       StackedReluDropoutGradient<T>{gy, y, output, T(scale[k]), models, cols, k});
}
