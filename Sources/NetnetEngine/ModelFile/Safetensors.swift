import Foundation

/// A failure to read, validate or write a model or golden file. `description` is one line that
/// names the file and what is wrong (which key or tensor, expected versus found).
public struct ModelFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One line: `PATH: what is wrong`.
    public let description: String
    /// Creates an error for `path` with a message that says what is wrong.
    public init(path: String, _ message: String) { description = "\(path): \(message)" }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    /// The element type as spelled in the file (`F32`, `F16`, …).
    public let dtype: String
    /// The tensor's dimensions, outermost first.
    public let shape: [Int]
    /// Byte offsets of the data, relative to the end of the header: `begin ..< end`.
    public let begin: Int
    /// End byte offset (exclusive), relative to the end of the header.
    public let end: Int
    /// The number of elements (the product of `shape`; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed, validated safetensors header: the tensor table and the metadata.
///
/// Parsing never trusts the file: lengths, offsets and shapes are checked for overflow, overlap
/// and bounds against the real file size before any tensor byte is read. Value type; any thread.
public struct SafetensorsHeader: Sendable {
    /// Entries by tensor name.
    public let tensors: [String: SafetensorsEntry]
    /// `__metadata__`: string to string.
    public let metadata: [String: String]
    /// Offset in the file where tensor data begins (8 + header length).
    public let dataStart: Int

    /// The largest header this reader accepts (safetensors itself caps headers at 100 MB).
    public static let maximumHeaderBytes = 16 << 20

