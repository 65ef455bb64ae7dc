/*
 * The fp32 FMA peak a C compiler reaches on this machine, at a given vector width: the yardstick `bench kernels`
 * sets beside the Java Vector API's own FMA loop (FmaPeak.java). Each thread runs 12 independent accumulators of
 * vector fused multiply-adds (enough to cover the FMA latency on two ports), as FmaPeak does.
 *
 *   gcc -O2 -march=native -fopenmp -DWIDTH=64 fma_peak.c -o fma_peak          (512-bit)
 *   gcc -O2 -march=native -mno-avx512f -fopenmp -DWIDTH=32 fma_peak.c ...     (256-bit, AVX2's 16 registers)
 *   gcc -O2 -march=native -mno-avx512f -fopenmp -DWIDTH=16 fma_peak.c ...     (128-bit)
 *   ./fma_peak THREADS ITERS   → prints "GFLOP/s <best of 5 runs>"
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef WIDTH
#define WIDTH 32
#endif
typedef float vf __attribute__((vector_size(WIDTH)));
#define LANES (WIDTH / 4)

static float loop(long iters) {
    vf x, y, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int i = 0; i < LANES; i++) { x[i] = 0.999999f; y[i] = 1e-7f; a0[i] = 1.0f; }
    /* distinct starts, or the compiler folds accumulators that provably hold the same value */
    a1 = a0 + 0.01f; a2 = a0 + 0.02f; a3 = a0 + 0.03f; a4 = a0 + 0.04f; a5 = a0 + 0.05f;
    a6 = a0 + 0.06f; a7 = a0 + 0.07f; a8 = a0 + 0.08f; a9 = a0 + 0.09f; a10 = a0 + 0.10f; a11 = a0 + 0.11f;
    for (long i = 0; i < iters; i++) {
        a0 = a0 * x + y; a1 = a1 * x + y; a2 = a2 * x + y; a3 = a3 * x + y;
        a4 = a4 * x + y; a5 = a5 * x + y; a6 = a6 * x + y; a7 = a7 * x + y;
        a8 = a8 * x + y; a9 = a9 * x + y; a10 = a10 * x + y; a11 = a11 * x + y;
        /* keeps every accumulator a live register value the compiler cannot merge or hoist */
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    vf s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    float t = 0;
    for (int i = 0; i < LANES; i++) t += s[i];
    return t;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    long iters = argc > 2 ? atol(argv[2]) : 20000000L;
    double best = 0;
    float sink = 0;
    for (int run = 0; run < 6; run++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += loop(iters);
        double sec = omp_get_wtime() - t0;
        double gflops = (double)threads * iters * 12 * 2 * LANES / sec / 1e9;
        if (run > 0 && gflops > best) best = gflops; /* run 0 wakes the threads and the clocks */
    }
    if (sink != sink) return 1;
    printf("GFLOP/s %.1f\n", best);
    return 0;
}
