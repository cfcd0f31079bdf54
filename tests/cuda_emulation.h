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
// a·b + c; built with -DEMU_DEVICE_MATH (below) it rounds as a GPU may instead. Threads of a block
// meet at every __syncthreads at the same source line, or the launch fails
// (synccheck: a barrier in both branches of a divergent `if` is two barriers on a GPU).
//
// Racecheck (-DEMU_RACECHECK, compiled with -fsanitize=thread and linked without its runtime, as the test
// builds it): g++ then calls the __tsan_read/write hooks below at every memory access, and those within
// the tracked buffers (`__shared__` arrays and the ranges given by emu_track: the kernel's arguments)
// are checked byte by byte, as compute-sanitizer's racecheck does. Fibers switch only at barriers, so a
// race never changes a result here: it must be seen in the accesses. Reported, with both accesses' code
// addresses: (a) two threads of a block touching a byte between the same two barriers, one writing;
// (b) two blocks writing a byte, or one block reading or writing a byte another wrote or read, except a
// read through the last-block protocol: the writer's thread ran __threadfence after its write and before
// its block's atomicAdd (before the barrier the atomicAdd follows, when another thread counts the block), the
// reader's thread ran __threadfence after its own block's atomicAdd.
// atomicAdd's own accesses are atomic: not checked.
#pragma once

// Fortified glibc (Ubuntu's g++ defines _FORTIFY_SOURCE when optimizing) checks each _longjmp: one onto a fiber's
// stack, below the scheduler's, aborts the process ("longjmp causes uninitialized stack frame").
#undef _FORTIFY_SOURCE

#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <dlfcn.h>
#include <setjmp.h>
#include <ucontext.h>
#include <unordered_map>
#include <vector>

// CUDA overloads its math functions for float in the global namespace (fabs(float) is fabsf): each here too, or
// g++ takes C's double one — exp(-fabs(x)) of a float x was computed in double, closer than a GPU's expf
using std::exp;
using std::fabs;
using std::log;
using std::log1p;
using std::nan;
using std::pow;
using std::sqrt;
using std::tanh;

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
// a product CUDA never fuses into an FMA: a call g++ does not inline, so device math's -ffp-contract=fast cannot
__attribute__((noinline)) inline float __fmul_rn(float a, float b) { return a * b; }
__attribute__((noinline)) inline double __dmul_rn(double a, double b) { return a * b; }

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
    long long fences = 0;  // __threadfence calls (racecheck: the last-block protocol)
    long long fenced[2] = {0, 0};  // `fences` at its last two __syncthreads, by their count's parity
    int barrier_line = 0;  // where it waits at a __syncthreads
    const char* barrier_file = "";
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
    int block = 0;  // the running block's linear index
    char error[512] = "";
};

inline thread_local Launch* launch = nullptr;

#ifdef EMU_RACECHECK
#define EMU_UNCHECKED __attribute__((no_sanitize_thread, noinline))  // the emulator's own accesses
#else
#define EMU_UNCHECKED
#endif

struct Shared {
    void* address;
    std::size_t bytes;
    const char* name;
};

// The `__shared__` arrays met so far, each filled with 0xFF bytes at every block's start.
inline std::vector<Shared> shared_arrays;
inline bool in_hook = false;  // racecheck: the emulator's own (instrumented) code runs (not thread_local: fast)

#ifdef EMU_RACECHECK
// A tracked range: a buffer argument or a `__shared__` array. Plain arrays: the hooks run at every access,
// and a vector's (instrumented, never inlined) iterators made racecheck 50 times slower.
struct Tracked {
    std::uintptr_t start, end;
    bool shared;
};

constexpr int MAX_TRACKED = 1024;
inline Tracked tracked[MAX_TRACKED];
inline int n_tracked = 0;
inline std::uintptr_t tracked_low = UINTPTR_MAX, tracked_high = 0;  // their span: most accesses fall outside
inline long long checked = 0;  // accesses to the arguments since emu_track: none would make racecheck vacuous

EMU_UNCHECKED inline void track(std::uintptr_t start, std::uintptr_t end, bool shared) {
    if (n_tracked == MAX_TRACKED) return;  // (never with these kernels)
    tracked[n_tracked++] = {start, end, shared};
    tracked_low = start < tracked_low ? start : tracked_low;
    tracked_high = end > tracked_high ? end : tracked_high;
}
#endif

