/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF;
/// the check value of "123456789" is 0xE3069283), one table lookup per byte. The spool's record
/// checksum (docs/spool.md). Its bit-by-bit twin is in the tests. Pure; any thread.
public enum CRC32C {
    /// The 256 remainders of one byte, made once.
    static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The running (not yet finalised) CRC `crc` continued over `bytes`. Start at `start`, end with
    /// `finish`. Pure; any thread.
    @inline(__always)
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c
    }

    /// The running value before any byte.
    public static let start: UInt32 = 0xFFFF_FFFF

    /// The checksum from a running value.
    @inline(__always) public static func finish(_ crc: UInt32) -> UInt32 { crc ^ 0xFFFF_FFFF }

    /// The CRC-32C of `bytes`. Pure; any thread.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { finish(update(start, $0)) }
    }
}
