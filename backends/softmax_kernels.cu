// Row-wise softmax and log_softmax kernels for the cupy-maxshift and cupy-online
// backends (loaded by _cuda_softmax.py through cupy.RawModule, i.e. NVRTC).
//
// One block per row; every pass is a block-stride loop over the row, so any
// width works and a row that does not fit on chip is simply streamed again
// (a re-read hits L2 while the rows in flight fit there, DRAM otherwise).
//
//   maxshift  three reads: max pass, sum pass, write pass. Blanchard, Higham &
//             Higham (2021): s is the sum of exp(x - max) WITHOUT the max term,
//             softmax = exp(x - max) / (1 + s), log_softmax = (x - max) - log1p(s).
//   online    two reads: one pass keeps a running max m and a sum s rescaled
//             whenever m grows (Milakov & Gimelshein 2018), then the write pass.
//
// -inf, +inf and NaN give exactly what the NumPy `max-shift` and `online`
// backends give (see the comments at each step); an all -inf row gives NaN.
//
// Storage types: float, double, and float16 as raw 16-bit words converted with
// PTX cvt (so no cuda_fp16.h: NVRTC has no system headers, and nvcc sees the
// very same source). Half is computed in float32 and rounded once on store.
// The file includes nothing; the kernels are extern "C" so that Python finds
// them by name: <variant>_<op>_<f32|f64|f16>.

typedef unsigned short half_bits;

// ---------------------------------------------------------------- arithmetic

__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return exp(v); }
__device__ __forceinline__ float log_(float v) { return logf(v); }
__device__ __forceinline__ double log_(double v) { return log(v); }
__device__ __forceinline__ float log1p_(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_(double v) { return log1p(v); }

template <typename A> __device__ __forceinline__ A neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ULL); }

// The accumulation type of each storage type, and the conversions.
template <typename T> struct Acc;
template <> struct Acc<float> { typedef float type; };
template <> struct Acc<double> { typedef double type; };
template <> struct Acc<half_bits> { typedef float type; };

// The host emulator in tests/ (which runs this file on a CPU) brings its own.
#ifndef SOFTMAX_HOST_HALF
__device__ __forceinline__ float half_to_float(half_bits v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
}
__device__ __forceinline__ half_bits float_to_half(float v) {  // round to nearest even
    half_bits h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}
#endif

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(half_bits v) { return half_to_float(v); }