EMU_UNCHECKED inline void poison(void* array, std::size_t bytes) { std::memset(array, 0xFF, bytes); }

// Called after a `__shared__` declaration, by every thread that passes it: the first, before any thread
// of the block could write the array, fills and records it.
template <typename A>
EMU_UNCHECKED inline void shared(A& array, const char* name) {
    for (const Shared& s : shared_arrays) {
        if (s.address == (void*)&array) return;
    }
    in_hook = true;
    shared_arrays.push_back({(void*)&array, sizeof array, name});
    in_hook = false;
#ifdef EMU_RACECHECK
    track((std::uintptr_t)&array, (std::uintptr_t)&array + sizeof array, true);
#endif
    poison(&array, sizeof array);
}

inline void fail(const char* what) {
    if (!launch->error[0]) std::snprintf(launch->error, sizeof launch->error, "%s", what);
}

inline Fiber& me() { return launch->fibers[launch->current]; }

inline void threadfence() { ++me().fences; }

// The calling fiber waits (`state`) until `release` made it runnable again.
inline void wait_as(State state) {
    Fiber& f = me();
    f.state = state;
    if (!_setjmp(f.resume)) _longjmp(launch->back, 1);
}

inline int threads_per_block() { return (int)(blockDim.x * blockDim.y * blockDim.z); }

inline int linear_thread() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }

#ifdef EMU_RACECHECK
// -- racecheck --------------------------------------------------------------------------------------
// The last access of each kind to a byte: block (−1: none), thread, barrier interval, code address.
struct Access {
    int block = -1, thread = 0;
    long long interval = 0, fences = 0;  // fences: the writer's __threadfence calls at its write
    const void* code = nullptr;
};

struct Shadow {
    Access write, read;
    bool readers = false;  // read by another thread of read.block in read.interval too
    int other_reader = -1;  // a block other than read.block that read it, or −1
};



inline std::unordered_map<std::uintptr_t, Shadow> shadows, shared_shadows;  // (the latter: the running block's)
// Block: its threads' fences at its atomicAdd (`counted`), and those ordered before it (`released`).
inline std::unordered_map<int, std::vector<long long>> counted, released;
inline bool checking = false;  // a fiber runs the kernel's code

// "lib.so+0x1a2b": a code address the test turns into file:line (addr2line).
inline void describe_code(const void* code, char* out, std::size_t size) {
    Dl_info info;
    if (code && dladdr(code, &info) && info.dli_fname) {
        const char* slash = std::strrchr(info.dli_fname, '/');
        std::snprintf(out, size, "{%s+0x%lx}", slash ? slash + 1 : info.dli_fname,
                      (unsigned long)((const char*)code - (const char*)info.dli_fbase - 1));  // the call, not after
    } else {
        std::snprintf(out, size, "{?}");
    }
}

inline void describe_thread(int block, int thread, char* out, std::size_t size) {
    const unsigned b = (unsigned)block, t = (unsigned)thread;
    std::snprintf(out, size, "block (%u, %u, %u) thread (%u, %u, %u)", b % gridDim.x, b / gridDim.x % gridDim.y,
                  b / (gridDim.x * gridDim.y), t % blockDim.x, t / blockDim.x % blockDim.y,
                  t / (blockDim.x * blockDim.y));
}

inline void report(const char* what, std::uintptr_t address, bool write, const void* code, const Access& earlier,
                   bool earlier_write) {
    if (launch->error[0]) return;
    char where[64] = "", mine[64], theirs[64], here[96], there[96];
    for (const Shared& s : shared_arrays) {
        if (address >= (std::uintptr_t)s.address && address < (std::uintptr_t)s.address + s.bytes) {
            std::snprintf(where, sizeof where, " (__shared__ %s + %lu)", s.name,
                          (unsigned long)(address - (std::uintptr_t)s.address));
        }
    }
    describe_thread(launch->block, linear_thread(), mine, sizeof mine);
    describe_thread(earlier.block, earlier.thread, theirs, sizeof theirs);
    describe_code(code, here, sizeof here);
    describe_code(earlier.code, there, sizeof there);
    char text[512];
    std::snprintf(text, sizeof text, "racecheck: %s: byte @0x%lx%s: %s of %s %s after %s of %s %s", what,
                  (unsigned long)address, where, write ? "write" : "read", mine, here,
                  earlier_write ? "write" : "read", theirs, there);
    fail(text);
}

