/// The record layout on disk (docs/spool.md): a 20-byte header, then the payload.
///
///     0      magic 0xA7
///     1      version 1
///     2..3   reserved, 0
///     4..7   payload length, UInt32 little-endian
///     8..15  append time, ns since the Unix epoch, UInt64 little-endian
///     16..19 CRC-32C of bytes 0..15 and the payload, UInt32 little-endian
enum SpoolFormat {
    static let magic: UInt8 = 0xA7
    static let version: UInt8 = 1
    static let headerBytes = 20

    /// Appends the header and payload of one record to `buffer`.
    static func encode(_ payload: [UInt8], time: UInt64, into buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(magic)
        buffer.append(version)
        buffer.append(0); buffer.append(0)
        appendLittleEndian(UInt32(payload.count), to: &buffer)
        appendLittleEndian(time, to: &buffer)
        var crc = buffer.withUnsafeBytes { CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: $0[start..<start + 16])) }
        crc = payload.withUnsafeBytes { CRC32C.update(crc, $0) }
        appendLittleEndian(CRC32C.finish(crc), to: &buffer)
        buffer.append(contentsOf: payload)
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { buffer.append(contentsOf: $0) }
    }

    static func readLittleEndian<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, at offset: Int, as: T.Type) -> T {
        var v = T.zero
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + MemoryLayout<T>.size])) }
        return T(littleEndian: v)
    }

    /// What a scan of one segment's bytes found.
    struct Scan {
        /// Start offset of each good record, in order.
        var offsets: [UInt32] = []
        /// Append time of the first good record (0 when none).
        var firstTime: UInt64 = 0
        /// Bytes of good records from the start.
        var goodBytes = 0
        /// The first bad record: its offset and what is wrong, nil when the file is clean.
        var problem: (offset: Int, reason: SpoolWarning.RecordProblem, torn: Bool)?
    }

    /// Checks every record of a segment from the start, stopping at the first bad one. A bad record
    /// is `torn` (a write cut short at the end of the file) when its header or payload is short,
    /// when it is the last record in the file and fails its CRC, or when every byte from it to the
    /// end of the file is zero (blocks allocated but never written before a power cut).
    static func scan(_ bytes: UnsafeRawBufferPointer, segmentBytes: UInt64) -> Scan {
        var scan = Scan()
        var offset = 0
        let count = bytes.count
        while offset < count {
            func bad(_ reason: SpoolWarning.RecordProblem, torn: Bool) -> Scan {
                var s = scan
                let zeros = !bytes[offset...].contains { $0 != 0 }
                s.problem = (offset, reason, torn || zeros)
                return s
            }
            if count - offset < headerBytes { return bad(.badLength, torn: true) }
            if bytes[offset] != magic || bytes[offset + 1] != version { return bad(.badMagic, torn: false) }
            let length = Int(readLittleEndian(bytes, at: offset + 4, as: UInt32.self))
            if UInt64(headerBytes + length) > segmentBytes { return bad(.badLength, torn: false) }
            let end = offset + headerBytes + length
            if end > count { return bad(.badLength, torn: true) }
            var crc = CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 16]))
            crc = CRC32C.update(crc, UnsafeRawBufferPointer(rebasing: bytes[offset + headerBytes..<end]))
            if CRC32C.finish(crc) != readLittleEndian(bytes, at: offset + 16, as: UInt32.self) {
                return bad(.checksumMismatch, torn: end == count)
            }
            if scan.offsets.isEmpty { scan.firstTime = readLittleEndian(bytes, at: offset + 8, as: UInt64.self) }
            scan.offsets.append(UInt32(offset))
            offset = end
            scan.goodBytes = end
        }
        return scan
    }

    /// `00000000000000000042.seg` for first index 42.
    static func segmentName(_ first: UInt64) -> String {
        let digits = String(first)
        return String(repeating: "0", count: 20 - digits.count) + digits + ".seg"
    }

    /// The first index a segment file name stands for, or nil if it is not one.
    static func segmentFirst(_ name: String) -> UInt64? {
        guard name.utf8.count == 24, name.hasSuffix(".seg") else { return nil }
        let digits = name.prefix(20)
        guard digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return UInt64(digits)
    }

    /// A cursor file's text: `netnet-spool-cursor 1 NEXT CRC\n`, CRC being the CRC-32C of the
    /// text before its space, as 8 lowercase hex digits.
    static func cursorText(next: UInt64) -> [UInt8] {
        let body = "netnet-spool-cursor 1 \(next)"
        let crc = String(CRC32C.checksum(Array(body.utf8)), radix: 16)
        return Array((body + " " + String(repeating: "0", count: 8 - crc.count) + crc + "\n").utf8)
    }

    /// The next index in a cursor file's text, or nil if it is not exactly one well-formed line.
    static func parseCursor(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.last == 10, let text = String(validating: bytes.dropLast(), as: UTF8.self) else { return nil }
        let fields = text.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "netnet-spool-cursor", fields[1] == "1",
              let next = UInt64(fields[2]), fields[3].count == 8 else { return nil }
        return cursorText(next: next) == bytes ? next : nil
    }
}
