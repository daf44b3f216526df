// swift-tools-version:6.0
// netnet: video object detection (NETNet, CVPR 2020) on FFmpeg and OpenBLAS.
//
// Data flow, and so the module graph:
//   CFFmpeg ─▶ NetnetMedia ─┐
//                            ├─▶ netnet (CLI)
//   COpenBLAS, CDNNL ─▶ NetnetKernels ─▶ NetnetEngine ─┘
// The daemon (`netnet serve`): NetnetPipeline ─▶ NetnetDaemon ─▶ NetnetHTTP (Hummingbird) ─▶ netnet.
// Each C library is imported by exactly one Swift target (see docs/architecture.md).
import PackageDescription

// Release builds drop overflow and bounds checks in the hot loops; debug builds keep them.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
// The kernels are optimised in debug builds too (checks kept): unoptimised, their SIMD-typed
// loops (the Winograd transforms) run ~20x slower, and so would every test that runs the default
// model end to end.
//
// On x86-64 they are compiled for x86-64-v3 (AVX2 + FMA, as `-target-cpu haswell`; RHEL 10's
// baseline): their 8-lane vectors then run as one AVX instruction instead of two SSE ones, ~4 %
// off a frame here (docs/performance.md). Only NetnetKernels is: `CPURequirement`, in the
// engine, checks the CPU before any kernel runs, and `netnet` refuses with one line on a CPU
// without them. `NETNET_KERNEL_CPU=x86-64 swift build` builds portable kernels; any other value
// is passed to `-target-cpu` as it is, and the start-up check then checks nothing.
#if arch(x86_64)
let kernelCPU: String? = Context.environment["NETNET_KERNEL_CPU"] ?? "haswell"
#else
let kernelCPU: String? = nil
#endif
let needsAVX2 = kernelCPU == "haswell"
let kernelSettings: [SwiftSetting] = fastMath + [.unsafeFlags(["-O"], .when(configuration: .debug))]
    + (kernelCPU.map { [.unsafeFlags(["-target-cpu", $0])] } ?? [])
// Tells the engine's `CPURequirement` what the kernels were built for.
let engineSettings: [SwiftSetting] = fastMath + (needsAVX2 ? [.define("NETNET_KERNELS_NEED_AVX2")] : [])

