// A stand-in for libcublas on the host: naive column-major GEMM on host pointers, honoring ops,
// leading dimensions, alpha/beta (beta = 0 never reads C) and batch strides. Calls on a stream the
// Python side marks as capturing are logged and handed to a Python callback (and run: the
// stand-in runs a capture, then puts the memory back). Under the memory check (fake_set_checking) every call,
// a replayed one too, first hands its operands' and workspace's extents to a Python checker, which may refuse
// it (status 14, CUBLAS_STATUS_INTERNAL_ERROR: nothing is written), and a call scribbles on its workspace
// as a real cuBLAS may.
#include <cstdint>
#include <cstring>
#include <vector>
#include <cmath>

struct Handle { void* stream = nullptr; void* workspace = nullptr; size_t ws = 0; int math = 0; };
struct Call { bool dbl; Handle* h; int ta, tb, m, n, k; double alpha, beta; const void* A; int lda; long long sa;
              const void* B; int ldb; long long sb; void* C; int ldc; long long sc; int batch; int math; };

static std::vector<Call> calls;
static std::vector<void*> capturing;  // stream pointers under capture
static void (*recorder)(int) = nullptr;
static long long gemm_count = 0;
// checker(what, handle, pointers, bytes): what 0 = cublasSetWorkspace_v2 (one pointer), 1 = a call, 2 = a replay
// (A, B, C, workspace); nonzero refuses it
static int (*checker)(int, void*, void**, long long*) = nullptr;
static int checking = 0;

extern "C" void fake_set_recorder(void (*f)(int)) { recorder = f; }
extern "C" void fake_set_capturing(void* stream, int on) {
    for (size_t i = 0; i < capturing.size(); ++i) if (capturing[i] == stream) { if (!on) capturing.erase(capturing.begin() + i); return; }
    if (on) capturing.push_back(stream);
}
extern "C" void fake_call_pointers(int i, void** out) {
    out[0] = (void*)calls[i].A; out[1] = (void*)calls[i].B; out[2] = calls[i].C;
}
extern "C" long long fake_gemm_count() { return gemm_count; }
extern "C" void fake_set_checker(int (*f)(int, void*, void**, long long*)) { checker = f; }
extern "C" void fake_set_checking(int on) { checking = on; }

static long long extent(int trans, int rows, int cols, int ld, long long stride, int batch, size_t size) {
    // the bytes a column-major operand op(X) of rows x cols reaches from its pointer, over the batch
    int r = trans ? cols : rows, c = trans ? rows : cols;
    if (r == 0 || c == 0 || batch == 0) return 0;
    return ((long long)(c - 1) * ld + r + (long long)(batch - 1) * stride) * (long long)size;
}

static int checked(const Call& c, int what) {  // 0: go on; else refused by the memory check
    if (!checking || checker == nullptr) return 0;
    size_t size = c.dbl ? 8 : 4;
    void* pointers[4] = {(void*)c.A, (void*)c.B, c.C, c.h->workspace};
    long long bytes[4] = {extent(c.ta, c.m, c.k, c.lda, c.sa, c.batch, size),
                          extent(c.tb, c.k, c.n, c.ldb, c.sb, c.batch, size),
                          extent(0, c.m, c.n, c.ldc, c.sc, c.batch, size), (long long)c.h->ws};
    if (checker(what, c.h, pointers, bytes)) return 14;  // CUBLAS_STATUS_INTERNAL_ERROR
    if (c.h->workspace && c.h->ws) std::memset(c.h->workspace, 0x5A, c.h->ws < 256 ? c.h->ws : 256);
    return 0;
}

static float tf32(float x) {  // round to 10 mantissa bits (nearest), as tensor cores read float32 in TF32 mode
    uint32_t u; std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) { u += 0x1000u; u &= 0xffffe000u; }
    std::memcpy(&x, &u, 4); return x;
}

