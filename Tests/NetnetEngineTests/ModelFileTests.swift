import Foundation
import Testing
@testable import NetnetEngine

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "netnet-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// Rewrites a model file's header or data with `edit` and returns the new file's path.
func rewriteModel(_ source: String, to destination: String,
                  edit: (inout [String: SafetensorsWriter.Tensor], inout [String: String]) -> Void) throws {
    let reader = try SafetensorsReader(path: source)
    var tensors: [String: SafetensorsWriter.Tensor] = [:]
    for (name, entry) in reader.header.tensors {
        tensors[name] = SafetensorsWriter.Tensor(shape: entry.shape, values: try reader.floats(name))
    }
    var metadata = reader.header.metadata
    edit(&tensors, &metadata)
    try SafetensorsWriter.write(tensors, metadata: metadata, to: destination)
}

@Suite("Model files")
struct ModelFileTests {
    let directory = TemporaryDirectory()

    func smallModel(_ network: NetworkName = .netnetVGG16_300) throws -> String {
        let path = directory.file("\(network.rawValue).safetensors")
        let model = Model(randomFor: ModelDescription(network: network, width: 0.125, classes: ["person", "car"]), seed: 3)
        try model.write(to: path)
        return path
    }

    @Test("write then load gives the same description and weights")
    func roundTrip() throws {
        let description = ModelDescription(network: .netnetVGG16_512, width: 0.125, classes: ["a", "b \"quoted\""], text: "round trip")
        let model = Model(randomFor: description, seed: 9)
        let path = directory.file("rt.safetensors")
        try model.write(to: path)
        let loaded = try Model(path: path)
        #expect(loaded.description == description)
        for (name, shape) in model.plan.expectedTensors {
            let count = shape.reduce(1, *)
            let a = UnsafeBufferPointer(start: model.tensor(name)!, count: count)
            let b = UnsafeBufferPointer(start: loaded.tensor(name)!, count: count)
            #expect(Array(a) == Array(b), "\(name) differs")
        }
        let header = try SafetensorsReader(path: path).header
        #expect(header.dataStart % 8 == 0)
    }

    @Test("every gate and placement survives a write and a load; the defaults are not written",
          arguments: NEMGate.allCases, NEMPlacement.allCases)
    func ablationRoundTrip(gate: NEMGate, placement: NEMPlacement) throws {
        let modules = ModuleSwitches(nnfm: true, nem: true, ntm: true, gate: gate, placement: placement)
        let description = ModelDescription(network: .netnetVGG16_300, width: 0.0625, classes: ["a"], modules: modules)
        let path = directory.file("ablation-\(gate.rawValue)-\(placement.rawValue).safetensors")
        try Model(randomFor: description, seed: 3).write(to: path)
        #expect(try Model(path: path).description.modules == modules)
        let written = description.metadata["modules"]!
        #expect(written.contains("\"gate\"") == (gate != .channel) && written.contains("\"placement\"") == (placement != .skipped), "\(written)")
    }

    @Test("He initialisation has the right spread and is reproducible")
    func heInit() throws {
        let d = ModelDescription(network: .ssdVGG16_300, width: 0.25, classes: ["a"])
        let a = Model(randomFor: d, seed: 1), b = Model(randomFor: d, seed: 1)
        let layer = a.plan.layers.first { $0.name == "backbone.conv3_1" }!
        let values = Array(UnsafeBufferPointer(start: a.tensor("backbone.conv3_1.weight")!, count: layer.geometry.weightCount))
        let variance = values.reduce(0) { $0 + Double($1) * Double($1) } / Double(values.count)
        let expected = 2.0 / Double(layer.geometry.inputChannels * 9)
        #expect(abs(variance / expected - 1) < 0.05)
        #expect(values == Array(UnsafeBufferPointer(start: b.tensor("backbone.conv3_1.weight")!, count: values.count)))
        #expect(a.tensor("l2norm.weight")!.pointee == 20)
    }

