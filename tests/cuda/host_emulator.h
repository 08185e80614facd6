// A CPU stand-in for the little of CUDA that backends/softmax_kernels.cu uses,
// so the tests can run the kernels' own source without a GPU (g++ -std=c++20).
//
// One std::thread per CUDA thread of a block; blocks run one after another, so a
// function-local `static` is a fine __shared__. __syncthreads is a barrier of
// the block, __shfl_xor_sync a barrier-fenced exchange within the warp.
// Arithmetic is the host's IEEE float/double (expf & co. differ from CUDA's
// by an ulp or so), without flush-to-zero. What this cannot show: speed,
// memory coalescing, races the barriers happen to hide, NVRTC itself.
#pragma once
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct Dim { unsigned x = 0, y = 1, z = 1; };
static thread_local Dim threadIdx, blockIdx;
static Dim blockDim, gridDim;

struct Warp {
    std::unique_ptr<std::barrier<>> sync;
    unsigned char slot[32][16];
};
static std::barrier<>* block_sync;
static std::vector<Warp> warps;

inline void __syncthreads() { block_sync->arrive_and_wait(); }

template <typename V>
V __shfl_xor_sync(unsigned, V v, int lane_mask) {
    static_assert(sizeof(V) <= 16, "shuffle slot too small");
    Warp& w = warps[threadIdx.x / 32];
    const unsigned lane = threadIdx.x % 32;
    std::memcpy(w.slot[lane], &v, sizeof(V));
    w.sync->arrive_and_wait();
    V other;
    std::memcpy(&other, w.slot[lane ^ lane_mask], sizeof(V));
    w.sync->arrive_and_wait();  // nobody overwrites a slot before its reader is done
    return other;
}

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }

#define SOFTMAX_HOST_HALF
typedef unsigned short half_bits;
inline float half_to_float(half_bits v) { _Float16 h; std::memcpy(&h, &v, 2); return (float)h; }
inline half_bits float_to_half(float v) { _Float16 h = (_Float16)v; half_bits b; std::memcpy(&b, &h, 2); return b; }

typedef void (*Kernel)(const void*, void*, long long, int);

// kernel<<<grid, block>>>(x, y, n, vec), one block at a time: `block` threads
// run every block in turn, meeting at a barrier before the next one starts.
extern "C" void emulate_launch(Kernel kernel, unsigned grid, unsigned block, const void* x, void* y, long long n, int vec) {
    blockDim.x = block;
    gridDim.x = grid;
    warps = std::vector<Warp>((block + 31) / 32);
    for (Warp& w : warps) w.sync = std::make_unique<std::barrier<>>(32);
    std::barrier<> bar(block);
    block_sync = &bar;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t)
        threads.emplace_back([=, &bar] {
            threadIdx.x = t;
            for (unsigned b = 0; b < grid; ++b) {
                blockIdx.x = b;
                kernel(x, y, n, vec);
                bar.arrive_and_wait();
            }
        });
    for (auto& th : threads) th.join();
}
