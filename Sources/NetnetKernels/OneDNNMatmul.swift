import CDNNL
#if canImport(Glibc)
import Glibc
#endif

/// Why a oneDNN path could not be set up. Callers decide on `cause`, never on the text.
public struct OneDNNError: Error, CustomStringConvertible, Sendable {
    /// What stands in oneDNN's way, as far as netnet can tell.
    public enum Cause: Sendable, Equatable {
        /// This process may not map executable memory (systemd's `MemoryDenyWriteExecute=yes`,
        /// `PR_SET_MDWE`, an SELinux `execmem` denial), and oneDNN compiles its kernels at run
        /// time: no primitive can be made, whatever the ISA or the status oneDNN returns.
        case noExecutableMemory
        /// This CPU has no native bf16 matrix multiply (AVX512_BF16 or AMX).
        case noBF16Kernel
        /// Something else: oneDNN's status says what.
        case refused
    }

    /// One line: what failed and oneDNN's status.
    public let description: String
    /// oneDNN's `dnnl_status_t` value, when oneDNN returned one.
    public let status: Int32?
    /// What stands in the way.
    public let cause: Cause

    /// An error saying `description`.
    public init(description: String, status: Int32? = nil, cause: Cause = .refused) {
        self.description = description
        self.status = status
        self.cause = cause
    }

    /// The same error with `context` before its text (cause and status kept).
    public func prefixed(_ context: String) -> OneDNNError {
        OneDNNError(description: "\(context)\(description)", status: status, cause: cause)
    }
}

/// Whether this process may make memory executable, which oneDNN's run-time kernel compiler
/// (Xbyak: a writable buffer, then `mprotect` to executable) needs. Probed once, with one
/// anonymous page; callable from any thread.
public enum ExecutableMemory {
    /// False under systemd's `MemoryDenyWriteExecute=yes` (seccomp: EPERM), `PR_SET_MDWE`
    /// (EACCES) or an SELinux `execmem` denial (EACCES).
    public static let isAllowed: Bool = {
        let size = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let page = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              page != MAP_FAILED else { return true }   // no memory at all is not this question
        defer { munmap(page, size) }
        return mprotect(page, size, PROT_READ | PROT_EXEC) == 0
    }()

    /// Throws `OneDNNError.Cause.noExecutableMemory` unless `isAllowed`.
    static func require() throws(OneDNNError) {
        guard isAllowed else {
            throw OneDNNError(description: "oneDNN \(OneDNNRuntime.libraryVersion) cannot run: \(explanation)", cause: .noExecutableMemory)
        }
    }

    /// The clause every refusal caused by it ends with.
    static let explanation = "this process may not map executable memory, which oneDNN needs to compile its kernels at run time (systemd's MemoryDenyWriteExecute=yes, PR_SET_MDWE, SELinux execmem)"
}

/// A oneDNN CPU engine and one stream: what every `OneDNNMatmul` of one owner runs on. oneDNN
/// (Debian's libdnnl 2.6) serves the bf16 path and, optionally, the fp32 GEMMs
/// (`OneDNNMatmul.Operands`).
///
/// oneDNN's streams are not thread-safe: a runtime belongs to one thread at a time (a `Detector`
/// and its inference thread). oneDNN runs each primitive on its own OpenMP threads (Debian's
/// build: `OMP_NUM_THREADS`, else one per core).
public final class OneDNNRuntime {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Runtimes for work that runs on other threads at the same time as this one's
    /// (`part(_:)`), made on first use.
    private var parts: [OneDNNRuntime] = []