// The reading thread's block counted itself (atomicAdd) and the thread fenced after that.
inline bool acquired() {
    const auto own = counted.find(launch->block);
    return own != counted.end() && me().fences > own->second[linear_thread()];
}

// The writer fenced after its write and before its block's atomicAdd.
inline bool published(const Access& w) {
    const auto theirs = released.find(w.block);
    return theirs != released.end() && theirs->second[w.thread] > w.fences;
}

inline void check_byte(Shadow& s, std::uintptr_t address, bool write, const void* code) {
    const int block = launch->block, thread = linear_thread();
    const long long interval = me().syncs;
    const Access& w = s.write;
    const bool same_interval_write = w.block == block && w.interval == interval && w.thread != thread;
    if (same_interval_write) {
        report("threads of a block between the same barriers", address, write, code, w, true);
    } else if (w.block >= 0 && w.block != block && (write || !(published(w) && acquired()))) {
        report(write ? "two blocks write" : "a block reads another block's write without the last-block protocol",
               address, write, code, w, true);
    }
    if (write) {
        const Access& r = s.read;
        if (r.block == block && r.interval == interval && (r.thread != thread || s.readers)) {
            report("threads of a block between the same barriers", address, write, code, r, false);
        } else if (r.block >= 0 && (r.block != block || (s.other_reader >= 0 && s.other_reader != block))) {
            Access other = r;
            if (r.block == block) other.block = s.other_reader, other.thread = 0;
            report("a block writes what another block read", address, write, code, other, false);
        }
        s.write = {block, thread, interval, me().fences, code};
    } else {
        if (s.read.block == block && s.read.interval == interval) {
            s.readers = s.readers || s.read.thread != thread;
        } else {
            s.readers = false;
        }
        if (s.read.block >= 0 && s.read.block != block) s.other_reader = s.read.block;
        s.read = {block, thread, interval, 0, code};
    }
}

inline void check_range(std::unordered_map<std::uintptr_t, Shadow>& map, std::uintptr_t start, std::size_t bytes,
                        std::uintptr_t low, std::uintptr_t high, bool write, const void* code) {
    for (std::uintptr_t a = start > low ? start : low; a < start + bytes && a < high; ++a) {
        check_byte(map[a], a, write, code);
    }
}

EMU_UNCHECKED inline void access(const void* pointer, std::size_t bytes, bool write, const void* code) {
    const std::uintptr_t start = (std::uintptr_t)pointer;
    if (!checking || in_hook || start >= tracked_high || start + bytes <= tracked_low) return;
    in_hook = true;  // (check_range is instrumented)
    for (int i = 0; i < n_tracked; ++i) {
        const Tracked& t = tracked[i];
        if (start < t.end && start + bytes > t.start) {
            checked += !t.shared;
            check_range(t.shared ? shared_shadows : shadows, start, bytes, t.start, t.end, write, code);
        }
    }
    in_hook = false;
}

// An atomicAdd by a thread of the running block: the moment its block counts itself. Its own thread's fences
// so far are ordered before it, another thread's only up to the barrier that began this interval: one it ran
// since, as fibers go, may come after the atomicAdd on a GPU.
inline void atomic_done() {
    if (in_hook) return;
    in_hook = true;
    std::vector<long long> &at = counted[launch->block], &before = released[launch->block];
    if (at.empty()) {
        const long long interval = me().syncs;
        for (const Fiber& f : launch->fibers) {
            at.push_back(f.fences);
            before.push_back(&f == &me() ? f.fences : f.fenced[interval & 1]);
        }
    }
    in_hook = false;
}

// The next launch's argument buffers, as [start, end) pairs; racecheck applies to that launch only.
extern "C" EMU_UNCHECKED void emu_track(const unsigned long long* ranges, int count) {
    n_tracked = 0, checked = 0;
    tracked_low = UINTPTR_MAX, tracked_high = 0;
    for (int i = 0; i < count; ++i) track(ranges[2 * i], ranges[2 * i + 1], false);
    in_hook = true;
    for (const Shared& a : shared_arrays) track((std::uintptr_t)a.address, (std::uintptr_t)a.address + a.bytes, true);
    in_hook = false;
}

