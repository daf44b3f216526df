import Foundation
import Testing

/// `samples/`, what a new user copies from: the example configuration must pass `serve
/// --check-config`, and every example line must still be what the writers write: valid against
/// the schema its `schema` key names, keys in the schema's order, numbers with the documented
/// decimals (docs/json-lines.md).
@Suite("samples/")
struct SamplesTests {
    static let samples = "\(repositoryRoot)/samples"

    /// The example outputs and the schemas their lines must have.
    static let outputs = [("annotate.jsonl", ["netnet.frame/1"]), ("annotate-events.jsonl", ["netnet.event/1"]),
                          ("serve.jsonl", ["netnet.frame/1", "netnet.status/1", "netnet.event/1"])]

    @Test("samples/netnet.conf passes serve --check-config", .enabled(if: hasFFmpeg))
    func exampleConfigIsValid() throws {
        let result = try NetnetBinary.run(["serve", "--check-config", "\(Self.samples)/netnet.conf"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("2 streams (1 enabled)"), "\(result.stdout)")
    }

    /// Checks the file in argv[2] against the schemas in the folder argv[1]; argv[3] lists the
    /// schemas that must each occur at least once (comma-separated).
    static let script = #"""
import json, re, sys
from jsonschema import Draft202012Validator

folder, path, wanted = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
schemas = {}
for name, file in (("netnet.frame/1", "netnet.frame.schema.json"), ("netnet.status/1", "netnet.status.schema.json"),
                   ("netnet.event/1", "netnet.event.schema.json")):
    schema = json.load(open(f"{folder}/{file}"))
    schemas[name] = (schema, Draft202012Validator(schema))

def no_constants(name):
    raise ValueError("non-JSON constant " + name)

# The writers' fixed decimals (docs/json-lines.md), checked on the text, not the parsed value.
decimals = {"netnet.frame/1": [("pts", 6), ("inference_ms", 3)], "netnet.status/1": [("retry_in", 3)],
            "netnet.event/1": [("pts", 6), ("score", 5), ("duration", 3), ("best_score", 5)]}

text = open(path, encoding="utf-8").read()
failures = []
if not text.endswith("\n") or "\n\n" in text:
    failures.append("not newline-terminated lines without blank ones")
lines = text.rstrip("\n").split("\n")
seen = set()
for n, line in enumerate(lines, 1):
    pairs = json.loads(line, object_pairs_hook=lambda p: p, parse_constant=no_constants)
    record = json.loads(line)
    kind = record.get("schema")
    if kind not in schemas:
        failures.append(f"line {n}: unknown schema {kind!r}")
        continue
    seen.add(kind)
    schema, validator = schemas[kind]
    errors = [e.message for e in validator.iter_errors(record)]
    if errors:
        failures.append(f"line {n}: {errors[0]}")
    order = schema["required"]
    if kind == "netnet.event/1":
        order = order + next(b["then"].get("required", []) for b in schema["allOf"]
                             if b["if"]["properties"]["kind"]["const"] == record["kind"])
    if [k for k, _ in pairs] != order:
        failures.append(f"line {n}: key order {[k for k, _ in pairs]}")
    for key, places in decimals[kind]:
        if record.get(key) is not None and not re.search(r'"%s": -?[0-9]+\.[0-9]{%d}[,}]' % (key, places), line):
            failures.append(f"line {n}: {key} not written with {places} decimals")
    if kind == "netnet.frame/1":
        order = schema["properties"]["detections"]["items"]["required"]
        for det in dict(pairs)["detections"]:
            if [k for k, _ in det] != order:
                failures.append(f"line {n}: detection key order {[k for k, _ in det]}")
        for det in record["detections"]:
            if not re.search(r'"score": %s, "box": \[%s\]' % (re.escape("%.5f" % det["score"]),
                             ", ".join(re.escape("%.2f" % v) for v in det["box"])), line):
                failures.append(f"line {n}: score or box not written with 5 and 2 decimals")
for kind in wanted:
    if kind not in seen:
        failures.append(f"no {kind} line")
print(f"{path}: {len(lines)} lines checked")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
"""#

    @Test("the example outputs match their schemas and the writers' number format",
          .enabled(if: hasJSONSchema, "python3 with the jsonschema package is missing; sample lines not checked"),
          arguments: SamplesTests.outputs)
    func exampleOutputsMatchTheirSchemas(file: String, schemas: [String]) throws {
        let path = "\(Self.samples)/\(file)"
        #expect(FileManager.default.fileExists(atPath: path), "\(path) is missing")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script, "\(repositoryRoot)/docs/schemas", path, schemas.joined(separator: ",")]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("lines checked"), "\(output)")
    }

    @Test("samples/README.md names every sample file")
    func readmeNamesEverySample() throws {
        let readme = try String(contentsOfFile: "\(Self.samples)/README.md", encoding: .utf8)
        for file in ["netnet.conf"] + Self.outputs.map(\.0) {
            #expect(readme.contains("`\(file)`"), "samples/README.md does not describe \(file)")
        }
    }
}
