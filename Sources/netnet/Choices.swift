import ArgumentParser
import Foundation
import NetnetEngine
import NetnetKernels
import NetnetRing

// The options with a fixed set of values are these enums, parsed once by the argument parser.
extension Precision: ExpressibleByArgument {}
extension GEMMLibrary: ExpressibleByArgument {}
extension ConvolutionAlgorithm: ExpressibleByArgument {}
extension BackPressurePolicy: ExpressibleByArgument {}
extension NetworkName: ExpressibleByArgument {}
extension Model.HeadInit: ExpressibleByArgument {}

extension NetworkName {
    /// `--network`'s parser: a network by name, or "unknown network 'yolo'; choose one of …".
    static let argument: @Sendable (String) throws -> NetworkName = { text in
        guard let name = NetworkName(rawValue: text) else {
            throw ValidationError("unknown network '\(text)'; choose one of \(NetworkName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return name
    }
}

/// `bench --winograd-way`: the engine's fixed rule (`auto`), or one way forced on every layer
/// that has two.
enum WinogradWayChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, shared, parts

    /// The way to force, nil for the rule.
    var way: OneDNNConvolution.WinogradWay? { OneDNNConvolution.WinogradWay(rawValue: rawValue) }
}

/// The parser of an enum option's value: one of `Value`'s cases by name, or the error the
/// commands have always given ("--precision must be fp32 or bf16, not 'fp16'"), which the argument
/// parser prints after its own "The value … is invalid" line.
func choice<Value: RawRepresentable & CaseIterable & ExpressibleByArgument>(_ flag: String, wording: String = "not")
    -> @Sendable (String) throws -> Value where Value.RawValue == String {
    { text in
        guard let value = Value(rawValue: text) else {
            throw ValidationError("\(flag) must be \(choiceList(Value.allCases.map(\.rawValue))), \(wording) '\(text)'")
        }
        return value
    }
}

/// "a or b", "a, b or c".
func choiceList(_ names: [String]) -> String {
    names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " or " + names.last!
}

/// The environment variables the commands that run the network on demand (`bench`, `detect`,
/// `parity`, `annotate`) read as defaults for flags not given: `NETNET_PRECISION`,
/// `NETNET_GEMM`, `NETNET_CONV`. `serve` reads none of them: its configuration file is its
/// interface. A value that is not one of the flag's is an error naming the variable.
enum EnvironmentDefaults {
    /// `name`'s value as one of `Value`'s cases; nil when unset or empty. Throws a
    /// `ValidationError` naming the variable and the values it may take.
    static func value<Value: RawRepresentable & CaseIterable>(_ name: String) throws -> Value?
    where Value.RawValue == String {
        guard let raw = ProcessInfo.processInfo.environment[name], !raw.isEmpty else { return nil }
        guard let value = Value(rawValue: raw) else {
            throw ValidationError("\(name) must be \(choiceList(Value.allCases.map(\.rawValue))), not '\(raw)'")
        }
        return value
    }

    /// `NETNET_PRECISION`.
    static func precision() throws -> Precision? { try value("NETNET_PRECISION") }
    /// `NETNET_GEMM`.
    static func gemm() throws -> GEMMLibrary? { try value("NETNET_GEMM") }
    /// `NETNET_CONV`.
    static func convolution() throws -> ConvolutionAlgorithm? { try value("NETNET_CONV") }
}
