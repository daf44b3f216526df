import ArgumentParser
import Foundation
import NetnetDaemon
import NetnetEngine
import NetnetKernels

/// The `netnet` command: object detection on images and video with NETNet.
@main
struct NetnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netnet",
        abstract: "Video object detection with NETNet (SSD + Neighbor Erasing and Transferring) on the CPU.",
        discussion: """
            Models are safetensors files (docs/model-format.md). Without --model the bundled default \
            model is used; `netnet model info` says what it is.
            """,
        version: NetnetVersion.string,
        subcommands: [AnnotateCommand.self, ServeCommand.self, DetectCommand.self, ModelCommand.self, BenchCommand.self, ParityCommand.self, SceneCommand.self])

    /// Refuses, with one line and exit status 1, a CPU the kernels were not built for, before
    /// any of them can run, and before the arguments are parsed (validating them may call into
    /// the kernels' module); help and `--version` (`asksForHelp`) work on any CPU. Then parses
    /// and runs the command. `NETNET_CPUINFO` names a file read instead of `/proc/cpuinfo` (the
    /// tests use it to stand in for an older CPU).
    /// Async because `serve` runs the daemon's `ServiceGroup`; the other commands are synchronous
    /// and block the main thread, which is theirs.
    static func main() async {
        if !asksForHelp(Array(CommandLine.arguments.dropFirst())) {
            let cpuinfo = ProcessInfo.processInfo.environment["NETNET_CPUINFO"] ?? "/proc/cpuinfo"
            if let problem = CPURequirement.problem(cpuinfoPath: cpuinfo) { exitWithError(problem) }
        }
        await main(nil)
    }

    /// Whether `arguments` only ask for help or the version: none at all, `help …`, or any of
    /// `-h`, `--help`, `--version`. Pure.
    static func asksForHelp(_ arguments: [String]) -> Bool {
        arguments.isEmpty || arguments.first == "help" || arguments.contains { ["-h", "--help", "--version"].contains($0) }
    }
}

/// The program's version, printed by `--version` (kept in NetnetDaemon, which `/metrics` reports
/// it from as `netnet_build_info`).
enum NetnetVersion {
    static let string = NetnetBuild.version
}

/// A runtime failure the CLI reports as one line on standard error with exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints `netnet: message` on standard error and exits with `code`.
func exitWithError(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("netnet: \(message)\n".utf8))
    exit(code)
}

/// Runs `body`, turning any thrown error into one line on standard error and exit status 1.
func reportingErrors<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        exit(error.rawValue)
    } catch {
        exitWithError("\(error)")
    }
}

/// `--precision` and `--gemm`, shared by the commands that run the network on demand (`bench`,
/// `detect`, `parity`, `annotate`). A flag not given falls back to its environment variable
/// (`NETNET_PRECISION`, `NETNET_GEMM`; `EnvironmentDefaults`), checked in `validate`.
struct PrecisionOptions: ParsableArguments {
    @Option(help: "Arithmetic: fp32, or bf16 (weights and GEMM inputs in bfloat16, float32 accumulation; needs AVX512_BF16). Default: NETNET_PRECISION, else fp32.",
            transform: choice("--precision"))
    var precision: Precision?

    @Option(help: "GEMM library: onednn, or openblas (fp32 only). Default: NETNET_GEMM, else onednn.",
            transform: choice("--gemm"))
    var gemm: GEMMLibrary?

    func validate() throws {
        _ = try EnvironmentDefaults.precision()
        _ = try EnvironmentDefaults.gemm()
        _ = try EnvironmentDefaults.convolution()
        if value == .bf16, library == .openblas { throw ValidationError("--precision bf16 needs --gemm onednn (OpenBLAS here has no bf16 GEMM)") }
    }

    /// The chosen precision (the flag, else `NETNET_PRECISION`, else fp32). `validate` has
    /// checked the variable.
    var value: Precision { precision ?? (try? EnvironmentDefaults.precision()) ?? .fp32 }

    /// The chosen GEMM library (the flag, else `NETNET_GEMM`), nil for the default.
    var library: GEMMLibrary? { gemm ?? (try? EnvironmentDefaults.gemm()) }

    /// The convolution choice for a command without `--conv`: `NETNET_CONV`, else auto.
    var defaultConvolution: ConvolutionAlgorithm { (try? EnvironmentDefaults.convolution()) ?? .auto }

    /// A detector for `model` in the chosen precision (`convolution`: nil for
    /// `defaultConvolution`), on `threads` (nil: the process's defaults); a CPU that cannot run it
    /// gets one line naming the flag (exit 1 through `reportingErrors`).
    func makeDetector(model: NetnetEngine.Model, convolution: ConvolutionAlgorithm? = nil,
                      threads: DetectorThreads? = nil) throws -> Detector {
        do {
            let detector = try Detector(model: model, convolution: convolution ?? defaultConvolution, precision: value,
                                        gemm: library, threads: threads)
            if let reason = detector.gemmFallback {
                FileHandle.standardError.write(Data("netnet: warning: \(reason)\n".utf8))
            }
            return detector
        } catch {
            throw CommandFailure("--precision \(value.rawValue): \(error.description)")
        }
    }
}
