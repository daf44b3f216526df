import Foundation
import Testing
@testable import NetnetEngine

@Suite("Safetensors writer")
struct SafetensorsWriterTests {
    let directory = TemporaryDirectory()

    /// The header text of the file at `path` (the length prefix and the padding dropped).
    func headerText(_ path: String) throws -> String {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        #expect((8 + length) % 8 == 0, "data does not start 8-aligned")
        return String(decoding: bytes[8..<(8 + length)], as: UTF8.self).trimmingCharacters(in: .init(charactersIn: " "))
    }

    @Test("the header is compact JSON: metadata first, keys and tensors in name order, offsets back to back")
    func headerBytes() throws {
        let path = directory.file("small.safetensors")
        try SafetensorsWriter.write(["b": .init(shape: [2], values: [1, 2]), "a.w": .init(shape: [1, 2], values: [3, 4])],
                                    metadata: ["z": "x", "description": "first"], to: path)
        #expect(try headerText(path) == #"{"__metadata__":{"description":"first","z":"x"},"#
                + #""a.w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#)
        let reader = try SafetensorsReader(path: path)
        #expect(try reader.floats("a.w") == [3, 4] && reader.floats("b") == [1, 2])
        let bare = directory.file("bare.safetensors")
        try SafetensorsWriter.write(["t": .init(shape: [1], values: [5])], metadata: [:], to: bare)
        #expect(try headerText(bare) == #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#)
    }

    @Test("names and metadata that need escaping come back unchanged through the strict reader")
    func escapedTextRoundTrips() throws {
        let odd = ["say \"hi\"", "back\\slash", "tab\tnew\nline\r", "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}", "café 🚗 ψ", "/slash/"]
        var tensors: [String: SafetensorsWriter.Tensor] = [:]
        var metadata: [String: String] = [:]
        for (i, text) in odd.enumerated() {
            tensors["t\(i) \(text)"] = .init(shape: [1, 1], values: [Float(i)])
            metadata["k\(i) \(text)"] = text
        }
        let path = directory.file("odd.safetensors")
        try SafetensorsWriter.write(tensors, metadata: metadata, to: path)
        let reader = try SafetensorsReader(path: path)
        #expect(reader.header.metadata == metadata)
        #expect(Set(reader.header.tensors.keys) == Set(tensors.keys))
        for (name, tensor) in tensors { #expect(try reader.floats(name) == tensor.values, "\(name)") }
        let header = try headerText(path)
        #expect(header.contains(#""say \"hi\"""#) && header.contains(#""\u0000\u0001\b\f\u001f\u007f""#), "\(header)")
    }
}
