import Foundation
import Testing
import NetnetEngine
@testable import NetnetPipeline

/// Validates real `JSONLinesWriter` output against docs/schemas/netnet.frame.schema.json with
/// python3's `jsonschema` (Draft 2020-12), and proves the schema strict with lines that must fail.
/// Skipped, with a message, when python3 or its jsonschema package is missing.
@Suite struct SchemaTests {
    static let python = findOnPath("python3")

    static let hasJSONSchema: Bool = {
        guard let python else { return false }
        return (try? runProgram(python, ["-c", "import jsonschema; jsonschema.Draft202012Validator"]).status) == 0
    }()

    static let schemaPath = packageRoot.appendingPathComponent("docs/schemas/netnet.frame.schema.json").path

    /// Checks every line of argv[2] against the schema in argv[1] (validity, key order, no NaN), then
    /// mutates the first line with a detection into lines that must be rejected.
    static let script = #"""
import json, sys
from jsonschema import Draft202012Validator

schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
order = schema["required"]
detection_order = schema["properties"]["detections"]["items"]["required"]

def no_constants(name):
    raise ValueError("non-JSON constant " + name)

text = open(sys.argv[2], encoding="utf-8").read()
assert text.endswith("\n"), "output must end with a newline"
lines = text[:-1].split("\n")
failures = []
sample = None
for n, line in enumerate(lines):
    pairs = json.loads(line, object_pairs_hook=lambda p: p, parse_constant=no_constants)
    keys = [k for k, _ in pairs]
    if keys != order:
        failures.append("line %d: key order %s" % (n, keys))
    for det in dict(pairs)["detections"]:
        if [k for k, _ in det] != detection_order:
            failures.append("line %d: detection key order %s" % (n, [k for k, _ in det]))
    obj = json.loads(line)
    errors = [e.message for e in validator.iter_errors(obj)]
    if errors:
        failures.append("line %d invalid: %s" % (n, errors))
    if sample is None and obj["detections"]:
        sample = obj

def mutated(change):
    obj = json.loads(json.dumps(sample))
    change(obj)
    return obj

negatives = {
    "extra top-level key": lambda o: o.update(extra=1),
    "missing key dropped": lambda o: o.pop("dropped"),
    "missing key inferred": lambda o: o.pop("inferred"),
    "extra detection key": lambda o: o["detections"][0].update(area=5.0),
    "missing detection key score": lambda o: o["detections"][0].pop("score"),
    "box of 3 numbers": lambda o: o["detections"][0].update(box=[1.0, 2.0, 3.0]),
    "box with a string": lambda o: o["detections"][0].update(box=[1.0, 2.0, 3.0, "4"]),
    "wrong schema": lambda o: o.update(schema="netnet.frame/2"),
    "seq as string": lambda o: o.update(seq="1"),
    "negative dropped": lambda o: o.update(dropped=-1),
    "time without milliseconds": lambda o: o.update(time="2026-11-25T03:58:01Z"),
    "not inferred but timed": lambda o: o.update(inferred=False),
    "score above 1": lambda o: o["detections"][0].update(score=1.5),
    "null score": lambda o: o["detections"][0].update(score=None),
}
if sample is None:
    failures.append("no line with detections to mutate")
else:
    for name, change in negatives.items():
        if validator.is_valid(mutated(change)):
            failures.append("schema accepted a line with " + name)
print("validated %d lines, rejected %d bad variants" % (len(lines), len(negatives)))
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
"""#

    @Test(.enabled(if: SchemaTests.hasJSONSchema, "python3 with the jsonschema package is not available; schema test skipped"))
    func writerOutputValidatesAndSchemaIsStrict() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("out.jsonl").path
        let writer = try JSONLinesWriter(path: output)
        try writer.write(sampleRecord(detections: 3), seq: 0)
        try writer.write(sampleRecord(frame: 43, detections: 3, inferred: false), seq: 0)
        var odd = sampleRecord(stream: "ünïcode \"cam\"\n", frame: 0, detections: 0)
        odd.pts = nil
        try writer.write(odd, seq: 0)
        var early = sampleRecord(frame: 7, detections: 1)
        early.pts = -0.033367
        early.timeNanoseconds = -1
        early.detections[0].score = 1
        early.detections[0].box = [-3.333, 0, 1e6, 0.005]
        try writer.write(early, seq: 0)
        for i in 0..<50 { try writer.write(sampleRecord(stream: "bulk", frame: i, detections: i % 4), seq: i) }
        try writer.close()

        let scriptPath = dir.appendingPathComponent("validate.py").path
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let result = try runProgram(Self.python!, [scriptPath, Self.schemaPath, output])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("validated 54 lines, rejected 14 bad variants"), "\(result.output)")
    }

    static let eventSchemaPath = packageRoot.appendingPathComponent("docs/schemas/netnet.event.schema.json").path

    /// Checks every event line of argv[2] against the schema in argv[1] (validity; key order: the
    /// common keys, then the kind's), then mutates them into lines that must be rejected.
    static let eventScript = #"""
import json, sys
from jsonschema import Draft202012Validator

schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
common = schema["required"]
own = {branch["if"]["properties"]["kind"]["const"]: branch["then"].get("required", []) for branch in schema["allOf"]}
failures = []
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
samples = {}
for n, line in enumerate(lines):
    pairs = json.loads(line, object_pairs_hook=lambda p: p, parse_constant=lambda c: failures.append("constant " + c))
    obj = json.loads(line)
    keys = [k for k, _ in pairs]
    if keys != common + own[obj["kind"]]:
        failures.append("line %d: key order %s" % (n, keys))
    errors = [e.message for e in validator.iter_errors(obj)]
    if errors:
        failures.append("line %d invalid: %s" % (n, errors))
    samples.setdefault(obj["kind"], obj)

def mutated(kind, change):
    obj = json.loads(json.dumps(samples[kind]))
    change(obj)
    return obj

negatives = {
    "start with an end's key": ("object_start", lambda o: o.update(reason="lost")),
    "end without best_box": ("object_end", lambda o: o.pop("best_box")),
    "end with an unknown reason": ("object_end", lambda o: o.update(reason="vanished")),
    "unknown kind": ("object_start", lambda o: o.update(kind="object_middle")),
    "track id 0": ("object_start", lambda o: o.update(track_id=0)),
    "null track id": ("object_end", lambda o: o.update(track_id=None)),
    "extra key": ("object_end", lambda o: o.update(colour="red")),
    "missing seq": ("object_start", lambda o: o.pop("seq")),
    "negative duration": ("object_end", lambda o: o.update(duration=-1.0)),
    "frame schema": ("object_start", lambda o: o.update(schema="netnet.frame/1")),
}
for name, (kind, change) in negatives.items():
    if kind not in samples:
        failures.append("no %s line to mutate" % kind)
    elif validator.is_valid(mutated(kind, change)):
        failures.append("schema accepted a line with " + name)
print("validated %d lines, rejected %d bad variants" % (len(lines), len(negatives)))
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
"""#

    @Test(.enabled(if: SchemaTests.hasJSONSchema, "python3 with the jsonschema package is not available; schema test skipped"))
    func eventLinesValidateAndSchemaIsStrict() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("events.jsonl").path
        let writer = try JSONLinesWriter(path: output)
        let frame = FrameFacts(index: 43, pts: 6.88, readNanoseconds: 1_764_000_000_123_000_000, width: 768, height: 576, frameRate: 7)
        let start = ObjectEvent(stream: "cam \"1\"", frame: frame, kind: .objectStart, trackID: 7, classIndex: 0, label: "person",
                                score: 0.91234, box: [402.17, 88.5, 441.03, 190.75])
        var noPTS = frame
        noPTS.pts = nil
        let life = ObjectLife(reason: .lost, firstFrame: 2, lastFrame: 41, firstNanoseconds: 1_764_000_000_000_000_000,
                              lastNanoseconds: 1_764_000_005_000_000_000, duration: 5.571, bestScore: 1, bestFrame: 30,
                              bestBox: [-3.5, 0, 1e5, 2])
        let end = ObjectEvent(stream: "cam", frame: noPTS, kind: .objectEnd, trackID: 7, classIndex: 3, label: "ünïcode",
                              score: 0.5, box: [1, 2, 3, 4], life: life)
        var streamEnd = end
        streamEnd.life!.reason = .streamEnd
        streamEnd.life!.duration = 0
        for (seq, event) in [start, end, streamEnd].enumerated() {
            var line: [UInt8] = []
            event.appendJSONLine(seq: seq, to: &line)
            try writer.writeLine(line)
        }
        try writer.close()
        let scriptPath = dir.appendingPathComponent("validate-events.py").path
        try Self.eventScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let result = try runProgram(Self.python!, [scriptPath, Self.eventSchemaPath, output])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("validated 3 lines, rejected 10 bad variants"), "\(result.output)")
    }
}
