import Foundation

/// Writes NumPy `.npy` files (format 1.0, little-endian float32, C order). Any thread.
public enum NumpyFile {
    /// Writes `values` with `shape` to `path`; throws a one-line error naming the path.
    public static func write(_ values: UnsafeBufferPointer<Float>, shape: [Int], to path: String) throws(ModelFileError) {
        precondition(shape.reduce(1, *) == values.count, "npy shape \(shape) does not match \(values.count) values")
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(\(shape.map(String.init).joined(separator: ", ")))"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(header.utf8.count)
        bytes += [UInt8(length & 0xff), UInt8(length >> 8)]
        bytes += Array(header.utf8)
        bytes += Array(UnsafeRawBufferPointer(values))
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw ModelFileError(path: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}