    struct BadCase: Sendable, CustomStringConvertible {
        let name: String
        let expectedFragment: String
        let edit: @Sendable (inout [String: SafetensorsWriter.Tensor], inout [String: String]) -> Void
        var description: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(name: "wrong shape", expectedFragment: "tensor 'backbone.conv2_1.weight': expected shape [16, 8, 3, 3], found [16, 8, 1, 9]") { t, _ in
            t["backbone.conv2_1.weight"]!.shape = [16, 8, 1, 9]
        },
        BadCase(name: "missing tensor", expectedFragment: "tensor 'netm24.transfer.bias' is missing") { t, _ in
            t["netm24.transfer.bias"] = nil
        },
        BadCase(name: "extra tensor", expectedFragment: "unexpected tensor 'stray.weight'") { t, _ in
            t["stray.weight"] = SafetensorsWriter.Tensor(shape: [2], values: [1, 2])
        },
        BadCase(name: "mislabelled network", expectedFragment: "metadata 'network' is 'vgg16'") { _, m in
            m["network"] = "vgg16"
        },
        BadCase(name: "network of another size", expectedFragment: "unexpected tensor 'netm13.conv.bias'") { _, m in
            m["network"] = "ssd-vgg16-300"; m["modules"] = nil
        },
        BadCase(name: "class count disagrees with heads", expectedFragment: "tensor 'heads.conf1.weight': expected shape [16, 64, 3, 3], found [12, 64, 3, 3]") { _, m in
            m["classes"] = "[\"person\",\"car\",\"dog\"]"
        },
        BadCase(name: "missing format", expectedFragment: "metadata key 'format' is missing") { _, m in m["format"] = nil },
        BadCase(name: "unknown metadata key", expectedFragment: "unknown metadata key 'colour'") { _, m in m["colour"] = "red" },
        BadCase(name: "bad width", expectedFragment: "metadata 'width' is 'wide'") { _, m in m["width"] = "wide" },
        BadCase(name: "classes not JSON", expectedFragment: "metadata 'classes' is not a JSON array of strings") { _, m in m["classes"] = "person,car" },
        BadCase(name: "priors of the wrong length", expectedFragment: "min_sizes has 2 entries, expected 6") { _, m in
            m["priors"] = "{\"min_sizes\":[1,2],\"max_sizes\":[1,2,3,4,5,6],\"steps\":[8,16,32,64,100,300],\"aspect_ratios\":[[2],[2,3],[2,3],[2,3],[2],[2]],\"variances\":[0.1,0.2],\"clip\":true}"
        },
        BadCase(name: "normalisation with an unknown key", expectedFragment: "unknown key 'gamma'") { _, m in
            m["normalisation"] = "{\"order\":\"bgr\",\"mean\":[1,2,3],\"std\":[1,1,1],\"gamma\":2}"
        },
        BadCase(name: "an erasing gate the engine does not know", expectedFragment: "metadata 'modules' is not valid: 'gate' is not one of the allowed values") { _, m in
            m["modules"] = "{\"nnfm\":true,\"nem\":true,\"ntm\":true,\"gate\":\"softmax\"}"
        },
        BadCase(name: "a placement whose tensors the file lacks", expectedFragment: "(not part of netnet-vgg16-300 with modules nnfm+nem+ntm, placement nnem)") { _, m in
            m["modules"] = "{\"nnfm\":true,\"nem\":true,\"ntm\":true,\"placement\":\"nnem\"}"
        },
        BadCase(name: "NaN weights", expectedFragment: "tensor 'backbone.conv1_1.bias' holds NaN") { t, _ in
            t["backbone.conv1_1.bias"]!.values[0] = .nan
        },
    ]

    @Test("inconsistent files are refused with one line naming what is wrong", arguments: badCases)
    func refused(_ bad: BadCase) throws {
        let source = try smallModel(.netnetVGG16_300)
        let path = directory.file("bad.safetensors")
        try rewriteModel(source, to: path, edit: bad.edit)
        do {
            _ = try Model(path: path)
            Issue.record("\(bad.name): loaded")
        } catch {
            #expect(error.description.contains(bad.expectedFragment), "\(bad.name): \(error.description)")
            #expect(error.description.hasPrefix(path + ": "))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("truncated and non-model files are refused")
    func truncatedAndGarbage() throws {
        let source = try smallModel()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "too short"),
            ("half header", bytes.prefix(20), "runs past the end"),
            ("half data", bytes.prefix(bytes.count / 2), "truncated"),
            ("one byte short", bytes.prefix(bytes.count - 1), "truncated"),
            ("text", Data("hello, this is not a model at all\n".utf8), "larger than"),
            ("JSON garbage", { var d = Data([8, 0, 0, 0, 0, 0, 0, 0]); d.append(Data("{\"a\":1}x".utf8)); return d }(), "header is not valid JSON"),
            ("JSON not a model", { var d = Data([8, 0, 0, 0, 0, 0, 0, 0]); d.append(Data("{\"a\":1} ".utf8)); return d }(), "tensor 'a': entry is not an object"),
            ("no metadata", { var d = Data([8, 0, 0, 0, 0, 0, 0, 0]); d.append(Data("{}      ".utf8)); return d }(), "metadata key 'format' is missing"),
        ]
        for (name, data, fragment) in cases {
            let path = directory.file("\(name).safetensors")
            _ = FileManager.default.createFile(atPath: path, contents: data)
            #expect(throws: ModelFileError.self, "\(name)") { _ = try Model(path: path) }
            do { _ = try Model(path: path) } catch {
                #expect(error.description.contains(fragment), "\(name): \(error.description)")
            }
        }
        #expect(throws: ModelFileError.self) { _ = try Model(path: directory.file("does-not-exist.safetensors")) }
        #expect(throws: ModelFileError.self) { _ = try Model(path: directory.path) }
    }

