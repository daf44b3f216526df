import Foundation
import NetnetDelivery
import NetnetPipeline
import NetnetSpool

/// The durable delivery's throughput (`netnet bench --delivery`): `records` frame-sized lines
/// (`recordBytes`, a frame line with a few boxes is ~700) handed to `Delivery.accept` as fast as
/// one thread can, the way the pipeline's writer hands them, then waited for until every sink has
/// acknowledged them. Measures what the record path pays (each `accept` timed) apart from what
/// the sinks take (the drain). Blocks the calling thread.
enum DeliveryBenchmark {
    /// One run's figures. Value type.
    struct Result {
        var records: Int
        var bytes: Int
        var appendSeconds: Double
        /// From the first append until every sink acknowledged the last record; nil when not
        /// waited for (`drainTimeout` 0) or when `drainTimeout` passed first.
        var deliveredSeconds: Double?
        var left: UInt64
        var acceptMedianMicroseconds: Double
        var acceptP99Microseconds: Double
        var acceptMaxMicroseconds: Double
    }

    /// Runs `records` through a fresh spool in `directory` (emptied first) with `sinks`,
    /// `fsyncInterval` as `spool_fsync`. Throws what opening the spool throws.
    static func run(records: Int, recordBytes: Int, fsyncInterval: Double, sinks: [SinkSpec], directory: String,
                    drainTimeout: Double, warn: @escaping @Sendable (String) -> Void) throws -> Result {
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let maxBytes = max(UInt64(1) << 30, UInt64(records) * UInt64(recordBytes + 64) * 2)
        let configuration = SpoolConfiguration(segmentBytes: Delivery.segmentBytes(maxBytes: maxBytes), maxBytes: maxBytes,
                                               fsyncInterval: fsyncInterval)
        let delivery = try Delivery(directory: directory, sinks: sinks, configuration: configuration,
                                    sequences: try SequenceStore(directory: nil), warn: warn)
        defer { delivery.close() }
        let prefix = Array(#"{"schema": "netnet.frame/1", "stream": "bench", "seq": "#.utf8)
        let padding = Array(repeating: UInt8(ascii: "x"), count: max(0, recordBytes - prefix.count - 24))
        var line: [UInt8] = []
        line.reserveCapacity(recordBytes + 32)
        var latencies = [Double](repeating: 0, count: records)
        var bytes = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for seq in 0..<records {
            line.removeAll(keepingCapacity: true)
            line += prefix
            line += Array(String(seq).utf8)
            line += Array(#", "pad": ""#.utf8)
            line += padding
            line += Array("\"}\n".utf8)
            bytes += line.count
            let before = DispatchTime.now().uptimeNanoseconds
            delivery.accept(kind: .frame, stream: "bench", seq: seq, line: line)
            latencies[seq] = Double(DispatchTime.now().uptimeNanoseconds - before) / 1e3
        }
        let appended = DispatchTime.now().uptimeNanoseconds
        var delivered: Double?
        var left: UInt64 = 0
        if drainTimeout > 0 {
            left = delivery.drain(timeout: drainTimeout)
            if left == 0 { delivered = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        }
        latencies.sort()
        return Result(records: records, bytes: bytes, appendSeconds: Double(appended - start) / 1e9, deliveredSeconds: delivered,
                      left: left, acceptMedianMicroseconds: BenchCommand.median(ofSorted: latencies),
                      acceptP99Microseconds: latencies[min(latencies.count - 1, latencies.count * 99 / 100)],
                      acceptMaxMicroseconds: latencies.last ?? 0)
    }
}