// The accesses to the arguments checked since emu_track (the test asks for some at every launch).
extern "C" EMU_UNCHECKED long long emu_checked() { return checked; }
#endif

// Every thread of the block meets the others at the same __syncthreads (synccheck).
inline void syncthreads(const char* file, int line) {
    Fiber& f = me();
    for (const Fiber& other : launch->fibers) {
        if (&other != &f && other.state == AT_BLOCK_BARRIER && (other.barrier_line != line ||
                                                                 std::strcmp(other.barrier_file, file))) {
            char text[256];
            std::snprintf(text, sizeof text, "block (%u, %u, %u): threads (%u, %u, %u) and (%u, %u, %u) wait at "
                          "different __syncthreads: %s:%d and %s:%d", blockIdx.x, blockIdx.y, blockIdx.z,
                          other.index.x, other.index.y, other.index.z, f.index.x, f.index.y, f.index.z,
                          other.barrier_file, other.barrier_line, file, line);
            fail(text);
            break;
        }
    }
    f.barrier_file = file, f.barrier_line = line;
    ++f.syncs;
    f.fenced[f.syncs & 1] = f.fences;
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
                char (&error)[512]) {
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
        state.block = (int)(b.x + grid.x * (b.y + grid.y * b.z));
        for (const Shared& s : shared_arrays) poison(s.address, s.bytes);
#ifdef EMU_RACECHECK
        shared_shadows.clear();  // a new block's shared memory
#endif
        state.block_waiting = 0;
        for (int& w : state.warp_waiting) w = 0;
        for (int t = 0; t < threads; ++t) {
            Fiber& f = state.fibers[t];
            f.state = RUNNABLE;
            f.syncs = f.fences = f.fenced[0] = f.fenced[1] = 0;
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
#ifdef EMU_RACECHECK
                    checking = true;
#endif
                    if (!_setjmp(state.back)) {
                        if (f.started) _longjmp(f.resume, 1);
                        f.started = true;
                        swapcontext(&state.scheduler, &f.context);
                    }
#ifdef EMU_RACECHECK
                    checking = false;
#endif
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
#ifdef EMU_RACECHECK
    shadows.clear();
    shared_shadows.clear();
    counted.clear();
    released.clear();
    n_tracked = 0;  // emu_track names the buffers of one launch
    tracked_low = UINTPTR_MAX, tracked_high = 0;
#endif
    launch = outer;
    std::memcpy(error, state.error, sizeof error);
}

}  // namespace emu

#define __syncthreads() emu::syncthreads(__FILE__, __LINE__)
#define __shfl_sync(mask, value, lane) emu::shfl((mask), (value), (lane))
#define __threadfence() emu::threadfence()  // one block at a time: its writes are all seen by the next

