import Foundation
import Testing

/// `--precision` and `--gemm` on the real binary: choices, refusals, and the fallback when oneDNN
/// cannot compile its kernels (a process that may not map executable memory, as under systemd's
/// `MemoryDenyWriteExecute=yes`, reproduced with `prctl(PR_SET_MDWE)`).
@Suite("netnet --precision / --gemm")
struct PrecisionTests {
    /// Whether netnet may run bf16 here: the CPU has AVX512_BF16 and oneDNN is not capped below
    /// it (`ONEDNN_MAX_CPU_ISA=AVX2`, as CI's second pass runs).
    static let hasBF16: Bool = {
        guard ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains("avx512_bf16") else { return false }
        let environment = ProcessInfo.processInfo.environment
        guard let cap = (environment["ONEDNN_MAX_CPU_ISA"] ?? environment["DNNL_MAX_CPU_ISA"])?.uppercased() else { return true }
        return cap == "ALL" || cap.contains("BF16") || cap.contains("AMX")
    }()

    /// A tiny network, one timed frame: enough to build every layer's kernels.
    static let bench = ["bench", "--width", "0.125", "--frames", "1", "--warmup", "0", "--json"]

    @Test("unknown values and bf16 on OpenBLAS are refused before any work")
    func refusals() throws {
        let fp16 = try NetnetBinary.run(Self.bench + ["--precision", "fp16"])
        #expect(fp16.status == 64)
        #expect(fp16.stderr.contains("--precision must be fp32 or bf16, not 'fp16'"))
        let mkl = try NetnetBinary.run(Self.bench + ["--gemm", "mkl"])
        #expect(mkl.status == 64)
        #expect(mkl.stderr.contains("--gemm must be openblas or onednn"))
        let mixed = try NetnetBinary.run(Self.bench + ["--precision", "bf16", "--gemm", "openblas"])
        #expect(mixed.status == 64)
        #expect(mixed.stderr.contains("needs --gemm onednn"))
    }

    @Test("each precision and library runs and says which ran")
    func choices() throws {
        for (arguments, precision, gemm) in [([String](), "fp32", "onednn"), (["--gemm", "openblas"], "fp32", "openblas"),
                                             (["--precision", "bf16"], "bf16", "onednn")] {
            if precision == "bf16" && !Self.hasBF16 { continue }
            let result = try NetnetBinary.run(Self.bench + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(result.stdout.contains("\"precision\": \"\(precision)\""), "\(arguments): \(result.stdout)")
            #expect(result.stdout.contains("\"gemm\": \"\(gemm)\""), "\(arguments): \(result.stdout)")
        }
    }

    @Test("a CPU without bf16 (oneDNN capped with ONEDNN_MAX_CPU_ISA) refuses --precision bf16 in one line; fp32 runs")
    func cpuWithoutBF16() throws {
        for isa in ["AVX2", "AVX512_CORE"] {
            let environment = ["ONEDNN_MAX_CPU_ISA": isa, "DNNL_MAX_CPU_ISA": isa]
            let bf16 = try NetnetBinary.run(Self.bench + ["--precision", "bf16"], environment: environment)
            #expect(bf16.status == 1, "\(isa): \(bf16.stderr)")
            #expect(bf16.stderr.contains("--precision bf16:") && bf16.stderr.contains("AVX512_BF16"), "\(isa): \(bf16.stderr)")
            #expect(bf16.stderr.split(separator: "\n").count == 1, "one line: \(bf16.stderr)")
            let fp32 = try NetnetBinary.run(Self.bench, environment: environment)
            #expect(fp32.status == 0 && fp32.stdout.contains("\"gemm\": \"onednn\""), "\(isa): \(fp32.stderr)")
        }
    }

    @Test("with fewer OpenMP threads than the engine asks for (OMP_THREAD_LIMIT=1) every chunk still runs",
          arguments: ["onednn", "openblas"])
    func openMPThreadLimit(gemm: String) throws {
        let goldens = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("NetnetEngineTests/Goldens")
        let result = try NetnetBinary.run(["parity", "--model", goldens.appendingPathComponent("netnet-vgg16-300-w0.125.safetensors").path,
                                           "--golden", goldens.appendingPathComponent("netnet-vgg16-300-w0.125.golden.safetensors").path,
                                           "--gemm", gemm, "--tolerance", "1e-4"],
                                          environment: ["OMP_THREAD_LIMIT": "1", "NETNET_CONV": "winograd"])
        #expect(result.status == 0, "\(gemm): \(result.stdout)\(result.stderr)")
    }

    /// Runs netnet with `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)` set first; nil where the
    /// kernel has no MDWE (before Linux 6.3) or python3 is missing.
    static func runWithoutExecutableMemory(_ arguments: [String], environment: [String: String] = [:]) throws -> NetnetBinary.Result? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return nil }
        let wrapper = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(97)
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let result = try NetnetBinary.run(arguments, environment: environment, launcher: ["/usr/bin/python3", "-c", wrapper])
        return result.status == 97 ? nil : result
    }

    /// oneDNN refuses differently per ISA when it may not compile kernels (runtime_error on
    /// AVX-512, unimplemented on AVX2), so the same path is checked with oneDNN capped at AVX2:
    /// on any machine, the ISA an AVX2-only CPU (Zen 3) gets.
    @Test("without executable memory: fp32 falls back to OpenBLAS with a warning, bf16 stops with the reason, on every ISA",
          arguments: ["native", "AVX2"])
    func noExecutableMemory(isa: String) throws {
        let environment = isa == "native" ? [:] : ["ONEDNN_MAX_CPU_ISA": isa, "DNNL_MAX_CPU_ISA": isa]
        guard let fp32 = try Self.runWithoutExecutableMemory(Self.bench, environment: environment) else {
            print("skipped: this kernel has no PR_SET_MDWE (Linux 6.3+)")
            return
        }
        #expect(fp32.status == 0, "\(isa): \(fp32.stderr)")
        #expect(fp32.stdout.contains("\"gemm\": \"openblas\""), "\(isa): \(fp32.stdout)")
        #expect(fp32.stderr.contains("warning: GEMMs on OpenBLAS instead of oneDNN"), "\(isa): \(fp32.stderr)")
        #expect(fp32.stderr.contains("MemoryDenyWriteExecute"), "\(isa): \(fp32.stderr)")
        #expect(fp32.stderr.split(separator: "\n").count == 1, "\(isa): one line: \(fp32.stderr)")
        let explicit = try #require(try Self.runWithoutExecutableMemory(Self.bench + ["--gemm", "onednn"], environment: environment))
        #expect(explicit.status == 1, "\(isa): an explicit --gemm onednn must not fall back: \(explicit.stderr)")
        #expect(explicit.stderr.contains("--precision fp32: oneDNN") && explicit.stderr.contains("executable memory"),
                "\(isa): \(explicit.stderr)")
        let bf16 = try #require(try Self.runWithoutExecutableMemory(Self.bench + ["--precision", "bf16"], environment: environment))
        #expect(bf16.status == 1, "\(isa): \(bf16.stderr)")
        #expect(bf16.stderr.contains("--precision bf16:") && bf16.stderr.contains("executable memory"), "\(isa): \(bf16.stderr)")
        #expect(bf16.stderr.split(separator: "\n").count == 1, "\(isa): one line: \(bf16.stderr)")
    }
}
