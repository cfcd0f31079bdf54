// Just enough CUDA to run kernels/*.cu on the CPU (tests/test_kernel_emulation.py compiles each
// file as host C++ with `g++ -include` this header).
//
// A launch runs its blocks one after another; the threads of a block are fibers (ucontext) of one
// OS thread, switched at __syncthreads and at warp shuffles, so every barrier is exact, a barrier
// some threads never reach is reported (not a hang), and the order in which threads and blocks run
// is a parameter (the test asks for the same bits in two orders). `__shared__` is `static`: one
// block at a time uses it, and each block finds it filled with 0xFF bytes (NaN, −1), as a GPU's
// leftovers are garbage: a read of shared memory no thread of the block wrote shows, where a static's
// zeros (or the block before's values) passed it — the test names each array after its declaration
// (`emu::shared`). Shuffles take the full warp's mask only, from a lane of the block. Math is the host's (glibc's
// exp/log within 1 ulp, CUDA's within 2): results agree bit for bit with the GPU only where the
// kernels use exactly rounded operations (+ − × ÷ √, comparisons, integer math) and nvcc fuses no
// a·b + c.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <setjmp.h>
#include <ucontext.h>
#include <vector>

using std::exp;
using std::log;
using std::nan;
using std::pow;
using std::sqrt;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

template <typename A, typename B>
inline auto min(A a, B b) { return b < a ? b : a; }
template <typename A, typename B>
inline auto max(A a, B b) { return a < b ? b : a; }
template <typename T>
inline T __ldcg(const T* p) { return *p; }

namespace emu {

enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

constexpr std::size_t STACK_BYTES = 64 * 1024;  // a kernel's locals are registers' worth: small

// A fiber starts on its own stack through makecontext/swapcontext, then switches with
// _setjmp/_longjmp, which do not save the signal mask (swapcontext's system call, twice per switch,
// took most of the time).
struct Fiber {
    ucontext_t context;
    jmp_buf resume;
    bool started = false;
    char* stack = nullptr;
    State state = RUNNABLE;
    uint3 index{};
    long long syncs = 0;  // __syncthreads calls, for the report of a divergent barrier
};

struct Launch {
    void (*body)(const void*);  // runs the kernel with the launch's arguments
    const void* arguments;
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    jmp_buf back;  // where a fiber that waits or finishes returns to the scheduler
    int current = 0, block_waiting = 0;
    std::vector<int> warp_waiting;
    std::vector<unsigned long long> warp_slots;  // one 64-bit slot per thread, for shuffles
    char error[256] = "";
};

inline thread_local Launch* launch = nullptr;

// The `__shared__` arrays met so far, each filled with 0xFF bytes at every block's start.
inline std::vector<std::pair<void*, std::size_t>> shared_arrays;

inline void poison(void* array, std::size_t bytes) { std::memset(array, 0xFF, bytes); }

// Called after a `__shared__` declaration, by every thread that passes it: the first, before any thread
// of the block could write the array, fills and records it.
template <typename A>
inline void shared(A& array) {
    for (const auto& [address, bytes] : shared_arrays) {
        if (address == (void*)&array) return;
    }
    shared_arrays.push_back({(void*)&array, sizeof array});
    poison(&array, sizeof array);
}

inline void fail(const char* what) {
    if (!launch->error[0]) std::snprintf(launch->error, sizeof launch->error, "%s", what);
}

inline Fiber& me() { return launch->fibers[launch->current]; }

// The calling fiber waits (`state`) until `release` made it runnable again.
inline void wait_as(State state) {
    Fiber& f = me();
    f.state = state;
    if (!_setjmp(f.resume)) _longjmp(launch->back, 1);
}

inline int threads_per_block() { return (int)(blockDim.x * blockDim.y * blockDim.z); }

inline int linear_thread() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }

inline void syncthreads() {
    ++me().syncs;
    if (++launch->block_waiting == threads_per_block()) {
        launch->block_waiting = 0;
        for (Fiber& f : launch->fibers) {
            if (f.state == AT_BLOCK_BARRIER) f.state = RUNNABLE;
        }
        wait_as(RUNNABLE);  // let the others run first: another order than the arrival's
    } else {
        wait_as(AT_BLOCK_BARRIER);
    }
}

// All 32 lanes of the caller's warp meet here (a shuffle's full mask).
inline void warp_barrier() {
    const int t = linear_thread(), warp = t / 32, first = warp * 32;
    const int lanes = threads_per_block() - first < 32 ? threads_per_block() - first : 32;
    if (++launch->warp_waiting[warp] == lanes) {
        launch->warp_waiting[warp] = 0;
        for (int l = 0; l < lanes; ++l) {
            if (launch->fibers[first + l].state == AT_WARP_BARRIER) launch->fibers[first + l].state = RUNNABLE;
        }
        wait_as(RUNNABLE);
    } else {
        wait_as(AT_WARP_BARRIER);
    }
}

