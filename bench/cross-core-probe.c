// What it costs two cores of this machine to share data, right now: the round trip of a
// two-thread spin barrier, and the bandwidth at which one core reads 1 MiB the other has just
// written (and, for comparison, memory it wrote itself). On this project's VM the two vCPUs
// sometimes share a cache (barrier ~100 ns, ~60 GB/s) and sometimes sit on different dies
// (~400 ns, ~20 GB/s) for seconds at a time, which changes how fast multi-threaded inference
// runs; the benchmark scripts print this before each round so that the figures can be read
// with it (docs/performance.md). Last, both cores at once read 8 MiB each that they wrote
// themselves: about what the last-level cache holds, which other tenants of the host can
// crowd (usually ~90–110 GB/s here, sometimes ~50–70).
//   cc -O2 -pthread -o probe bench/cross-core-probe.c && ./probe
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { barrierRounds = 20000, copyRounds = 30, bytes = 1 << 20, cacheBytes = 8 << 20, cacheRounds = 5 };

static _Alignas(64) atomic_int phase;
static _Alignas(64) atomic_int arrived;
static float *buffers[2], *cacheBuffers[2];
static double barrierSeconds, crossSeconds, ownSeconds, cacheSeconds[2];
static volatile float sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// A sense-reversing barrier for exactly two threads.
static void meet(int *local) {
    int mine = *local;
    if (atomic_fetch_add(&arrived, 1) == 1) {
        atomic_store(&arrived, 0);
        atomic_store(&phase, mine + 1);
    } else {
        while (atomic_load(&phase) == mine) {}
    }
    *local = mine + 1;
}

static float sum(const float *values, size_t count) {
    float total = 0;
    for (size_t i = 0; i < count; i += 16) total += values[i];   // one read per cache line
    return total;
}

static void *run(void *argument) {
    long id = (long)argument;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)id, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    int local = 0;
    size_t count = bytes / sizeof(float);
    meet(&local);
    double start = now();
    for (int i = 0; i < barrierRounds; i++) meet(&local);
    if (id == 0) barrierSeconds = (now() - start) / barrierRounds;
    double cross = 0, own = 0;
    for (int round = 0; round < copyRounds; round++) {
        float *mine = buffers[id], *other = buffers[1 - id];
        for (size_t i = 0; i < count; i++) mine[i] = (float)(i + round);
        meet(&local);
        start = now();
        sink = sum(other, count);
        cross += now() - start;
        meet(&local);
        for (size_t i = 0; i < count; i++) mine[i] = (float)(i + round + 1);
        start = now();
        sink = sum(mine, count);
        own += now() - start;
        meet(&local);
    }
    if (id == 0) { crossSeconds = cross / copyRounds; ownSeconds = own / copyRounds; }
    size_t cacheCount = cacheBytes / sizeof(float);
    for (size_t i = 0; i < cacheCount; i++) cacheBuffers[id][i] = (float)i;
    meet(&local);
    start = now();
    for (int round = 0; round < cacheRounds; round++) sink = sum(cacheBuffers[id], cacheCount);
    cacheSeconds[id] = now() - start;
    meet(&local);
    return NULL;
}

int main(void) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("one core online: nothing to probe\n");   // two spinning threads on one core would take minutes
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        buffers[i] = aligned_alloc(64, bytes);
        cacheBuffers[i] = aligned_alloc(64, cacheBytes);
        if (!buffers[i] || !cacheBuffers[i]) { perror("cross-core-probe: aligned_alloc"); return 1; }
    }
    pthread_t threads[2];
    for (long i = 0; i < 2; i++) {
        if (pthread_create(&threads[i], NULL, run, (void *)i) != 0) { perror("cross-core-probe: pthread_create"); return 1; }
    }
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    double slower = cacheSeconds[0] > cacheSeconds[1] ? cacheSeconds[0] : cacheSeconds[1];
    printf("barrier %.0f ns, cross-core read %.0f GB/s, own read %.0f GB/s, 2 x 8 MiB read %.0f GB/s\n",
           barrierSeconds * 1e9, bytes / crossSeconds / 1e9, bytes / ownSeconds / 1e9,
           2.0 * cacheBytes * cacheRounds / slower / 1e9);
    for (int i = 0; i < 2; i++) { free(buffers[i]); free(cacheBuffers[i]); }
    return 0;
}
