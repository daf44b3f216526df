#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import NetnetSpool

/// SplitMix64: reproducible random bytes for the tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The CRC-32C bit by bit, the plain twin of `CRC32C.checksum`.
func plainCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc & 1) == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

/// A fresh empty directory under /tmp, removed by `removeTree`.
func temporaryDirectory() -> String {
    var template = Array("/tmp/netnet-spool-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil)
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func removeTree(_ path: String) {
    _ = try? SpoolFiles.list(path).forEach { name in
        let child = path + "/" + name
        var info = stat()
        if stat(child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
    }
    rmdir(path)
}

/// Record `i`'s payload: 80 bytes (100 with the header) that say which record they are.
func payload(_ i: UInt64, size: Int = 80) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: i &* 31 &+ UInt64($0)) }
}

/// 100-byte records, 10 per 1000-byte segment.
let small = SpoolConfiguration(segmentBytes: 1000, maxBytes: 1 << 20, fsyncInterval: 0.5)

func segmentPath(_ directory: String, _ first: UInt64) -> String {
    directory + "/" + SpoolFormat.segmentName(first)
}

func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : -1
}

func segmentFiles(_ directory: String) -> [String] {
    ((try? SpoolFiles.list(directory)) ?? []).filter { $0.hasSuffix(".seg") }.sorted()
}

/// Overwrites `bytes` at `offset` of `path`.
func patch(_ path: String, at offset: Int, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY)
    precondition(fd >= 0)
    _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
    close(fd)
}

/// Appends `count` records numbered from the spool's next index and checks the indices.
@discardableResult
func fill(_ spool: Spool, _ count: Int) throws -> [UInt64] {
    var indices: [UInt64] = []
    for _ in 0..<count {
        let next = spool.figures().nextIndex
        indices.append(try spool.append(payload(next)))
    }
    return indices
}