template <typename T>
inline T shfl(unsigned mask, T value, int src_lane) {
    static_assert(sizeof(T) <= 8, "a shuffled value is at most 64 bits");
    if (mask != 0xFFFFFFFFu) fail("__shfl_sync with a partial mask: not emulated");
    const int t = linear_thread(), first = t / 32 * 32;
    if (first + (src_lane & 31) >= threads_per_block()) fail("__shfl_sync from a lane beyond the block's threads");
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    launch->warp_slots[t] = bits;
    warp_barrier();  // every lane has written its value
    bits = launch->warp_slots[min(first + (src_lane & 31), threads_per_block() - 1)];  // (failed beyond)
    warp_barrier();  // every lane has read before any writes the next shuffle's
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

// A fiber runs the kernel once per block: it is made once per launch and waits, DONE, for the next.
inline void entry() {
    for (;;) {
        launch->body(launch->arguments);
        wait_as(DONE);
    }
}

// A permutation of v drawn from `state` (xorshift64*: the same on every host).
template <typename T>
inline void shuffle(std::vector<T>& v, unsigned long long& state) {
    for (std::size_t i = v.size(); i > 1; --i) {
        state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
        const std::size_t j = (state * 0x2545F4914F6CDD1DULL >> 33) % i;
        T t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

// Runs body(arguments) as the kernel over grid × block, into `error` ("" when all went well).
// `order` 0: blocks and threads in index order; otherwise a permutation of the blocks and, each time
// the scheduler passes over the threads, of the threads, drawn from `order`.
inline void run(dim3 grid, dim3 block, unsigned order, void (*body)(const void*), const void* arguments,
                char (&error)[256]) {
    Launch state;
    state.body = body;
    state.arguments = arguments;
    Launch* outer = launch;
    launch = &state;
    gridDim = grid;
    blockDim = block;
    const int threads = threads_per_block();
    state.fibers.resize(threads);
    state.warp_waiting.assign((threads + 31) / 32, 0);
    state.warp_slots.assign(threads, 0);
    std::vector<uint3> blocks;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) blocks.push_back({x, y, z});
    unsigned long long random = 0x9E3779B97F4A7C15ULL * (order + 1);
    if (order) shuffle(blocks, random);
    static thread_local std::vector<char*> stacks;  // kept from launch to launch
    while ((int)stacks.size() < threads) stacks.push_back(new char[STACK_BYTES]);
    std::vector<int> turn(threads);
    for (int t = 0; t < threads; ++t) {
        turn[t] = t;
        Fiber& f = state.fibers[t];
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = stacks[t];
        f.context.uc_stack.ss_size = STACK_BYTES;
        f.context.uc_link = nullptr;  // never returns: entry loops
        makecontext(&f.context, entry, 0);
    }
    for (const uint3& b : blocks) {
        blockIdx = b;
        for (const auto& [address, bytes] : shared_arrays) poison(address, bytes);
        state.block_waiting = 0;
        for (int& w : state.warp_waiting) w = 0;
        for (int t = 0; t < threads; ++t) {
            Fiber& f = state.fibers[t];
            f.state = RUNNABLE;
            f.syncs = 0;
            f.index = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
        }
        for (int done = 0; done < threads && !state.error[0];) {
            if (order) shuffle(turn, random);
            bool ran = false;
            done = 0;
            for (int t : turn) {
                Fiber& f = state.fibers[t];
                if (f.state == RUNNABLE) {
                    state.current = t;
                    threadIdx = f.index;
                    if (!_setjmp(state.back)) {
                        if (f.started) _longjmp(f.resume, 1);
                        f.started = true;
                        swapcontext(&state.scheduler, &f.context);
                    }
                    ran = true;
                }
                done += f.state == DONE;
            }
            if (!ran && done < threads) {
                long long low = -1, high = -1;
                for (const Fiber& f : state.fibers) {
                    low = low < 0 || f.syncs < low ? f.syncs : low;
                    high = f.syncs > high ? f.syncs : high;
                }
                char text[200];
                std::snprintf(text, sizeof text, "block (%u, %u, %u): %d of %d threads finished, the others wait at "
                              "a barrier (__syncthreads calls per thread: %lld to %lld)", b.x, b.y, b.z, done,
                              threads, low, high);
                fail(text);
            }
        }
        if (state.error[0]) break;
    }
    launch = outer;
    std::memcpy(error, state.error, sizeof error);
}

}  // namespace emu

#define __syncthreads() emu::syncthreads()
#define __shfl_sync(mask, value, lane) emu::shfl((mask), (value), (lane))
#define __threadfence() ((void)0)  // one block at a time: its writes are all seen by the next

inline int atomicAdd(int* address, int value) {  // a fiber is never interrupted between the two
    const int old = *address;
    *address = old + value;
    return old;
}