template <typename T> static void run(const Call& c) {
    for (int b = 0; b < c.batch; ++b) {
        const T* A = (const T*)c.A + b * c.sa; const T* B = (const T*)c.B + b * c.sb; T* C = (T*)c.C + b * c.sc;
        for (int j = 0; j < c.n; ++j) for (int i = 0; i < c.m; ++i) {
            double acc = 0;
            for (int l = 0; l < c.k; ++l) {
                T a = c.ta ? A[l + (long long)i * c.lda] : A[i + (long long)l * c.lda];
                T bb = c.tb ? B[j + (long long)l * c.ldb] : B[l + (long long)j * c.ldb];
                if (sizeof(T) == 4 && c.math == 3) { a = (T)tf32((float)a); bb = (T)tf32((float)bb); }
                acc += (double)a * (double)bb;
            }
            T* out = C + i + (long long)j * c.ldc;
            *out = c.beta == 0 ? (T)(c.alpha * acc) : (T)(c.alpha * acc + c.beta * (double)*out);
        }
    }
}

static void run_call(const Call& c) { if (c.dbl) run<double>(c); else run<float>(c); ++gemm_count; }
extern "C" int fake_replay(int i) {
    const Call& c = calls[i];
    int status = checked(c, 2);
    if (status == 0) run_call(c);
    return status;
}

static int submit(const Call& c) {
    if (c.h == nullptr) return 1;  // CUBLAS_STATUS_NOT_INITIALIZED
    if (c.m < 0 || c.n < 0 || c.k < 0 || c.batch < 0) return 7;  // CUBLAS_STATUS_INVALID_VALUE
    int rowsA = c.ta ? c.k : c.m, rowsB = c.tb ? c.n : c.k;
    if (c.lda < (rowsA > 1 ? rowsA : 1) || c.ldb < (rowsB > 1 ? rowsB : 1) || c.ldc < (c.m > 1 ? c.m : 1)) return 7;
    if (int status = checked(c, 1)) return status;
    for (void* s : capturing) if (s == c.h->stream) {
        calls.push_back(c);
        if (recorder) recorder((int)calls.size() - 1);
        run_call(c);  // run too, as the stand-in runs every captured op (then restores)
        return 0;
    }
    run_call(c);
    return 0;
}

extern "C" {
int cublasCreate_v2(Handle** h) { *h = new Handle(); return 0; }
int cublasDestroy_v2(Handle* h) { delete h; return 0; }
int cublasSetStream_v2(Handle* h, void* s) { h->stream = s; return 0; }
int cublasSetWorkspace_v2(Handle* h, void* w, size_t n) {
    void* pointers[1] = {w};
    long long bytes[1] = {(long long)n};
    if (checking && checker && checker(0, h, pointers, bytes)) return 14;
    h->workspace = w; h->ws = n; return 0;
}
int cublasSetMathMode(Handle* h, int m) { if (m != 0 && m != 3) return 7; h->math = m; return 0; }
int cublasSgemm_v2(Handle* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
    return submit({false, h, ta, tb, m, n, k, *alpha, *beta, A, lda, 0, B, ldb, 0, C, ldc, 0, 1, h ? h->math : 0});
}
int cublasDgemm_v2(Handle* h, int ta, int tb, int m, int n, int k, const double* alpha, const double* A, int lda,
                   const double* B, int ldb, const double* beta, double* C, int ldc) {
    return submit({true, h, ta, tb, m, n, k, *alpha, *beta, A, lda, 0, B, ldb, 0, C, ldc, 0, 1, h ? h->math : 0});
}
int cublasSgemmStridedBatched(Handle* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A,
                              int lda, long long sa, const float* B, int ldb, long long sb, const float* beta,
                              float* C, int ldc, long long sc, int batch) {
    return submit({false, h, ta, tb, m, n, k, *alpha, *beta, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, h ? h->math : 0});
}
int cublasDgemmStridedBatched(Handle* h, int ta, int tb, int m, int n, int k, const double* alpha, const double* A,
                              int lda, long long sa, const double* B, int ldb, long long sb, const double* beta,
                              double* C, int ldc, long long sc, int batch) {
    return submit({true, h, ta, tb, m, n, k, *alpha, *beta, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, h ? h->math : 0});
}
}
