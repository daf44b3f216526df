import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Control of the GEMM libraries' threads: OpenBLAS's own pool (the pthreads that
/// `cblas_sgemm` runs on) and oneDNN's OpenMP threads.
///
/// `set` is the process-wide default, read once by a `Detector` made without a thread count. A
/// detector then applies its own count before each forward pass (`applyToOpenMP(_:)`) and holds
/// OpenBLAS's through it (`withOpenBLAS(threads:_:)`), so what runs is what it was made with.
public enum BLASThreads {
    private static let requested = LockedInt(0)

    /// Sets the number of GEMM threads (clamped to >= 1): OpenBLAS's as soon as no caller holds
    /// another count (`withOpenBLAS`; the count is process-wide), oneDNN's for the OpenMP regions
    /// of each thread that calls `applyToOpenMP` afterwards, and the default of detectors made
    /// afterwards. Call it while no GEMM is running (e.g. at engine load).
    public static func set(_ n: Int) {
        lease.acquire(max(1, n))
        lease.release()
        requested.store(max(1, n))
    }

    /// The GEMM threads a caller that names none gets: the count given to `set`, else the
    /// library's own default (oneDNN: libgomp's, `OMP_NUM_THREADS` or one per core, within
    /// `OMP_THREAD_LIMIT`; OpenBLAS: its pool's size). At least 1. Callable from any thread.
    public static func defaultCount(onOpenMP: Bool) -> Int {
        let requested = requested.load()
        if requested > 0 { return requested }
        if onOpenMP, let maxThreads = OpenMP.maxThreads { return max(1, Int(maxThreads())) }
        return max(1, current)
    }

    /// Makes the calling thread's OpenMP regions (oneDNN's, and the engine's loops when they run
    /// on OpenMP) use `n` threads, never more than `OMP_THREAD_LIMIT`. OpenMP keeps the count
    /// per thread, and oneDNN plans each primitive for it when the primitive is made and assumes
    /// it gets that many threads when it runs (with fewer, it silently skips work: measured with
    /// `OMP_THREAD_LIMIT=1`), so both the thread that makes a `Detector` and the one that runs
    /// it call this with the detector's count (`Detector` does). Cheap; callable from any thread.
    public static func applyToOpenMP(_ n: Int) {
        guard let setThreads = OpenMP.setThreads, let maxThreads = OpenMP.maxThreads else { return }
        var n = max(1, n)
        if let limit = OpenMP.threadLimit?(), limit > 0 { n = min(n, Int(limit)) }
        if n != Int(maxThreads()) { setThreads(Int32(clamping: n)) }
    }

    /// `applyToOpenMP(_:)` with `defaultCount(onOpenMP: true)`.
    public static func applyToOpenMP() { applyToOpenMP(defaultCount(onOpenMP: true)) }

    /// Runs `body` with OpenBLAS's pool at `n` threads. OpenBLAS has one process-wide count,
    /// and the same GEMM gives other last bits with another one (measured: 1 against 2 threads),
    /// so callers with the same count run together and one with another count waits until
    /// they are done: a `Detector` holds this through each forward pass, and its output stays
    /// bit-identical run after run even beside detectors with other counts. Blocks; callable
    /// from any thread; `body` must not wait for a caller with another count.
    public static func withOpenBLAS<T>(threads n: Int, _ body: () throws -> T) rethrows -> T {
        lease.acquire(max(1, n))
        defer { lease.release() }
        return try body()
    }

    private static let lease = OpenBLASLease()

    /// The number of OpenBLAS threads (`openblas_get_num_threads`). Callable from any thread.
    public static var current: Int {
        Int(openblas_get_num_threads())
    }
}

/// Thin wrapper over row-major `cblas_sgemm`.
public enum GEMM {
    /// C = alpha * op(A) * op(B) + beta * C, all row-major; op(A) is m×k, op(B) is k×n, C is
    /// m×n with leading dimension `ldc`. With beta 0 the old contents of C are ignored.
    /// Synchronous; callable from any thread, reentrant given a C disjoint from other calls.
    public static func multiply(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        require(m >= 0 && n >= 0 && k >= 0, "GEMM: negative size m=\(m) n=\(n) k=\(k)")
        require(lda >= max(1, transposeA ? m : k), "GEMM: lda \(lda) too small")
        require(ldb >= max(1, transposeB ? k : n), "GEMM: ldb \(ldb) too small")
        require(ldc >= max(1, n), "GEMM: ldc \(ldc) too small for n=\(n)")
        require(max(m, n, k, lda, ldb, ldc) <= Int(Int32.max), "GEMM: size exceeds 32-bit BLAS int")
        guard m > 0 && n > 0 else { return }
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha,
                    a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}

/// The holders of OpenBLAS's thread count (`BLASThreads.withOpenBLAS`): any number at one count,
/// none at another meanwhile. The mutex and condition live on the heap, so they never move.
final class OpenBLASLease: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var holders = 0
    private var count = 0   // what the lease last gave OpenBLAS; 0 before the first

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        changed.initialize(to: pthread_cond_t())
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        changed.deallocate()
        mutex.deallocate()
    }

    /// Waits until no holder has another count, then sets OpenBLAS to `n` and holds it.
    func acquire(_ n: Int) {
        pthread_mutex_lock(mutex)
        while holders > 0 && count != n { pthread_cond_wait(changed, mutex) }
        // Only when it changes: the holders that share the count may be in a GEMM right now.
        if count != n {
            openblas_set_num_threads(Int32(clamping: n))
            count = n
        }
        holders += 1
        pthread_mutex_unlock(mutex)
    }

    /// Lets go; the last holder wakes the waiters.
    func release() {
        pthread_mutex_lock(mutex)
        holders -= 1
        if holders == 0 { pthread_cond_broadcast(changed) }
        pthread_mutex_unlock(mutex)
    }
}