#ifdef EMU_DEVICE_MATH
// Device math (-DEMU_DEVICE_MATH=seed, built with -ffp-contract=fast -mfma, `DEVICE_MATH` in the test): what a GPU
// may compute in place of the exactly rounded results above. g++ then fuses a·b + c into an FMA where it sees one,
// as nvcc does by default (--fmad=true; the places it fuses need not be nvcc's), and exp, log, log1p, tanh and pow
// return the correctly rounded result moved by k ulps, k within the CUDA C++ Programming Guide's maximum ulp error
// for that function (Mathematical Functions appendix: expf 2, logf 1, log1pf 1, tanhf 2, exp 1, log 1, log1p 1,
// tanh 2, pow 2; sqrt, sqrtf — with the default -prec-sqrt=true — and ÷ are exactly rounded there as here). k is
// drawn from the seed, the function and the arguments' bits: a GPU's math is a function of its input, the same
// value at every call site and in every run. A result exactly representable (exp(0) = 1, log(1) = 0), infinite,
// zero or NaN is kept: CUDA's are exact there. So a claim that holds here for a few seeds holds within CUDA's
// documented bounds, not just for glibc's.
namespace emu {

inline int ulps_off(unsigned long long function, unsigned long long a, unsigned long long b, int bound) {
    unsigned long long h = (unsigned long long)(EMU_DEVICE_MATH) * 0x9E3779B97F4A7C15ULL ^ function;
    for (unsigned long long word : {a, b}) {  // splitmix64 over the arguments
        h += word + 0x9E3779B97F4A7C15ULL;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
        h ^= h >> 31;
    }
    return (int)(h % (unsigned long long)(2 * bound + 1)) - bound;
}

template <typename F>
inline unsigned long long bits_of(F x) {
    unsigned long long bits = 0;
    std::memcpy(&bits, &x, sizeof x);
    return bits;
}

// `wide` (the function in a wider type) rounded to F, then moved k ulps, k drawn as above.
template <typename F, typename W>
inline F within_ulps(W wide, unsigned long long function, F a, F b, int bound) {
    F r = (F)wide;
    if (!std::isfinite(r) || r == F(0) || (W)r == wide) return r;
    const int k = ulps_off(function, bits_of(a), bits_of(b), bound);
    const F toward = k > 0 ? F(INFINITY) : F(-INFINITY);
    for (int i = 0; i < (k > 0 ? k : -k) && std::isfinite(r) && r != F(0); ++i) r = std::nextafter(r, toward);
    return r;
}

inline float device_exp(float x) { return within_ulps(std::exp((double)x), 1, x, 0.0f, 2); }
inline double device_exp(double x) { return within_ulps(std::exp((long double)x), 2, x, 0.0, 1); }
inline float device_log(float x) { return within_ulps(std::log((double)x), 3, x, 0.0f, 1); }
inline double device_log(double x) { return within_ulps(std::log((long double)x), 4, x, 0.0, 1); }
inline float device_log1p(float x) { return within_ulps(std::log1p((double)x), 8, x, 0.0f, 1); }
inline double device_log1p(double x) { return within_ulps(std::log1p((long double)x), 9, x, 0.0, 1); }
inline float device_tanh(float x) { return within_ulps(std::tanh((double)x), 6, x, 0.0f, 2); }
inline double device_tanh(double x) { return within_ulps(std::tanh((long double)x), 7, x, 0.0, 2); }
inline double device_pow(double x, double y) {
    return within_ulps(std::pow((long double)x, (long double)y), 5, x, y, 2);
}

}  // namespace emu

extern "C" int emu_device_math() { return EMU_DEVICE_MATH; }  // (the test asks a library for its mode)

#define exp emu::device_exp
#define log emu::device_log
#define log1p emu::device_log1p
#define pow emu::device_pow
#define tanh emu::device_tanh
#endif

EMU_UNCHECKED inline int atomicAdd(int* address, int value) {  // a fiber is never interrupted between the two
#ifdef EMU_RACECHECK
    emu::atomic_done();
#endif
    const int old = *address;
    *address = old + value;
    return old;
}

#ifdef EMU_RACECHECK
// The calls g++ makes at every load and store (-fsanitize=thread's instrumentation), into racecheck.
#define EMU_HOOK(kind, write, bytes)                                                                     \
    extern "C" EMU_UNCHECKED void __tsan_##kind##bytes(void* p) {                                       \
        emu::access(p, bytes, write, __builtin_return_address(0));                                      \
    }                                                                                                    \
    extern "C" EMU_UNCHECKED void __tsan_unaligned_##kind##bytes(void* p) {                             \
        emu::access(p, bytes, write, __builtin_return_address(0));                                      \
    }                                                                                                    \
    extern "C" EMU_UNCHECKED void __tsan_volatile_##kind##bytes(void* p) {                              \
        emu::access(p, bytes, write, __builtin_return_address(0));                                      \
    }
EMU_HOOK(read, false, 1)
EMU_HOOK(read, false, 2)
EMU_HOOK(read, false, 4)
EMU_HOOK(read, false, 8)
EMU_HOOK(read, false, 16)
EMU_HOOK(write, true, 1)
EMU_HOOK(write, true, 2)
EMU_HOOK(write, true, 4)
EMU_HOOK(write, true, 8)
EMU_HOOK(write, true, 16)
extern "C" EMU_UNCHECKED void __tsan_read_range(void* p, std::size_t n) {
    emu::access(p, n, false, __builtin_return_address(0));
}
extern "C" EMU_UNCHECKED void __tsan_write_range(void* p, std::size_t n) {
    emu::access(p, n, true, __builtin_return_address(0));
}
extern "C" EMU_UNCHECKED void __tsan_func_entry(void*) {}
extern "C" EMU_UNCHECKED void __tsan_func_exit() {}
extern "C" EMU_UNCHECKED void __tsan_init() {}
extern "C" EMU_UNCHECKED void __tsan_vptr_update(void**, void*) {}
#endif