    /// Creates the CPU engine and its stream. Throws if oneDNN cannot (no CPU engine).
    public init() throws(OneDNNError) {
        var engine: dnnl_engine_t?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "create the CPU engine")
        var stream: dnnl_stream_t?
        let status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue)
        guard status == dnnl_success, let engine, let stream else {
            if let engine { dnnl_engine_destroy(engine) }
            throw OneDNNError.refusal(status, "create a stream")
        }
        self.engine = engine
        self.stream = stream
    }

    deinit {
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// The `index`th runtime (engine and stream) for work that runs concurrently on several
    /// threads, one per thread: a stream may not be shared by two threads at once. Made on
    /// first use and owned here. Callable from this runtime's thread.
    public func part(_ index: Int) throws(OneDNNError) -> OneDNNRuntime {
        require(index >= 0, "OneDNNRuntime.part: negative index \(index)")
        while parts.count <= index { parts.append(try OneDNNRuntime()) }
        return parts[index]
    }

    /// Whether oneDNN runs AVX-512 kernels here: the CPU has AVX-512 and `ONEDNN_MAX_CPU_ISA`
    /// does not cap it below (`dnnl_get_effective_cpu_isa`). Callable from any thread.
    public static var runsAVX512: Bool {
        let core = dnnl_cpu_isa_avx512_core.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & core == core
    }

    /// oneDNN's version, e.g. "2.6.3". Callable from any thread.
    public static var libraryVersion: String {
        guard let v = dnnl_version()?.pointee else { return "unknown" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// Throws, with the reason, unless this machine can run the bf16 path: it builds one small
    /// bf16 matmul and checks that oneDNN gave it a native bf16 kernel (AVX-512 BF16 or AMX),
    /// not an emulation. Callable from any thread.
    public static func checkBF16Support() throws(OneDNNError) {
        try ExecutableMemory.require()
        let runtime = try OneDNNRuntime()
        let probe = try probeMatmul(runtime: runtime, operands: .bf16)
        guard probe.implementation.contains("bf16") || probe.implementation.contains("amx") else {
            throw OneDNNError(description: "this CPU has no native bf16 matrix multiply (oneDNN \(libraryVersion) picked '\(probe.implementation)'; AVX512_BF16 or AMX is needed): use --precision fp32",
                              cause: .noBF16Kernel)
        }
    }
}

extension OneDNNRuntime {
    /// Throws, with the reason, unless oneDNN can make an fp32 matmul here. It compiles its
    /// kernels at run time, so a process that may not map executable memory (systemd's
    /// `MemoryDenyWriteExecute=yes`, an SELinux `execmem` denial) cannot use it at all.
    /// Callable from any thread.
    public static func checkF32Support() throws(OneDNNError) {
        // Not the probe alone: under a no-executable-memory policy oneDNN may still make a small
        // matmul on a JIT-less path (it does with its ISA capped at AVX2) and refuse a layer's.
        try ExecutableMemory.require()
        _ = try probeMatmul(runtime: try OneDNNRuntime(), operands: .f32)
    }

    static func probeMatmul(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands) throws(OneDNNError) -> OneDNNMatmul {
        do {
            return try OneDNNMatmul(runtime: runtime, operands: operands, m: 16, n: 64, k: 64, lda: 64, ldb: 64, ldc: 64)
        } catch where error.cause == .refused && operands == .bf16
                        && error.status == Int32(bitPattern: dnnl_unimplemented.rawValue) {
            throw OneDNNError(description: "this CPU has no bf16 matrix multiply in oneDNN \(libraryVersion) (AVX512_BF16 or AMX is needed): use --precision fp32",
                              status: error.status, cause: .noBF16Kernel)
        }
    }
}

extension OneDNNError {
    /// The error for a oneDNN call that returned `status` while trying to `what`. Under a
    /// no-executable-memory policy every refusal is that policy's doing, whatever status oneDNN
    /// picked for it (runtime_error on AVX-512, unimplemented on AVX2: its JIT-less fallbacks
    /// are none for these shapes), so the cause says so and the text explains it.
    static func refusal(_ status: dnnl_status_t, _ what: String) -> OneDNNError {
        let base = "oneDNN \(OneDNNRuntime.libraryVersion): cannot \(what) (status \(status.rawValue))"
        if !ExecutableMemory.isAllowed {
            return OneDNNError(description: "\(base); \(ExecutableMemory.explanation)", status: Int32(bitPattern: status.rawValue),
                               cause: .noExecutableMemory)
        }
        return OneDNNError(description: base, status: Int32(bitPattern: status.rawValue))
    }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws(OneDNNError) {
    if status != dnnl_success { throw OneDNNError.refusal(status, what()) }
}

/// One oneDNN matmul primitive, made once for fixed shapes and reused every frame:
/// C[b] = A[b] · B[b] (+ old C) for b in 0 ..< batch, with A (m×k) and
/// B (k×n) row-major in `operands` (bf16 or float32), C (m×n) float32 row-major with leading
/// dimension `ldc`, batches `strideA`/`strideB`/`strideC` elements apart. Products are
/// accumulated in float32.
///
/// Owns its primitive and memory objects and frees them in `deinit`. `run` is synchronous and
/// allocates nothing; like its runtime, a matmul belongs to one thread at a time.
public final class OneDNNMatmul {
    /// The type of A and B.
    public enum Operands: String, Sendable {
        case bf16, f32

        var dataType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }
    }

    private let runtime: OneDNNRuntime
    private let primitive: dnnl_primitive_t
    private let memoryA: dnnl_memory_t
    private let memoryB: dnnl_memory_t
    private let memoryC: dnnl_memory_t
    /// With `singleThreaded`: the scratchpad this matmul owns and its memory object.
    private let scratchpad: AlignedBytes?
    private let memoryScratchpad: dnnl_memory_t?
    /// The execute arguments, filled once: the handles change per run, the memory objects do not.
    private let arguments: UnsafeMutablePointer<dnnl_exec_arg_t>
    private let argumentCount: Int32
    /// oneDNN's name for the kernel it chose (e.g. `brg:avx512_core_bf16`, `gemm:jit`).
    public let implementation: String
    /// The shapes it was made for.
    public let batch: Int, m: Int, n: Int, k: Int

    /// Makes the primitive. `accumulate` adds C's old contents (a sum post-op). Bias and ReLU are
    /// left to the caller's float32 epilogue: oneDNN 2.6 has no optimised matmul for a per-row
    /// (`[m, 1]`) bias and falls back to `ref:any`, ~1000× slower. Throws if oneDNN refuses the
    /// shapes or the CPU. Callable from the runtime's thread.
    ///
    /// `singleThreaded`: the primitive is planned for one thread and owns its scratchpad, so
    /// that it may run on any one thread, e.g. inside a parallel region beside other such
    /// matmuls (each with its own runtime, `OneDNNRuntime.part`). Otherwise oneDNN plans it for
    /// the calling thread's OpenMP team (`BLASThreads.applyToOpenMP`), and it must run on a
    /// thread with that team size, outside any parallel region.
    public init(runtime: OneDNNRuntime, operands: Operands = .bf16, batch: Int = 1, m: Int, n: Int, k: Int,
                lda: Int, ldb: Int, ldc: Int,
                strideA: Int = 0, strideB: Int = 0, strideC: Int = 0,
                accumulate: Bool = false, singleThreaded: Bool = false) throws(OneDNNError) {
        require(batch >= 1 && m >= 1 && n >= 1 && k >= 1, "OneDNNMatmul: empty shape \(batch)×\(m)×\(n)×\(k)")
        require(lda >= k && ldb >= n && ldc >= n, "OneDNNMatmul: leading dimensions \(lda)/\(ldb)/\(ldc) too small for \(m)×\(n)×\(k)")
        self.runtime = runtime
        self.batch = batch; self.m = m; self.n = n; self.k = k
        let batched = batch > 1
        func describe(_ rows: Int, _ columns: Int, _ leading: Int, _ batchStride: Int,
                      _ type: dnnl_data_type_t) throws(OneDNNError) -> dnnl_memory_desc_t {
            var desc = dnnl_memory_desc_t()
            let dims: [Int64] = batched ? [Int64(batch), Int64(rows), Int64(columns)] : [Int64(rows), Int64(columns)]
            let strides: [Int64] = batched ? [Int64(batchStride), Int64(leading), 1] : [Int64(leading), 1]
            try check(netnet_dnnl_memory_desc(&desc, Int32(dims.count), dims, strides, type),
                      "describe a \(dims) matrix")
            return desc
        }
        var descA = try describe(m, k, lda, strideA, operands.dataType)
        var descB = try describe(k, n, ldb, strideB, operands.dataType)
        var descC = try describe(m, n, ldc, strideC, dnnl_f32)

        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "create primitive attributes")
        defer { dnnl_primitive_attr_destroy(attributes) }
        if singleThreaded {
            // oneDNN's library scratchpad is shared per creating thread; a primitive that runs on
            // another thread, concurrently with others, needs its own.
            try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user),
                      "ask for a user scratchpad")
        }
        if accumulate {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "create post-ops")
            defer { dnnl_post_ops_destroy(postOps) }
            try check(dnnl_post_ops_append_sum(postOps, 1), "append the sum post-op")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "set the post-ops")
        }
        var operation = dnnl_matmul_desc_t()
        try check(dnnl_matmul_desc_init(&operation, &descA, &descB, nil, &descC),
                  "describe a \(operands.rawValue) matmul \(batch)×\(m)×\(n)×\(k)")
        var descriptor: dnnl_primitive_desc_t?
        // oneDNN plans the work split for the creating thread's OpenMP team size and later assumes
        // it gets exactly that many threads.
        let restoreTeam = singleThreaded ? OpenMP.maxThreads?() : nil
        if let restoreTeam, restoreTeam != 1 { OpenMP.setThreads?(1) }
        defer { if let restoreTeam, restoreTeam != 1 { OpenMP.setThreads?(restoreTeam) } }
        try check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, runtime.engine, nil),
                  "find a \(operands.rawValue) matmul for \(batch)×\(m)×\(n)×\(k) (for bf16, a CPU without AVX-512 has none)")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name)
        implementation = name.map { String(cString: $0) } ?? "unknown"
        var made: dnnl_primitive_t?
        try check(dnnl_primitive_create(&made, descriptor), "create the \(operands.rawValue) matmul")
        primitive = made!

        func memory(_ desc: inout dnnl_memory_desc_t) throws(OneDNNError) -> dnnl_memory_t {
            var result: dnnl_memory_t?
            try check(dnnl_memory_create(&result, &desc, runtime.engine, nil), "create a memory object")
            return result!
        }
        memoryA = try memory(&descA)
        memoryB = try memory(&descB)
        memoryC = try memory(&descC)
        if singleThreaded, let scratchDesc = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0) {
            var desc = scratchDesc.pointee
            let bytes = dnnl_memory_desc_get_size(&desc)
            let owned = AlignedBytes(count: bytes)
            var result: dnnl_memory_t?
            try check(dnnl_memory_create(&result, &desc, runtime.engine, owned.pointer), "create the scratchpad")
            (scratchpad, memoryScratchpad) = (owned, result)
        } else {
            (scratchpad, memoryScratchpad) = (nil, nil)
        }
        arguments = .allocate(capacity: 4)
        arguments[0] = dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: memoryA)
        arguments[1] = dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: memoryB)
        arguments[2] = dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: memoryC)
        if let memoryScratchpad {
            arguments[3] = dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memoryScratchpad)
            argumentCount = 4
        } else {
            argumentCount = 3
        }
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_memory_destroy(memoryA)
        dnnl_memory_destroy(memoryB)
        dnnl_memory_destroy(memoryC)
        if let memoryScratchpad { dnnl_memory_destroy(memoryScratchpad) }
        arguments.deallocate()
    }

    /// Runs the product on these buffers (shapes and strides as made) and waits for it. Traps if oneDNN fails, which after a
    /// successful `init` means a broken library, not bad input.
    public func run(a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>) {
        dnnl_memory_set_data_handle(memoryA, UnsafeMutableRawPointer(mutating: a))
        dnnl_memory_set_data_handle(memoryB, UnsafeMutableRawPointer(mutating: b))
        dnnl_memory_set_data_handle(memoryC, c)
        let status = dnnl_primitive_execute(primitive, runtime.stream, argumentCount, arguments)
        require(status == dnnl_success, "OneDNNMatmul.run: oneDNN execute failed (status \(status.rawValue))")
        let waited = dnnl_stream_wait(runtime.stream)
        require(waited == dnnl_success, "OneDNNMatmul.run: oneDNN stream wait failed (status \(waited.rawValue))")
    }
}
