import Testing
import NetnetBenchmarks
import NetnetKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Not a correctness test: prints `KernelBenchmark` timings. Runs only with NETNET_BENCHMARK=1
/// (meant for `NETNET_BENCHMARK=1 swift test -c release --filter Benchmark`). Set
/// NETNET_BENCHMARK_BUDGETS=262144,1048576,... to sweep column budgets, NETNET_BENCHMARK_ALL=1
/// for more layers, NETNET_BENCHMARK_REPS=n,
/// NETNET_BENCHMARK_TARGETS=1024,2048,... (positions per tile), NETNET_KERNEL_THREADS=n.
@Suite struct Benchmark {
    static var enabled: Bool { getenv("NETNET_BENCHMARK").map { String(cString: $0) == "1" } ?? false }

    @Test(.enabled(if: Benchmark.enabled)) func vggConvs() {
        var budgets = [Convolution.defaultColumnBudget]
        if let raw = getenv("NETNET_BENCHMARK_BUDGETS") {
            let parsed = String(cString: raw).split(separator: ",").compactMap { Int($0) }
            if !parsed.isEmpty { budgets = parsed }
        }
        if let raw = getenv("NETNET_KERNEL_THREADS"), let t = Int(String(cString: raw)) { KernelThreads.set(t) }
        var layers = KernelBenchmark.vggLayers
        if getenv("NETNET_BENCHMARK_ALL").map({ String(cString: $0) == "1" }) ?? false { layers += KernelBenchmark.moreLayers }
        var repetitions = 7
        if let raw = getenv("NETNET_BENCHMARK_REPS"), let r = Int(String(cString: raw)) { repetitions = r }
        var targets = [Convolution.targetTilePositions]
        if let raw = getenv("NETNET_BENCHMARK_TARGETS") {
            let parsed = String(cString: raw).split(separator: ",").compactMap { Int($0) }
            if !parsed.isEmpty { targets = parsed }
        }
        print(KernelBenchmark.runVGGConvs(layers: layers, budgets: budgets, targets: targets, repetitions: repetitions))
    }

    @Test(.enabled(if: Benchmark.enabled)) func otherKernels() {
        if let raw = getenv("NETNET_KERNEL_THREADS"), let t = Int(String(cString: raw)) { KernelThreads.set(t) }
        print(KernelBenchmark.runOtherKernels())
    }

    /// im2col vs Winograd per VGG layer; NETNET_BENCHMARK_WINOGRAD_TARGETS=256,768,... sweeps tiles per chunk.
    @Test(.enabled(if: Benchmark.enabled)) func winogradConvs() {
        if let raw = getenv("NETNET_KERNEL_THREADS"), let t = Int(String(cString: raw)) { KernelThreads.set(t) }
        var targets = [Winograd.targetTiles]
        if let raw = getenv("NETNET_BENCHMARK_WINOGRAD_TARGETS") {
            let parsed = String(cString: raw).split(separator: ",").compactMap { Int($0) }
            if !parsed.isEmpty { targets = parsed }
        }
        var repetitions = 7
        if let raw = getenv("NETNET_BENCHMARK_REPS"), let r = Int(String(cString: raw)) { repetitions = r }
        print(KernelBenchmark.runWinograd(targets: targets, repetitions: repetitions))
    }
}