    /// A seeded mutation fuzzer: flips, overwrites, inserts and truncates bytes of a valid file
    /// (header and data) and loads each result. Every case must load or throw a one-line
    /// `ModelFileError`; a crash fails the whole run.
    @Test("fuzz: mutated files never crash the loader")
    func fuzz() throws {
        let source = try smallModel(.ssdVGG16_300)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let headerLength = Int(original[0]) | Int(original[1]) << 8 | Int(original[2]) << 16
        var generator = SplitMix64(seed: 2024)
        let path = directory.file("fuzz.safetensors")
        var refused = 0, loaded = 0
        for round in 0..<400 {
            let bytes = FuzzMutator.mutate(original, headerLength: headerLength, round: round, generator: &generator)
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                _ = try Model(path: path)
                loaded += 1
            } catch {
                refused += 1
                #expect(!error.description.isEmpty && !error.description.contains("\n"))
            }
        }
        #expect(refused > 300, "only \(refused) of 400 mutations were refused")
        #expect(refused + loaded == 400)
    }
}

/// Mutations for the model-file fuzz test and the CLI's corpus test.
enum FuzzMutator {
    static func mutate(_ original: [UInt8], headerLength: Int, round: Int, generator: inout SplitMix64) -> [UInt8] {
        var bytes = original
        let headerEnd = 8 + headerLength
        func position(inHeader: Bool) -> Int {
            inHeader ? Int(generator.next() % UInt64(headerEnd)) : headerEnd + Int(generator.next() % UInt64(bytes.count - headerEnd))
        }
        switch round % 8 {
        case 0: // flip bits in the header
            for _ in 0..<(1 + Int(generator.next() % 4)) { bytes[position(inHeader: true)] ^= UInt8(1 << (generator.next() % 8)) }
        case 1: // truncate anywhere
            bytes.removeLast(1 + Int(generator.next() % UInt64(bytes.count - 1)))
        case 2: // overwrite a header byte with a JSON-significant character
            let specials = Array("{}[]\":,0123456789-.eE ".utf8)
            bytes[position(inHeader: true)] = specials[Int(generator.next() % UInt64(specials.count))]
        case 3: // change the length prefix
            let value = generator.next()
            for i in 0..<8 { bytes[i] = UInt8((value >> (8 * UInt64(i))) & 0xff) }
            if round % 16 == 3 { bytes[3...7] = [0, 0, 0, 0, 0] }
        case 4: // insert bytes into the header
            let at = position(inHeader: true)
            bytes.insert(contentsOf: (0..<(1 + Int(generator.next() % 8))).map { _ in UInt8(generator.next() & 0xff) }, at: at)
        case 5: // corrupt data bytes into NaN / infinity patterns
            let at = position(inHeader: false) & ~3
            if at + 4 <= bytes.count { bytes[at..<(at + 4)] = [0x00, 0x00, 0xc0, 0x7f] }
        case 6: // swap two digits of the header (shapes and offsets)
            let digits = (8..<headerEnd).filter { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }
            if let a = digits.randomElement(using: &generator) { bytes[a] = 0x30 + UInt8(generator.next() % 10) }
        default: // delete a header range
            let start = position(inHeader: true)
            let end = min(headerEnd, start + 1 + Int(generator.next() % 32))
            bytes.removeSubrange(start..<end)
        }
        return bytes
    }
}

/// Rewrites the JSON header of the safetensors file at `path` (same data bytes after it).
func rewriteHeader(_ path: String, to destination: String, _ edit: (String) -> String) throws {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) })
    var header = Array(edit(String(decoding: bytes[8..<(8 + length)], as: UTF8.self)).utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    var out: [UInt8] = (0..<8).map { UInt8((UInt64(header.count) >> (8 * UInt64($0))) & 0xff) }
    out += header
    out += bytes[(8 + length)...]
    try Data(out).write(to: URL(fileURLWithPath: destination))
}

@Suite("Model files: hostile input")
struct HostileModelFileTests {
    let directory = TemporaryDirectory()

