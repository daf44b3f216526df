import Foundation
import Testing

/// Credentials never leave the process, and the API answers only to its token (docs/operations.md).
@Suite("secrets and authentication", .serialized)
struct SecretsTests {
    let scratch = Scratch()

    @Test("passwords in a URL and in a password_file appear in no response, log, event line or --check-config output",
          .enabled(if: hasCurl))
    func credentialsAreNeverShown() throws {
        let inline = "urlPassw0rd:x", fromFile = "fileP@ssw0rd"
        let passwordFile = scratch.file("cam2.password")
        try (fromFile + "\n").write(toFile: passwordFile, atomically: false, encoding: .utf8)
        let lines = scratch.file("events.jsonl")
        // Nothing listens on these ports: every attempt fails and is retried, so reasons, logs
        // and status lines are written over and over.
        let config = scratch.file("secrets.conf")
        try """
            [global]
            listen = 127.0.0.1:0
            stdout = true
            json_lines = \(lines)
            backoff_base = 0.1
            backoff_cap = 0.2
            [stream cam1]
            url = rtsp://admin:urlPassw0rd%3Ax@127.0.0.1:\(freeTCPPort())/cam1?token=qu3ryT0ken
            [stream cam2]
            url = rtsp://127.0.0.1:\(freeTCPPort())/cam2
            username = admin
            password_file = \(passwordFile)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let check = try NetnetBinary.run(["serve", "--check-config", config])
        #expect(check.status == 0, "\(check.stderr)")
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        let port = try #require(serve.port(), "\(serve.stderr)")
        let base = "http://127.0.0.1:\(port)"
        #expect(waitFor(30) { serve.stderr.components(separatedBy: "backing_off").count > 6 }, "no reconnects: \(serve.stderr)")
        let streams = try curl(["-s", base + "/api/streams"]).body
        #expect(streams.contains("rtsp://admin:***@127.0.0.1:") && streams.contains("cam1?token=***"), "\(streams)")
        let responses = [streams, try curl(["-s", base + "/metrics"]).body, try curl(["-s", base + "/api/streams/cam1/counts"]).body,
                         try curl(["-s", "-m", "2", base + "/api/events"]).body]
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0)
        let fileLines = try String(contentsOfFile: lines, encoding: .utf8)
        #expect(fileLines.contains("\"backing_off\""), "the status lines were written")
        let places = ["API and metrics": responses.joined(separator: "\n"), "stdout": serve.stdout, "stderr": serve.stderr,
                      "JSON lines file": fileLines, "--check-config": check.stdout + check.stderr]
        let secrets = [inline, "urlPassw0rd", "urlPassw0rd%3Ax", fromFile, "fileP%40ssw0rd", "qu3ryT0ken"]
        for (place, text) in places {
            for secret in secrets { #expect(!text.contains(secret), "\(secret) in \(place)") }
        }
    }

    @Test("with auth_token_file the API needs the token: none or a wrong one is 401, the right one 200; /healthz stays open",
          .enabled(if: hasFFmpeg && hasCurl))
    func bearerToken() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let token = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
        let tokenFile = scratch.file("token")
        try (token + "\n").write(toFile: tokenFile, atomically: false, encoding: .utf8)
        let config = scratch.file("auth.conf")
        try "[global]\nlisten = 127.0.0.1:0\nauth_token_file = \(tokenFile)\n[stream a]\nurl = \(clip)\n"
            .write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        let port = try #require(serve.port(), "\(serve.stderr)")
        let base = "http://127.0.0.1:\(port)"
        func status(_ path: String, _ headers: [String] = []) throws -> String {
            try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}"] + headers.flatMap { ["-H", $0] } + [base + path]).body
        }
        for path in ["/api/streams", "/api/streams/a/counts", "/api/streams/a/snapshot.jpg", "/api/nowhere", "/metrics"] {
            #expect(try status(path) == "401", "\(path) without a token")
            #expect(try status(path, ["Authorization: Bearer \(token)x"]) == "401", "\(path) with a longer token")
            #expect(try status(path, ["Authorization: Bearer \(token.dropLast())"]) == "401", "\(path) with a shorter token")
            #expect(try status(path, ["Authorization: Basic \(token)"]) == "401", "\(path) with another scheme")
        }
        #expect(try status("/api/streams", ["Authorization: Bearer \(token)"]) == "200")
        #expect(try status("/api/streams", ["Authorization: bearer \(token)"]) == "200", "the scheme is case-insensitive")
        #expect(try status("/metrics", ["Authorization: Bearer \(token)"]) == "200")
        #expect(try status("/api/nowhere", ["Authorization: Bearer \(token)"]) == "404")
        #expect(try status("/healthz") == "200")
        let refused = try curl(["-s", "-i", base + "/api/streams"]).body
        #expect(refused.lowercased().contains("www-authenticate: bearer realm=\"netnet\""), "\(refused)")
        #expect(refused.lowercased().contains("content-type: application/problem+json") && refused.contains("\"status\": 401"), "\(refused)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0)
        #expect(!serve.stderr.contains(token), "the token is never logged")
    }
}