template <typename T> __device__ __forceinline__ T from_acc(typename Acc<T>::type v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ half_bits from_acc<half_bits>(float v) { return float_to_half(v); }

__device__ __forceinline__ float max_(float a, float b) { return fmaxf(a, b); }  // ignores NaN
__device__ __forceinline__ double max_(double a, double b) { return fmax(a, b); }

// ---------------------------------------------------------------- row access

// 16 bytes of a row: 4 floats, 2 doubles or 8 halves, loaded in one access.
template <typename T> struct alignas(16) Pack {
    static const int size = 16 / sizeof(T);
    T v[size];
};

// Calls f(x) for each element of the row this thread owns. Consecutive threads
// take consecutive elements (or 16-byte packs when `vec`: the caller checked
// that the row starts 16-byte aligned and its width is a whole number of packs).
template <typename T, typename F>
__device__ __forceinline__ void for_each(const T* row, long long n, bool vec, F f) {
    if (vec) {
        const Pack<T>* packs = reinterpret_cast<const Pack<T>*>(row);
        const long long count = n / Pack<T>::size;
#pragma unroll 4
        for (long long p = threadIdx.x; p < count; p += blockDim.x) {
            const Pack<T> pk = packs[p];
#pragma unroll
            for (int k = 0; k < Pack<T>::size; ++k) f(to_acc(pk.v[k]));
        }
    } else {
        for (long long i = threadIdx.x; i < n; i += blockDim.x) f(to_acc(row[i]));
    }
}

// out[i] = g(x[i]) over the row, with the same ownership (and packs) as for_each.
template <typename T, typename G>
__device__ __forceinline__ void map_row(const T* in, T* out, long long n, bool vec, G g) {
    typedef typename Acc<T>::type A;
    if (vec) {
        const Pack<T>* src = reinterpret_cast<const Pack<T>*>(in);
        Pack<T>* dst = reinterpret_cast<Pack<T>*>(out);
        const long long count = n / Pack<T>::size;
#pragma unroll 4
        for (long long p = threadIdx.x; p < count; p += blockDim.x) {
            Pack<T> pk = src[p];
#pragma unroll
            for (int k = 0; k < Pack<T>::size; ++k) pk.v[k] = from_acc<T>(g(to_acc(pk.v[k])));
            dst[p] = pk;
        }
    } else {
        for (long long i = threadIdx.x; i < n; i += blockDim.x) out[i] = from_acc<T>(g(to_acc(in[i])));
    }
}

// ---------------------------------------------------------------- reductions

template <typename A> struct MaxSum { A m, s; };    // online: running max, sum of exp(x - m)
template <typename A> struct RestTies { A rest, ties; };  // maxshift: sum without the max terms, count of max terms

__device__ __forceinline__ float shfl_xor(float v, int lane) { return __shfl_xor_sync(0xffffffffu, v, lane); }
__device__ __forceinline__ double shfl_xor(double v, int lane) { return __shfl_xor_sync(0xffffffffu, v, lane); }
template <typename A> __device__ __forceinline__ MaxSum<A> shfl_xor(MaxSum<A> v, int lane) {
    MaxSum<A> r = {shfl_xor(v.m, lane), shfl_xor(v.s, lane)};
    return r;
}
template <typename A> __device__ __forceinline__ RestTies<A> shfl_xor(RestTies<A> v, int lane) {
    RestTies<A> r = {shfl_xor(v.rest, lane), shfl_xor(v.ties, lane)};
    return r;
}

template <typename V, typename Op>
__device__ __forceinline__ V warp_reduce(V v, Op op) {
#pragma unroll
    for (int lane = 16; lane > 0; lane >>= 1) v = op(v, shfl_xor(v, lane));
    return v;
}

// Reduce one value per thread over the block; every thread gets the result.
// blockDim.x must be a multiple of 32 (the launcher uses powers of two >= 32).
// Each warp reduces in registers, then every warp reduces the warp partials
// itself, which spares a broadcast through shared memory.
template <typename V, typename Op>
__device__ __forceinline__ V block_reduce(V v, Op op, V identity) {
    __shared__ V partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();  // the previous reduction in this kernel has finished reading `partial`
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    return warp_reduce(lane < warps ? partial[lane] : identity, op);
}

// ---------------------------------------------------------------- max-shift

template <typename T, bool LOG>
__device__ __forceinline__ void maxshift_row(const T* x, T* y, long long n, bool vec) {
    typedef typename Acc<T>::type A;
    // Pass 1: the max. fmax skips NaN; a NaN still reaches the sum in pass 2
    // (exp(NaN - m) is NaN), which makes the whole row NaN as in NumPy.
    A m = neg_inf<A>();
    for_each(x, n, vec, [&](A v) { m = max_(m, v); });
    m = block_reduce(m, [](A a, A b) { return max_(a, b); }, neg_inf<A>());

    // Pass 2: exp(x - m) summed over the elements below the max, and the number
    // of elements equal to it (their terms are exactly 1 when m is finite).
    RestTies<A> t = {A(0), A(0)};
    for_each(x, n, vec, [&](A v) {
        if (v == m) t.ties += A(1);
        else t.rest += exp_(v - m);  // NaN lands here: rest is NaN
    });
    t = block_reduce(t, [](RestTies<A> a, RestTies<A> b) {
        RestTies<A> r = {a.rest + b.rest, a.ties + b.ties};
        return r;
    }, RestTies<A>{A(0), A(0)});
    // s leaves out one max term; the other ties add exp(m - m): 1, or NaN when
    // the max is infinite. So, as in NumPy's max-shift, one +inf gives a one-hot
    // row, two give NaN, and an all -inf row (n > 1) gives NaN.
    const A s = t.rest + (t.ties > A(1) ? (t.ties - A(1)) * exp_(m - m) : A(0));

    // Pass 3: write.
    if (LOG) {
        const A lse = log1p_(s);  // keeps log_softmax([0, -20]) = -2.06e-9, which log(1 + s) rounds to 0
        map_row(x, y, n, vec, [=](A v) { return (v - m) - lse; });
    } else {
        const A d = A(1) + s;
        map_row(x, y, n, vec, [=](A v) { return (v == m ? A(1) : exp_(v - m)) / d; });
    }
}

// ---------------------------------------------------------------- online

// The shift used with a running max: 0 while the max is still -inf, so that
// exp(-inf - shift) is 0 and exp(-inf - (-inf)) = NaN is never computed.
template <typename A> __device__ __forceinline__ A safe_shift(A m) { return m == neg_inf<A>() ? A(0) : m; }

// Add one value to a thread's running (m, s). One exp per element: the
// rescale exp(m - v) runs only when the max grows, a few times per row.
template <typename A> __device__ __forceinline__ void online_add(MaxSum<A>& r, A v) {
    if (v > r.m) {
        // exp(r.m - v) is 0 while r.m = -inf (never NaN: v > r.m). exp(v - v) is
        // 1, or NaN for v = +inf, which makes the row NaN as NumPy's online does.
        r.s = r.s * exp_(r.m - v) + exp_(v - v);
        r.m = v;
    } else if (v != neg_inf<A>()) {
        r.s += exp_(v - r.m);  // NaN v, or v = r.m = +inf, make s NaN
    }  // v = -inf adds exactly 0: skipped, which also avoids exp(-inf - (-inf))
}

// Merge two running (m, s) pairs; both shifts are <= 0, so nothing overflows.
template <typename A> __device__ __forceinline__ MaxSum<A> online_combine(MaxSum<A> a, MaxSum<A> b) {
    const A m = a.m > b.m ? a.m : b.m;
    const A shift = safe_shift(m);
    MaxSum<A> r = {m, a.s * exp_(a.m - shift) + b.s * exp_(b.m - shift)};
    return r;
}

template <typename T, bool LOG>
__device__ __forceinline__ void online_row(const T* x, T* y, long long n, bool vec) {
    typedef typename Acc<T>::type A;
    // Pass 1: running max and rescaled sum, then the block-wide merge.
    MaxSum<A> r = {neg_inf<A>(), A(0)};
    for_each(x, n, vec, [&](A v) { online_add(r, v); });
    r = block_reduce(r, [](MaxSum<A> a, MaxSum<A> b) { return online_combine(a, b); }, MaxSum<A>{neg_inf<A>(), A(0)});

    // Pass 2: write. An all -inf row has m = -inf, s = 0: 0 / 0 = NaN, like torch.
    const A shift = safe_shift(r.m), s = r.s;
    if (LOG) {
        // (x - m) - log s, not x - (m + log s): rounding m + log s costs |m| ulps
        // (log_softmax([1e8, 1e8]) in float32 would be 0, not -0.693).
        const A log_s = log_(s);
        map_row(x, y, n, vec, [=](A v) { return (v - shift) - log_s; });
    } else {
        map_row(x, y, n, vec, [=](A v) { return exp_(v - shift) / s; });
    }
}

// ---------------------------------------------------------------- entry points

// x and y are `rows` contiguous rows of n elements; grid = rows, block = a power
// of two in [32, 1024]. `vec`: x and y are 16-byte aligned and n * sizeof(T) is
// a multiple of 16, so every row can be read and written in 16-byte packs.
#define SOFTMAX_KERNEL(VARIANT, OP, LOG, SUFFIX, T)                                           \
    extern "C" __global__ void __launch_bounds__(1024)                                         \
        VARIANT##_##OP##_##SUFFIX(const T* __restrict__ x, T* __restrict__ y, long long n, int vec) { \
        const long long offset = (long long)blockIdx.x * n;                                    \
        VARIANT##_row<T, LOG>(x + offset, y + offset, n, vec != 0);                            \
    }

#define SOFTMAX_KERNELS(SUFFIX, T)                          \
    SOFTMAX_KERNEL(maxshift, softmax, false, SUFFIX, T)     \
    SOFTMAX_KERNEL(maxshift, log_softmax, true, SUFFIX, T)  \
    SOFTMAX_KERNEL(online, softmax, false, SUFFIX, T)       \
    SOFTMAX_KERNEL(online, log_softmax, true, SUFFIX, T)

SOFTMAX_KERNELS(f32, float)
SOFTMAX_KERNELS(f64, double)
SOFTMAX_KERNELS(f16, half_bits)
