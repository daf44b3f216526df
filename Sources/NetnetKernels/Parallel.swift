import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An `Int` behind a pthread mutex (the `Synchronization` module's `Atomic` needs macOS 15; the
/// package supports macOS 14). The mutex lives on the heap, so it never moves.
final class LockedInt: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Int

    init(_ value: Int) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func load() -> Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return value
    }

    func store(_ newValue: Int) {
        pthread_mutex_lock(mutex)
        value = newValue
        pthread_mutex_unlock(mutex)
    }

    /// Adds one; returns the value before.
    func increment() -> Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        value += 1
        return value - 1
    }
}

/// The process-wide default of the kernels' `KernelTeam` (`KernelTeam.current`): how many
/// threads the memory-bound kernels of this module (im2col, epilogues, pooling, element-wise
/// ops, …) split their work over when the caller passes no team. A `Detector` reads it once, at
/// load, unless it is given its threads. Independent of `BLASThreads`, which governs the GEMM
/// libraries' threads.
///
/// Callable from any thread; the value is read under a lock.
public enum KernelThreads {
    private static let storage = LockedInt(KernelThreads.onlineProcessors)

    /// The number of processors online now (at least 1); the default of `current`.
    /// Callable from any thread.
    public static var onlineProcessors: Int {
        #if canImport(Glibc) || canImport(Darwin)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }

    /// Sets the number of threads kernels may use (clamped to at least 1). 1 makes every kernel
    /// run entirely on the calling thread. Callable from any thread; takes effect on the next
    /// kernel call.
    public static func set(_ n: Int) {
        storage.store(max(1, n))
    }

    /// The number of threads kernels currently use (defaults to the online processor count).
    /// Callable from any thread.
    public static var current: Int {
        storage.load()
    }

    private static let openMPStorage = LockedInt(0)

    /// Whether kernel calls without a team of their own (`KernelTeam.current`) run their loops
    /// on libgomp's OpenMP threads (oneDNN's) instead of Dispatch's. Process-wide, off by default;
    /// a `Detector` does not use it (its steps hold their own team). Silently stays on Dispatch
    /// where libgomp is not loaded. Callable from any thread; takes effect on the next kernel call.
    public static func runOnOpenMP(_ on: Bool) {
        openMPStorage.store(on && OpenMP.isLoaded ? 1 : 0)
    }

    /// Whether `runOnOpenMP(true)` is in effect.
    public static var onOpenMP: Bool { openMPStorage.load() != 0 }
}

/// The threads one kernel call may split its work over: how many, and on which pool (libgomp's
/// OpenMP threads, the ones oneDNN's matmuls run on, or Dispatch's). A plain value, usable from
/// any thread: a `Detector` fixes one at load and hands it to every kernel call it makes, so no
/// kernel reads a process-wide setting while a frame runs.
public struct KernelTeam: Sendable, Equatable {
    /// The most threads a call uses (at least 1; 1 runs it on the calling thread).
    public let threads: Int
    /// Whether the work runs on libgomp's OpenMP threads (only where libgomp is loaded, as with
    /// oneDNN; elsewhere it runs on Dispatch's).
    public let onOpenMP: Bool

    /// A team of `threads` (clamped to at least 1), on OpenMP if asked and libgomp is loaded.
    public init(threads: Int, onOpenMP: Bool) {
        self.threads = max(1, threads)
        self.onOpenMP = onOpenMP && OpenMP.isLoaded
    }

    /// One thread: the caller's.
    public static let single = KernelTeam(threads: 1, onOpenMP: false)

    /// The process-wide settings now (`KernelThreads.current`, `KernelThreads.onOpenMP`): the
    /// default of the kernels' `team` parameters, for callers that do not choose one (tests,
    /// benchmarks). Callable from any thread.
    public static var current: KernelTeam {
        KernelTeam(threads: KernelThreads.current, onOpenMP: KernelThreads.onOpenMP)
    }
}

/// A box that lets a closure or pointer cross into `concurrentPerform`'s `@Sendable` closure.
/// Sound here because every use hands each concurrent iteration a disjoint range of the
/// buffers it writes, and `concurrentPerform` returns only when all iterations are done.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

/// Runs `body` over `0..<count`, split into at most `team.threads` contiguous chunks, each of
/// at least `minimumChunk` items (so small jobs stay on the calling thread), on the team's pool.
/// Blocks until every chunk is done. `body` must only write state owned by its range.
@inline(__always)
func parallelChunks(count: Int, minimumChunk: Int, team: KernelTeam, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = min(team.threads, max(1, count / max(1, minimumChunk)))
    if threads <= 1 {
        body(0..<count)
        return
    }
    withoutActuallyEscaping(body) { escapable in
        if team.onOpenMP, let parallel = OpenMP.parallel {
            var job = OpenMP.Job(body: escapable, count: count, threads: threads)
            withUnsafeMutablePointer(to: &job) { parallel(OpenMP.runJob, UnsafeMutableRawPointer($0), UInt32(threads), 0) }
            return
        }
        let box = UncheckedSendable(value: escapable)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let start = count * t / threads
            let end = count * (t + 1) / threads
            if start < end { box.value(start..<end) }
        }
    }
}