    /// Parses and validates the header of a file whose total size is `fileSize`; `headerBytes` is
    /// the JSON text (without the 8-byte length prefix).
    public init(json headerBytes: [UInt8], fileSize: Int, path: String) throws(ModelFileError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
        } catch {
            throw ModelFileError(path: path, "header is not valid JSON")
        }
        // JSONSerialization keeps the last of two equal keys: a second `__metadata__` (or tensor,
        // or metadata key) would silently replace the first. The format has one of each.
        if let duplicate = JSONDuplicateKeys.first(in: headerBytes) {
            throw ModelFileError(path: path, "header has the key '\(duplicate.key)' twice\(duplicate.object.map { " in '\($0)'" } ?? "")")
        }
        guard let table = object as? [String: Any] else {
            throw ModelFileError(path: path, "header is not a JSON object")
        }
        let dataStart = 8 + headerBytes.count
        let dataSize = fileSize - dataStart
        var tensors: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in table {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else {
                    throw ModelFileError(path: path, "__metadata__ is not an object of strings")
                }
                for (key, item) in dict {
                    guard let text = item as? String else {
                        throw ModelFileError(path: path, "metadata key '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw ModelFileError(path: path, "tensor '\(name)': entry is not an object")
            }
            guard let dtype = entry["dtype"] as? String else {
                throw ModelFileError(path: path, "tensor '\(name)': missing dtype")
            }
            guard let shapeValues = entry["shape"] as? [Any] else {
                throw ModelFileError(path: path, "tensor '\(name)': missing shape")
            }
            var shape: [Int] = []
            var elements = 1
            for item in shapeValues {
                guard let dim = Self.integer(item), dim >= 0 else {
                    throw ModelFileError(path: path, "tensor '\(name)': shape \(shapeValues) is not a list of non-negative integers")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, product <= Int(Int32.max) else {
                    throw ModelFileError(path: path, "tensor '\(name)': shape \(shapeValues) is too large")
                }
                elements = product
                shape.append(dim)
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = Self.integer(offsets[0]), let end = Self.integer(offsets[1]) else {
                throw ModelFileError(path: path, "tensor '\(name)': data_offsets is not a pair of integers")
            }
            guard begin >= 0, end >= begin else {
                throw ModelFileError(path: path, "tensor '\(name)': data_offsets [\(begin), \(end)] are out of order")
            }
            guard end <= dataSize else {
                throw ModelFileError(path: path, "tensor '\(name)': data ends at byte \(end) but the file has \(max(dataSize, 0)) data bytes (truncated?)")
            }
            let bytesPerElement = Self.bytesPerElement(dtype)
            if let bytesPerElement, end - begin != elements * bytesPerElement {
                throw ModelFileError(path: path, "tensor '\(name)': \(end - begin) bytes for shape \(shape) of \(dtype), expected \(elements * bytesPerElement)")
            }
            tensors[name] = SafetensorsEntry(dtype: dtype, shape: shape, begin: begin, end: end)
        }
        // Overlapping data would let two tensors alias; the format forbids it.
        let ordered = tensors.sorted { ($0.value.begin, $0.value.end, $0.key) < ($1.value.begin, $1.value.end, $1.key) }
        var previousEnd = 0
        var previousName = ""
        for (name, entry) in ordered where entry.end > entry.begin {
            if entry.begin < previousEnd {
                throw ModelFileError(path: path, "tensor '\(name)' overlaps tensor '\(previousName)'")
            }
            previousEnd = entry.end
            previousName = name
        }
        self.tensors = tensors
        self.metadata = metadata
        self.dataStart = dataStart
    }

    static func integer(_ value: Any) -> Int? {
        if let number = value as? NSNumber {
            // Fractions are NSNumbers too; accept only exact integers.
            let double = number.doubleValue
            guard double.isFinite, double.rounded() == double, abs(double) < 9.0e15 else { return nil }
            return Int(double)
        }
        return nil
    }

    static func bytesPerElement(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": return 8
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": return 1
        default: return nil
        }
    }
}

/// Reads safetensors files with `pread`, so that tensor data goes straight into the caller's
/// buffers without a second copy of the file in memory. One owner per open file descriptor:
/// this class, which closes it in `deinit`. Use from one thread at a time.
public final class SafetensorsReader {
    /// The file's path, as given.
    public let path: String
    /// The validated header.
    public let header: SafetensorsHeader
    private let descriptor: Int32

    /// Opens `path` and validates its header against the file size. Anything but a regular file
    /// (a FIFO, a directory, a device such as /dev/zero, a socket) is refused before it is opened,
    /// so a FIFO nobody writes to cannot block the caller in `open(2)`: the open itself is
    /// non-blocking and the descriptor is checked again (`fstat`) in case the path changed between.
    public init(path: String) throws(ModelFileError) {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ModelFileError(path: path, String(cString: strerror(errno)))
        }
        if let kind = Self.nonRegularKind(info.st_mode) {
            throw ModelFileError(path: path, "not a regular file (\(kind)); a model is a .safetensors file")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw ModelFileError(path: path, String(cString: strerror(errno)))
        }
        guard fstat(fd, &info) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ModelFileError(path: path, message)
        }
        if let kind = Self.nonRegularKind(info.st_mode) {
            close(fd)
            throw ModelFileError(path: path, "not a regular file (\(kind)); a model is a .safetensors file")
        }
        let fileSize = Int(info.st_size)
        do throws(ModelFileError) {
            guard fileSize >= 8 else {
                throw ModelFileError(path: path, "file is \(fileSize) bytes, too short for a safetensors header")
            }
            var lengthBytes = [UInt8](repeating: 0, count: 8)
            try Self.readFully(fd, into: &lengthBytes, at: 0, path: path)
            let length = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
            guard length <= UInt64(SafetensorsHeader.maximumHeaderBytes) else {
                throw ModelFileError(path: path, "header length \(length) is larger than \(SafetensorsHeader.maximumHeaderBytes) bytes (not a safetensors file?)")
            }
            guard Int(length) + 8 <= fileSize else {
                throw ModelFileError(path: path, "header length \(length) runs past the end of the \(fileSize)-byte file (truncated?)")
            }
            var json = [UInt8](repeating: 0, count: Int(length))
            try Self.readFully(fd, into: &json, at: 8, path: path)
            header = try SafetensorsHeader(json: json, fileSize: fileSize, path: path)
        } catch {
            close(fd)
            throw error
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// What kind of file `mode` describes when it is not a regular file ("a FIFO", "a directory", …); nil for a regular file.
    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
        }
    }

