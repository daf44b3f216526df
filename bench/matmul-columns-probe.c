/* Times oneDNN's batched bf16 matmul C[b] = A[b] · B[b] (A m×k, B k×n, C m×n float32, all
 * row-major) for a Winograd layer's shapes, at n and at n rounded up to a multiple of 16: the
 * measurement behind OneDNNConvolution.matmulColumns. One thread; best of 20 runs.
 *
 *   cc -O2 bench/matmul-columns-probe.c -o /tmp/matmul-columns-probe -ldnnl
 *   OMP_NUM_THREADS=1 /tmp/matmul-columns-probe 36 255 25 1024   # batch m n k
 *
 * A fifth argument gives C's row stride (default n; then n alone is timed, not rounded up): an
 * im2col tile written straight into NCHW output has the map's size as its stride, and oneDNN
 * then runs `gemm:jit` instead of its brgemm kernel (docs/performance.md, row bands):
 *   OMP_NUM_THREADS=2 /tmp/matmul-columns-probe 1 64 9000 27 90000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dnnl.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void check(dnnl_status_t status, const char *what) {
    if (status != dnnl_success) {
        fprintf(stderr, "oneDNN: %s failed (status %d)\n", what, (int)status);
        exit(1);
    }
}

static void run(dnnl_engine_t engine, dnnl_stream_t stream, long batch, long m, long n, long k, long ldc) {
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {batch, m, k}, db = {batch, k, n}, dc = {batch, m, n};
    check(dnnl_memory_desc_init_by_tag(&a, 3, da, dnnl_bf16, dnnl_abc), "describe A");
    check(dnnl_memory_desc_init_by_tag(&b, 3, db, dnnl_bf16, dnnl_abc), "describe B");
    dnnl_dims_t sc = {m * ldc, ldc, 1};
    check(dnnl_memory_desc_init_by_strides(&c, 3, dc, dnnl_f32, sc), "describe C");
    dnnl_matmul_desc_t operation;
    check(dnnl_matmul_desc_init(&operation, &a, &b, NULL, &c), "describe the matmul");
    dnnl_primitive_desc_t descriptor;
    check(dnnl_primitive_desc_create(&descriptor, &operation, NULL, engine, NULL), "find a matmul");
    const char *name = "?";
    dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name);
    dnnl_primitive_t primitive;
    check(dnnl_primitive_create(&primitive, descriptor), "create the matmul");
    dnnl_memory_t ma, mb, mc;
    check(dnnl_memory_create(&ma, &a, engine, DNNL_MEMORY_ALLOCATE), "allocate A");
    check(dnnl_memory_create(&mb, &b, engine, DNNL_MEMORY_ALLOCATE), "allocate B");
    check(dnnl_memory_create(&mc, &c, engine, DNNL_MEMORY_ALLOCATE), "allocate C");
    void *handle;
    dnnl_memory_get_data_handle(ma, &handle);
    memset(handle, 0x3c, dnnl_memory_desc_get_size(&a));   /* bf16 1.5-ish: finite, normal */
    dnnl_memory_get_data_handle(mb, &handle);
    memset(handle, 0x3c, dnnl_memory_desc_get_size(&b));
    dnnl_exec_arg_t arguments[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    double best = 1e9;
    for (int r = 0; r < 20; r++) {
        double start = now();
        check(dnnl_primitive_execute(primitive, stream, 3, arguments), "run");
        dnnl_stream_wait(stream);
        double t = now() - start;
        if (t < best) best = t;
    }
    printf("batch %ld  m %ld  n %4ld  k %ld  ldc %ld: %7.3f ms  %5.0f GFLOP/s  %s\n", batch, m, n, k, ldc, best * 1e3,
           2.0 * batch * m * n * k / best / 1e9, name);
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(mc);
    dnnl_primitive_destroy(primitive);
    dnnl_primitive_desc_destroy(descriptor);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s batch m n k [ldc]\n", argv[0]);
        return 2;
    }
    long batch = atol(argv[1]), m = atol(argv[2]), n = atol(argv[3]), k = atol(argv[4]);
    long ldc = argc == 6 ? atol(argv[5]) : n;
    if (batch < 1 || m < 1 || n < 1 || k < 1 || ldc < n) {
        fprintf(stderr, "%s: batch, m, n and k must be positive integers, and ldc at least n\n", argv[0]);
        return 2;
    }
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "create the CPU engine");
    check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "create a stream");
    run(engine, stream, batch, m, n, k, ldc);
    long padded = (n + 15) / 16 * 16;
    if (argc == 5 && padded != n) run(engine, stream, batch, m, padded, k, padded);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