let package = Package(
    name: "netnet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "netnet", targets: ["netnet"]),
        .library(name: "NetnetEngine", targets: ["NetnetEngine"]),
        .library(name: "NetnetMedia", targets: ["NetnetMedia"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        // HTTPRequestPart / HTTPResponsePart, the types Hummingbird's HTTP/1 pipeline carries (for
        // the connection guard in NetnetHTTP); already a dependency of Hummingbird.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        // ServiceGroup: the daemon's HTTP server, pipelines and sinks start in order and stop in
        // reverse; already a dependency of Hummingbird.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The HTTP webhook sink's client (NetnetDelivery only); brings swift-nio-ssl (BoringSSL) for https.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C libraries, walled off at the edge.
        .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev", "libavfilter-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN's bf16 matmul (`--precision bf16`); Debian ships no .pc file, so no pkgConfig.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // libmosquitto 2.0, the MQTT sink's client (imported only by NetnetDelivery).
        .systemLibrary(name: "CMosquitto", providers: [.apt(["libmosquitto-dev"])]),

        // Stage 1: reading and decoding (files, images, streams) through FFmpeg.
        .target(name: "NetnetMedia", dependencies: ["CFFmpeg"]),

        // Stage 3: inference. Kernels own the BLAS edge; the engine builds networks from model files.
        .target(name: "NetnetKernels", dependencies: ["COpenBLAS", "CDNNL"], swiftSettings: kernelSettings),
        .target(name: "NetnetEngine", dependencies: ["NetnetKernels"], swiftSettings: engineSettings),
        // Micro-benchmarks and sweeps of the kernels (printed reports; `NetnetBenchmarksTests`
        // runs them on demand), kept out of the library the engine links.
        .target(name: "NetnetBenchmarks", dependencies: ["NetnetKernels"], swiftSettings: fastMath),

        // Between the stages: bounded slot rings with a named back-pressure policy (no dependencies).
        .target(name: "NetnetRing"),
        // The sinks' durable queue: an append-only segment log with a CRC per record and a cursor
        // per sink (docs/spool.md; Foundation-free, no dependencies).
        .target(name: "NetnetSpool"),
        // After inference: tracking by detection (Kalman filter, optimal assignment; no dependencies),
        // run by the pipeline's record stage.
        .target(name: "NetnetTracker", swiftSettings: fastMath),
        // After tracking: scene rules (lines, zones, masks) over the tracks (pure geometry; no dependencies).
        .target(name: "NetnetScene"),
        // Pipeline plumbing: JSON lines, progress, signals, wall clock.
        .target(name: "NetnetPipeline", dependencies: ["NetnetRing", "NetnetEngine", "NetnetKernels", "NetnetMedia", "NetnetTracker", "NetnetScene"],
                swiftSettings: fastMath),

        // The daemon (`netnet serve`): configuration, supervisor, reconnects, sinks, sd_notify, metrics.
        .target(name: "NetnetDaemon", dependencies: ["NetnetPipeline", "NetnetRing", "NetnetEngine", "NetnetKernels", "NetnetMedia", "NetnetTracker", "NetnetScene"]),
        // Durable delivery (docs/delivery.md): the spool on the record path, one cursor per sink,
        // the MQTT sink on libmosquitto, the HTTP webhook on AsyncHTTPClient; shared by `annotate --sink`
        // and `serve`'s [sink] sections.
        .target(name: "NetnetDelivery", dependencies: ["NetnetSpool", "NetnetPipeline", "NetnetDaemon", "NetnetEngine", "NetnetMedia", "CMosquitto",
                                                          .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                          .product(name: "NIOCore", package: "swift-nio")]),
        // The daemon's HTTP API (the only Hummingbird importer).
        .target(name: "NetnetHTTP", dependencies: [
            "NetnetDaemon", "NetnetPipeline", "NetnetScene",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The daemon's composition root: sinks, HTTP server, pipelines and the control loop as
        // services of one ServiceGroup.
        .target(name: "NetnetService", dependencies: [
            "NetnetDaemon", "NetnetHTTP", "NetnetPipeline", "NetnetEngine", "NetnetKernels", "NetnetMedia", "NetnetDelivery",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The command-line front end.
        .executableTarget(
            name: "netnet",
            dependencies: [
                "NetnetEngine", "NetnetMedia", "NetnetPipeline", "NetnetRing", "NetnetKernels",
                "NetnetDaemon", "NetnetHTTP", "NetnetService", "NetnetTracker", "NetnetScene", "NetnetDelivery", "NetnetSpool",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),

        .testTarget(name: "NetnetKernelsTests", dependencies: ["NetnetKernels"]),
        .testTarget(name: "NetnetBenchmarksTests", dependencies: ["NetnetBenchmarks", "NetnetKernels"]),
        .testTarget(name: "NetnetEngineTests", dependencies: ["NetnetEngine", "NetnetKernels"],
                    resources: [.copy("Goldens")]),
        .testTarget(name: "NetnetMediaTests", dependencies: ["NetnetMedia"]),
        .testTarget(name: "NetnetCLITests", dependencies: []),
        .testTarget(name: "NetnetRingTests", dependencies: ["NetnetRing"]),
        .testTarget(name: "NetnetSpoolTests", dependencies: ["NetnetSpool"]),
        .testTarget(name: "NetnetDeliveryTests", dependencies: ["NetnetDelivery", "NetnetDaemon", "NetnetSpool", "NetnetPipeline"]),
        .testTarget(name: "NetnetTrackerTests", dependencies: ["NetnetTracker"]),
        .testTarget(name: "NetnetSceneTests", dependencies: ["NetnetScene"]),
        .testTarget(name: "NetnetHTTPTests", dependencies: ["NetnetHTTP", "NetnetDaemon", "NetnetEngine"]),
        .testTarget(name: "NetnetDaemonTests", dependencies: ["NetnetDaemon", "NetnetPipeline", "NetnetEngine", "NetnetTracker", "NetnetScene", "NetnetMedia"]),
        .testTarget(name: "NetnetPipelineTests", dependencies: ["NetnetPipeline", "NetnetRing", "NetnetEngine", "NetnetTracker", "NetnetMedia", "NetnetScene"]),
    ]
)