    /// Copies tensor `name` (which must be `F32`) into `destination`, which has room for its elements.
    public func readFloats(_ name: String, into destination: UnsafeMutablePointer<Float>) throws(ModelFileError) {
        guard let entry = header.tensors[name] else {
            throw ModelFileError(path: path, "tensor '\(name)' is missing")
        }
        guard entry.dtype == "F32" else {
            throw ModelFileError(path: path, "tensor '\(name)': dtype \(entry.dtype), expected F32")
        }
        let raw = UnsafeMutableRawBufferPointer(start: destination, count: entry.end - entry.begin)
        try Self.readFully(descriptor, into: raw, at: header.dataStart + entry.begin, path: path)
        #if _endian(big)
        for index in 0..<entry.elementCount { destination[index] = Float(bitPattern: UInt32(littleEndian: destination[index].bitPattern)) }
        #endif
    }

    /// Returns tensor `name` (`F32`) as an array.
    public func floats(_ name: String) throws(ModelFileError) -> [Float] {
        guard let entry = header.tensors[name] else {
            throw ModelFileError(path: path, "tensor '\(name)' is missing")
        }
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: max(entry.elementCount, 1))
        defer { storage.deallocate() }
        try readFloats(name, into: storage)
        return Array(UnsafeBufferPointer(start: storage, count: entry.elementCount))
    }

    private static func readFully(_ fd: Int32, into bytes: inout [UInt8], at offset: Int, path: String) throws(ModelFileError) {
        let count = bytes.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 8)
        defer { storage.deallocate() }
        try readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]), at: offset, path: path)
        bytes = Array(storage[0..<count])
    }

    private static func readFully(_ fd: Int32, into raw: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws(ModelFileError) {
        var done = 0
        while done < raw.count {
            let got = pread(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
            if got < 0 {
                if errno == EINTR { continue }
                throw ModelFileError(path: path, "read failed: \(String(cString: strerror(errno)))")
            }
            if got == 0 {
                throw ModelFileError(path: path, "unexpected end of file at byte \(offset + done) (truncated?)")
            }
            done += got
        }
    }
}

/// Writes safetensors files: F32 tensors in name order, metadata as strings. Any thread.
public enum SafetensorsWriter {
    /// A tensor to write: its shape and its values (count must equal the product of the shape).
    public struct Tensor: Sendable {
        /// Dimensions, outermost first.
        public var shape: [Int]
        /// Row-major values.
        public var values: [Float]
        /// Creates a tensor; `values.count` must equal the product of `shape`.
        public init(shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "tensor shape \(shape) does not match \(values.count) values")
            self.shape = shape
            self.values = values
        }
    }

    /// Writes `tensors` and `metadata` to `path` atomically (a temporary file renamed into place).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String], to path: String) throws(ModelFileError) {
        let names = tensors.keys.sorted()
        var header = headerJSON(tensors, names: names, metadata: metadata)
        let dataBytes = names.reduce(0) { $0 + tensors[$1]!.values.count * 4 }
        while (header.count + 8) % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + dataBytes)
        let length = UInt64(header.count)
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8((length >> UInt64(shift)) & 0xff)) }
        out.append(contentsOf: header)
        for name in names {
            tensors[name]!.values.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(out)) else {
            throw ModelFileError(path: path, "cannot write: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw ModelFileError(path: path, "cannot write: \(message)")
        }
    }

    /// The header's JSON text, compact as the safetensors tools write it:
    /// `{"__metadata__":{"key":"value",…},"name":{"dtype":"F32","shape":[…],"data_offsets":[begin,end]},…}`,
    /// metadata keys sorted, tensors in `names` order with their data back to back. Written with
    /// `JSONText`, like the rest of netnet's JSON.
    static func headerJSON(_ tensors: [String: Tensor], names: [String], metadata: [String: String]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separate() {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separate()
            JSONText.appendRaw("\"__metadata__\":{", to: &bytes)
            for (i, key) in metadata.keys.sorted().enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                JSONText.appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                JSONText.appendString(metadata[key]!, to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            separate()
            JSONText.appendString(name, to: &bytes)
            JSONText.appendRaw(":{\"dtype\":\"F32\",\"shape\":[", to: &bytes)
            for (i, dimension) in tensor.shape.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                JSONText.appendInt(dimension, to: &bytes)
            }
            JSONText.appendRaw("],\"data_offsets\":[", to: &bytes)
            JSONText.appendInt(offset, to: &bytes)
            bytes.append(UInt8(ascii: ","))
            offset += tensor.values.count * 4
            JSONText.appendInt(offset, to: &bytes)
            JSONText.appendRaw("]}", to: &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
