import ArgumentParser
import Foundation
import NetnetEngine
import NetnetKernels
import NetnetDelivery

/// `netnet bench`: inference speed and memory of one model on this machine.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the network's forward pass: median ms per frame, fps, GFLOP/s, peak memory.",
        discussion: """
            Runs --warmup frames, then --frames timed frames, on a fixed random input. GFLOP/s counts \
            2 × multiply-accumulates of the convolutions. Peak memory is the process's peak resident set \
            (VmHWM). Use a release build: swift run -c release netnet bench …
            """)

    @Option(help: "Model file (default: a random model made from --network and --width).")
    var model: String?

    @Option(help: "Network, when no --model: \(NetworkName.allCases.map(\.rawValue).joined(separator: ", ")).",
            transform: NetworkName.argument)
    var network: NetworkName = .netnetVGG16_300

    @Option(help: "Width multiplier, when no --model.")
    var width: Double = 1

    @Option(help: "Object classes, when no --model.")
    var numClasses: Int = 80

    @Option(help: "Timed frames.")
    var frames: Int = 10

    @Option(help: "Untimed frames first.")
    var warmup: Int = 2

    @Option(help: "GEMM threads: oneDNN's OpenMP team or OpenBLAS's pool (default: all cores).")
    var threads: Int?

    @Option(help: "Threads for the engine's own loops: im2col, element-wise (default: all cores).")
    var kernelThreads: Int?

    @Option(help: "3×3 stride-1 convolutions: auto (Winograd where measured faster), im2col, winograd (every eligible layer; on oneDNN also the dilated conv6). Default: NETNET_CONV, else auto.",
            transform: choice("--conv"))
    var conv: ConvolutionAlgorithm?

    @OptionGroup var precision: PrecisionOptions

    @Option(help: "oneDNN Winograd layers on several threads: auto (the engine's fixed rule: parts), shared (all threads on each step), parts (a part of the map per thread).",
            transform: choice("--winograd-way"))
    var winogradWay: WinogradWayChoice = .auto

    @Flag(help: "Compare the Winograd ways in one run: frames alternate between shared, parts and auto (the rule), and each gets its median, one line each (the host's speed changes over seconds; alternating frames sees the same changes). --json and --layers do not apply.")
    var compareWays = false

    @Flag(help: "Also print the time per layer group and per layer.")
    var layers = false

    @Flag(help: "Print one JSON object: median_ms, fps, gflops, peak_rss_mb, …")
    var json = false

    @Flag(help: "Time the tracker instead of the network: microseconds per frame at 10, 50 and 200 boxes (a synthetic scene; one thread, like the tracker). With --json, one object.")
    var tracker = false

    @Flag(help: "Time the durable delivery instead of the network: --records frame-sized lines through the spool (--spool-fsync) and each --sink, as fast as one thread hands them over (docs/delivery.md). Prints records per second appended and delivered end to end, and what one hand-over costs.")
    var delivery = false

    @Option(help: "With --delivery: records to send.")
    var records = 100_000

    @Option(help: "With --delivery: bytes per record (a frame line with a few boxes is about 700).")
    var recordBytes = 700

    @Option(help: "With --delivery: seconds between fdatasyncs of the spool (0: every record).")
    var spoolFsync = 0.5

    @Option(name: .customLong("sink"), help: "With --delivery: a sink URL as for annotate --sink (repeatable; at least one: only records some sink takes are spooled). A sink that is down measures the spool alone.")
    var sinks: [String] = []

    @Option(help: "With --delivery: seconds to wait for the sinks to acknowledge everything after the last hand-over (0: do not wait, for a sink that is down).")
    var drainTimeout: Double = 600

    @Option(help: "With --delivery: the spool directory, emptied first (default: a new one under $TMPDIR, removed after).")
    var spool: String?

    func validate() throws {
        guard frames >= 1, warmup >= 0 else { throw ValidationError("--frames must be at least 1 and --warmup at least 0") }
        if delivery {
            guard records >= 1 else { throw ValidationError("--records must be at least 1") }
            guard (64...65_536).contains(recordBytes) else { throw ValidationError("--record-bytes must be 64 to 65536") }
            guard spoolFsync.isFinite, spoolFsync >= 0 else { throw ValidationError("--spool-fsync must be at least 0") }
            guard !sinks.isEmpty else { throw ValidationError("--delivery needs at least one --sink (a sink that is down measures the spool alone)") }
            guard drainTimeout.isFinite, drainTimeout >= 0 else { throw ValidationError("--drain-timeout must be at least 0") }
            _ = try deliverySinks()
        } else if !sinks.isEmpty || spool != nil {
            throw ValidationError("--sink and --spool go with --delivery")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let kernelThreads, kernelThreads < 1 { throw ValidationError("--kernel-threads must be at least 1") }
    }

    /// The `--sink`s, named as `annotate` names them.
    func deliverySinks() throws -> [SinkSpec] {
        try zip(sinks, SinkURL.defaultNames(sinks)).map { url, name in
            do { return try SinkURL.parse(url, name: name) } catch {
                throw ValidationError("--sink \(error)")
            }
        }
    }

    /// `--delivery`: one run of `DeliveryBenchmark`, printed.
    func runDelivery() {
        let directory = spool ?? NSTemporaryDirectory() + "netnet-bench-spool-\(getpid())"
        defer { if spool == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let specs = reportingErrors { try deliverySinks() }
        let result = reportingErrors {
            try DeliveryBenchmark.run(records: records, recordBytes: recordBytes, fsyncInterval: spoolFsync, sinks: specs,
                                      directory: directory, drainTimeout: drainTimeout,
                                      warn: { FileHandle.standardError.write(Data("netnet: warning: \($0)\n".utf8)) })
        }
        let appendRate = Double(result.records) / result.appendSeconds
        let deliveredRate = result.deliveredSeconds.map { Double(result.records) / $0 }
        if json {
            var object = JSONObject()
            object.add("records", result.records)
            object.add("record_bytes", recordBytes)
            object.add("spool_fsync", spoolFsync, digits: 3)
            object.add("sinks", specs.map(\.name).joined(separator: ","))
            object.add("appended_per_second", appendRate, digits: 0)
            object.add("append_mb_per_second", Double(result.bytes) / result.appendSeconds / 1e6, digits: 1)
            object.add("accept_median_us", result.acceptMedianMicroseconds, digits: 2)
            object.add("accept_p99_us", result.acceptP99Microseconds, digits: 2)
            object.add("accept_max_us", result.acceptMaxMicroseconds, digits: 1)
            if let deliveredRate { object.add("delivered_per_second", deliveredRate, digits: 0) }
            object.add("left_spooled", Int(result.left))
            print(object.text)
            return
        }
        print(String(format: "delivery: %d records of %d B, spool_fsync %g: appended %.0f records/s (%.1f MB/s); one hand-over: median %.1f µs, p99 %.1f µs, max %.0f µs",
                     result.records, recordBytes, spoolFsync, appendRate, Double(result.bytes) / result.appendSeconds / 1e6,
                     result.acceptMedianMicroseconds, result.acceptP99Microseconds, result.acceptMaxMicroseconds))
        if drainTimeout == 0 { return }
        if let deliveredRate {
            print(String(format: "delivery: %@ acknowledged every record: %.0f records/s end to end", specs.map(\.name).joined(separator: ", "), deliveredRate))
        } else {
            print("delivery: \(result.left) records still unacknowledged after \(drainTimeout) s")
        }
    }

    /// The median of ascending, non-empty `values`.
    static func median(ofSorted values: [Double]) -> Double {
        values.count % 2 == 1 ? values[values.count / 2] : (values[values.count / 2 - 1] + values[values.count / 2]) / 2
    }

    func run() throws {
        if delivery {
            runDelivery()
            return
        }
        if tracker {
            var rows: [(boxes: Int, median: Double, mean: Double, tracks: Int)] = []
            for boxes in [10, 50, 200] {
                let (median, mean, tracks) = TrackerBenchmark.run(boxes: boxes, frames: max(frames, 100), warmup: max(warmup, 20))
                rows.append((boxes, median, mean, tracks))
            }
            if json {
                var object = JSONObject()
                for row in rows {
                    var entry = JSONObject()
                    entry.add("median_us", row.median, digits: 2)
                    entry.add("mean_us", row.mean, digits: 2)
                    entry.add("tracks", row.tracks)
                    object.add("boxes_\(row.boxes)", entry)
                }
                print(object.text)
            } else {
                for row in rows {
                    print("tracker: \(row.boxes) boxes a frame: \(String(format: "%.1f", row.median)) µs a frame median, \(String(format: "%.1f", row.mean)) mean (\(row.tracks) tracks alive)")
                }
            }
            return
        }
        let loaded: Model = reportingErrors {
            if let model { return try Model(path: model) }
            let names = (0..<numClasses).map { "class\($0)" }
            return Model(randomFor: ModelDescription(network: network, width: width, classes: names), seed: 1, headInit: .he)
        }
        // The thread counts go to the detector, which applies them itself; flags not given keep
        // the libraries' defaults (one per core, or OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).
        var detectorThreads: DetectorThreads?
        if threads != nil || kernelThreads != nil {
            let defaults = DetectorThreads.processDefault(onOneDNN: precision.library != .openblas)
            detectorThreads = DetectorThreads(gemm: threads ?? defaults.gemm, kernels: kernelThreads ?? defaults.kernels)
        }
        let detector = reportingErrors {
            try precision.makeDetector(model: loaded, convolution: conv, threads: detectorThreads)
        }
        if let way = winogradWay.way { detector.forceWinogradWay(way) }
        let winogradLayers = Set(detector.winogradLayerNames)
        var generator = SplitMix64(seed: 7)
        let size = loaded.description.inputSize
        for index in 0..<(3 * size * size) { detector.input[index] = generator.nextUniform() * 255 - 128 }
        for _ in 0..<warmup { detector.forward() }
        if compareWays {
            guard detector.hasWinogradWays else {
                exitWithError("--compare-ways: this model has no Winograd layer with two ways to run here (that needs --gemm onednn, Winograd layers, and at least 2 threads)")
            }
            let ways: [(String, OneDNNConvolution.WinogradWay?)] = [("shared", .shared), ("parts", .parts), ("auto", nil)]
            var wayTimes = [[Double]](repeating: [], count: ways.count)
            for frame in 0..<(frames * ways.count) {
                detector.forceWinogradWay(ways[frame % ways.count].1)
                let start = DispatchTime.now().uptimeNanoseconds
                detector.forward()
                wayTimes[frame % ways.count].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            for (index, way) in ways.enumerated() {
                let sorted = wayTimes[index].sorted()
                print(String(format: "%@ median: %.1f ms/frame (min %.1f, max %.1f)", way.0.padding(toLength: 7, withPad: " ", startingAt: 0),
                             Self.median(ofSorted: sorted), sorted.first!, sorted.last!))
            }
            return
        }
        detector.recordsTimings = layers
        var times: [Double] = []
        for _ in 0..<frames {
            let start = DispatchTime.now().uptimeNanoseconds
            detector.forward()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let median = Self.median(ofSorted: times)
        let macs = Double(loaded.plan.multiplyAccumulates)
        let gflops = 2 * macs / (median / 1000) / 1e9
        let peak = PeakMemory.residentMegabytes()
        var groupMACs: [String: Double] = [:]
        for layer in loaded.plan.layers { groupMACs[layer.group, default: 0] += Double(layer.multiplyAccumulates) }
        let groupTimes = detector.timings.mapValues { $0 / Double(frames) }
        // --layers records every step's time; the median above then includes the clock reads.
        let d = loaded.description
        if json {
            var object = JSONObject()
            object.add("network", d.network.rawValue)
            object.add("width", d.width, digits: 6)
            object.add("threads", detector.threads.gemm)
            object.add("conv", detector.convolution.rawValue)
            object.add("precision", detector.precision.rawValue)
            object.add("gemm", detector.gemm.rawValue)
            object.add("winograd_layers", detector.winogradLayerNames.count)
            object.add("openblas_pointwise_layers", detector.openBLASPointwiseLayerNames.count)
            if !detector.winogradWayCounts.isEmpty {
                // Frames (warm-up included) whose Winograd layers ran each way.
                var counts = JSONObject()
                for way in OneDNNConvolution.WinogradWay.allCases { counts.add(way.rawValue, detector.winogradWayCounts[way] ?? 0) }
                object.add("winograd_way_frames", raw: counts.text)
            }
            object.add("frames", frames)
            object.add("median_ms", median)
            object.add("min_ms", times.first!)
            object.add("fps", 1000 / median)
            object.add("gflops", gflops, digits: 1)
            object.add("gmacs", macs / 1e9)
            object.add("peak_rss_mb", peak, digits: 1)
            if layers {
                var groups = JSONObject()
                for key in groupTimes.keys.sorted() {
                    var group = JSONObject()
                    group.add("ms", groupTimes[key]!, digits: 3)
                    group.add("gflops", 2 * (groupMACs[key] ?? 0) / (groupTimes[key]! / 1000) / 1e9, digits: 1)
                    groups.add(key, raw: group.text)
                }
                object.add("layers", raw: groups.text)
            }
            print(object.text)
            return
        }
        print("model:      \(model ?? "random") (\(d.network.rawValue) width \(ModelDescription.formatWidth(d.width)), \(d.classes.count) classes, \(String(format: "%.2f", macs / 1e9)) GMAC)")
        print("threads:    \(detector.threads.gemm) (GEMM)")
        print("precision:  \(detector.precision.rawValue), GEMMs on \(detector.gemm == .onednn ? "oneDNN \(OneDNNRuntime.libraryVersion)" : "OpenBLAS")")
        print("conv:       \(detector.convolution.rawValue) (Winograd F(4x4,3x3) on \(detector.winogradLayerNames.count) of \(loaded.plan.layers.count) layers)")
        if !detector.openBLASPointwiseLayerNames.isEmpty {
            print("1x1 GEMMs:  \(detector.openBLASPointwiseLayerNames.count) channel-reducing 1x1 layers on OpenBLAS, one thread per part (no AVX-512 in oneDNN here)")
        }
        print("frames:     \(frames) timed after \(warmup) warm-up")
        print(String(format: "median:     %.1f ms/frame (min %.1f, max %.1f)", median, times.first!, times.last!))
        print(String(format: "fps:        %.2f", 1000 / median))
        print(String(format: "throughput: %.1f GFLOP/s", gflops))
        print(String(format: "peak RSS:   %.1f MB", peak))
        if layers {
            print("per layer group (ms/frame, GFLOP/s):")
            for key in groupTimes.keys.sorted(by: { groupTimes[$0]! > groupTimes[$1]! }) {
                let t = groupTimes[key]!
                let g = groupMACs[key].map { String(format: "%6.1f", 2 * $0 / (t / 1000) / 1e9) } ?? "     -"
                print("  " + key.padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: " %8.2f ms  ", t) + g)
            }
            var layerMACs: [String: Double] = [:]
            for layer in loaded.plan.layers { layerMACs[layer.name, default: 0] += Double(layer.executedMultiplyAccumulates) }
            if detector.gemm == .onednn {
                print("oneDNN kernels (per layer: kernel, oneDNN's implementation, and how its per-thread parts are cut if it has any):")
                let splits = Dictionary(detector.partSplits, uniquingKeysWith: { first, _ in first })
                for entry in detector.oneDNNKernels {
                    print("  " + entry.name.padding(toLength: 28, withPad: " ", startingAt: 0) + " \(entry.kernel.padding(toLength: 16, withPad: " ", startingAt: 0)) \(entry.implementation)"
                          + (splits[entry.name].map { " (parts by \($0))" } ?? ""))
                }
                if !detector.winogradWayCounts.isEmpty {
                    let counts = OneDNNConvolution.WinogradWay.allCases.map { "\($0.rawValue) \(detector.winogradWayCounts[$0] ?? 0)" }
                    print("Winograd way, frames so far (warm-up included): " + counts.joined(separator: ", "))
                }
            }
            print("per layer, in execution order (ms/frame, GFLOP/s of the direct convolution's work; W: Winograd):")
            for step in detector.stepTimings {
                let t = step.milliseconds / Double(frames)
                var work = layerMACs[step.name]
                if step.name.contains("loc+conf") {
                    work = (layerMACs[step.name.replacingOccurrences(of: "loc+conf", with: "loc")] ?? 0)
                        + (layerMACs[step.name.replacingOccurrences(of: "loc+conf", with: "conf")] ?? 0)
                }
                let g = work.map { String(format: "%6.1f", 2 * $0 / (t / 1000) / 1e9) } ?? "     -"
                let mark = winogradLayers.contains(step.name) ? " W" : ""
                print("  " + step.name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: " %8.3f ms  ", t) + g + mark)
            }
        }
    }
}

/// The process's peak resident set size, from /proc/self/status (VmHWM).
enum PeakMemory {
    static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").compactMap { Double($0) }
            if let kilobytes = digits.first { return kilobytes / 1024 }
        }
        return 0
    }
}