    func smallModel() throws -> String {
        let path = directory.file("small.safetensors")
        let model = Model(randomFor: ModelDescription(network: .ssdVGG16_300, width: 0.125, classes: ["person", "car"], text: "first"), seed: 3)
        try model.write(to: path)
        return path
    }

    @Test("a FIFO, a directory, /dev/zero and a socket are refused before open, naming the path and the kind")
    func nonRegularFiles() throws {
        let fifo = directory.file("model.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let socketPath = directory.file("model.sock")
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sock) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(socketPath.utf8)
            for (i, b) in bytes.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        // Without the check, opening the FIFO blocks this test forever (nobody writes to it).
        for (path, kind) in [(fifo, "a FIFO"), (directory.path, "a directory"), ("/dev/zero", "a character device"), (socketPath, "a socket")] {
            do {
                _ = try SafetensorsReader(path: path)
                Issue.record("\(path) was accepted")
            } catch {
                let text = "\(error)"
                #expect(text.hasPrefix("\(path): ") && text.contains("not a regular file (\(kind))"), "\(text)")
            }
        }
    }

    @Test("a key twice in the header is refused, naming the key: a second __metadata__, a tensor, a metadata key, a nested key")
    func duplicateKeys() throws {
        let path = try smallModel()
        let original = try Model(path: path)
        #expect(original.description.text == "first")
        let cases: [(String, (String) -> String, String)] = [
            ("second __metadata__", { header in
                // Last-one-wins would relabel every class and pass the other checks.
                let metadata = try! JSONSerialization.jsonObject(with: Data(header.utf8)) as! [String: Any]
                var second = metadata["__metadata__"] as! [String: String]
                second["classes"] = "[\"cat\",\"dog\"]"
                let text = String(decoding: try! JSONSerialization.data(withJSONObject: second, options: [.sortedKeys]), as: UTF8.self)
                return String(header.dropLast(header.reversed().prefix { $0 != "}" }.count + 1)) + ",\"__metadata__\":\(text)}"
            }, "'__metadata__' twice"),
            ("metadata key", { $0.replacingOccurrences(of: "\"description\":\"first\"", with: "\"description\":\"first\",\"description\":\"second\"") },
             "'description' twice in '__metadata__'"),
            ("escaped duplicate", { $0.replacingOccurrences(of: "\"description\":\"first\"", with: "\"description\":\"first\",\"\\u0064escription\":\"second\"") },
             "'description' twice in '__metadata__'"),
            ("tensor", { header in
                let range = header.range(of: #""heads\.conf1\.bias":\{[^}]*\}"#, options: .regularExpression)!
                return header.replacingCharacters(in: range, with: header[range] + "," + header[range])
            }, "'heads.conf1.bias' twice"),
        ]
        for (name, edit, expected) in cases {
            let edited = directory.file("dup-\(name.replacingOccurrences(of: " ", with: "-")).safetensors")
            try rewriteHeader(path, to: edited, edit)
            do { _ = try Model(path: edited); Issue.record("\(name): accepted") } catch {
                #expect("\(error)".hasPrefix("\(edited): ") && "\(error)".contains(expected), "\(name): \(error)")
            }
        }
        // A key repeated inside a JSON-valued metadata entry (normalisation) is refused too.
        let nested = directory.file("dup-nested.safetensors")
        try rewriteModel(path, to: nested) { _, metadata in
            metadata["normalisation"] = "{\"order\":\"bgr\",\"mean\":[104,117,123],\"std\":[1,1,1],\"order\":\"rgb\"}"
        }
        do { _ = try Model(path: nested); Issue.record("accepted a repeated normalisation key") } catch {
            #expect("\(error)".contains("'order' appears twice"), "\(error)")
        }
    }

    @Test("the duplicate-key scanner: equal keys in one object only, strings and escapes understood")
    func scanner() {
        func first(_ text: String) -> JSONDuplicateKeys.Duplicate? { JSONDuplicateKeys.first(in: Array(text.utf8)) }
        #expect(first(#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#) == nil)
        #expect(first(#"{"a":"{\"a\":1,\"a\":2}"}"#) == nil, "keys inside a string value are not keys")
        #expect(first(#"{"a":1,"a":2}"#) == .init(key: "a", object: nil))
        #expect(first(#"{"x":{"k":1,"k\"":2,"k":3}}"#) == .init(key: "k", object: "x"))
        #expect(first(#"{"x":[{"k":1,"\u006b":2}]}"#) == .init(key: "k", object: "x"))
        #expect(first(#"{"\ud83d\ude00":1,"😀":2}"#) == .init(key: "😀", object: nil))
    }
}