/// libgomp's entry points, found at run time (oneDNN, linked for the bf16 path, brings libgomp
/// into the process). Running the engine's own loops on the same OpenMP threads as oneDNN's
/// matmuls keeps one pool busy instead of two fighting over 2 cores: after each matmul libgomp's
/// workers spin-wait, and Dispatch threads started meanwhile ran up to 25 % slower (measured on
/// NETNet-300 bf16: 187 ms a frame with Dispatch, 150 ms with `OMP_WAIT_POLICY=passive`).
enum OpenMP {
    typealias Parallel = @convention(c) (@convention(c) (UnsafeMutableRawPointer?) -> Void,
                                         UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias ThreadNumber = @convention(c) () -> Int32

    /// `GOMP_parallel(fn, data, threads, flags)`: runs `fn(data)` on `threads` threads (the
    /// caller among them) and returns when all are done. nil when libgomp is not loaded.
    static let parallel: Parallel? = symbol("GOMP_parallel").map { unsafeBitCast($0, to: Parallel.self) }
    /// `omp_get_thread_num()`: the calling thread's index inside a parallel region.
    static let threadNumber: ThreadNumber? = symbol("omp_get_thread_num").map { unsafeBitCast($0, to: ThreadNumber.self) }
    /// `omp_get_num_threads()`: the size of the team actually running the region.
    static let teamSize: ThreadNumber? = symbol("omp_get_num_threads").map { unsafeBitCast($0, to: ThreadNumber.self) }
    typealias SetThreads = @convention(c) (Int32) -> Void
    /// `omp_get_max_threads()`: the calling thread's default team size.
    static let maxThreads: ThreadNumber? = symbol("omp_get_max_threads").map { unsafeBitCast($0, to: ThreadNumber.self) }
    /// `omp_get_thread_limit()`: `OMP_THREAD_LIMIT`, the most threads any team may have.
    static let threadLimit: ThreadNumber? = symbol("omp_get_thread_limit").map { unsafeBitCast($0, to: ThreadNumber.self) }
    /// `omp_set_num_threads(n)`: the calling thread's default team size from now on.
    static let setThreads: SetThreads? = symbol("omp_set_num_threads").map { unsafeBitCast($0, to: SetThreads.self) }

    /// Whether libgomp's entry points the kernels need are all there.
    static var isLoaded: Bool { parallel != nil && threadNumber != nil && teamSize != nil }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        #if canImport(Glibc)
        return dlsym(nil, name)   // nil: RTLD_DEFAULT, every object loaded so far
        #else
        return nil
        #endif
    }

    /// What one parallel region runs: `threads` contiguous chunks of `0..<count`.
    struct Job {
        let body: (Range<Int>) -> Void
        let count: Int
        let threads: Int
    }

    /// The region's function: thread t of a team of n runs chunks t, t + n, … of the `Job` that
    /// `data` points to. libgomp may give fewer threads than asked (`OMP_THREAD_LIMIT`,
    /// `OMP_DYNAMIC`); every chunk still runs.
    static let runJob: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
        guard let job = data?.assumingMemoryBound(to: Job.self).pointee else { return }
        let team = max(1, Int(OpenMP.teamSize?() ?? 1))
        var t = Int(OpenMP.threadNumber?() ?? 0)
        while t < job.threads {
            let start = job.count * t / job.threads, end = job.count * (t + 1) / job.threads
            if start < end { job.body(start..<end) }
            t += team
        }
    }
}

/// Argument check that survives `-Ounchecked` (where `precondition` is compiled out and
/// `preconditionFailure` becomes undefined behaviour): traps with `message` when `condition` is
/// false. Used only for per-call argument checks, never inside hot loops.
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError(message(), file: file, line: line) }
}
