import Foundation

/// What this build's kernels need of the CPU, checked before any of them runs: NetnetKernels is
/// compiled for x86-64-v3 (AVX2 and FMA) on x86-64 (Package.swift), and would die of an illegal
/// instruction on an older CPU. This type lives in the engine, which is compiled for the
/// baseline, so that the check itself runs anywhere. Pure values; callable from any thread.
public enum CPURequirement {
    /// The CPU features, as `/proc/cpuinfo` names them, the kernels were compiled to use.
    public static var kernelFeatures: [String] {
        #if NETNET_KERNELS_NEED_AVX2
        return ["avx2", "fma"]
        #else
        return []
        #endif
    }

    /// The features of `needed` that the first `flags` line of a `/proc/cpuinfo` text lacks.
    /// Empty when the text has no such line (nothing to go on: the check is Linux's). Pure.
    public static func missing(cpuinfo: String, needed: [String] = kernelFeatures) -> [String] {
        guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        return needed.filter { !flags.contains($0) }
    }

    /// nil if this CPU runs the kernels; else one line: what is missing and how to build for it.
    /// Reads `cpuinfoPath` (`/proc/cpuinfo`; another file stands in for a different CPU in tests).
    public static func problem(cpuinfoPath: String = "/proc/cpuinfo") -> String? {
        guard !kernelFeatures.isEmpty else { return nil }
        return problem(cpuinfo: try? String(contentsOfFile: cpuinfoPath, encoding: .utf8))
    }

    /// `problem()` for a given `/proc/cpuinfo` text (nil: unreadable, nothing to check). Pure.
    public static func problem(cpuinfo: String?, needed: [String] = kernelFeatures) -> String? {
        guard !needed.isEmpty, let cpuinfo else { return nil }
        let absent = missing(cpuinfo: cpuinfo, needed: needed)
        guard !absent.isEmpty else { return nil }
        return "this build's kernels need a CPU with \(needed.joined(separator: " and ")) (x86-64-v3), and this one lacks \(absent.joined(separator: ", ")): rebuild with NETNET_KERNEL_CPU=x86-64 swift build -c release"
    }
}
