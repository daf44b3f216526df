import Foundation
import Testing
@testable import NetnetDaemon
import NetnetTracker
import NetnetMedia
import NetnetPipeline

/// The configuration file: every key, and every rejection names the file and line.
@Suite("configuration")
struct ConfigTests {
    static let full = """
        # netnet test configuration
        [global]
        listen = 0.0.0.0:9090
        log_level = debug
        model = /opt/models/a.safetensors
        stdout = yes
        json_lines = /var/lib/netnet/events.jsonl
        json_lines_max_bytes = 10M
        json_lines_keep = 3
        sink_queue = 64
        stall_timeout = 5
        open_timeout = 7.5
        backoff_base = 0.5
        backoff_cap = 20
        inference_threads = 2
        allow_unauthenticated = true
        metrics_public = true
        state_directory = /var/lib/netnet

        [stream front-door]
        url = rtsp://192.0.2.10:554/stream1
        threshold = 0.6
        every = 3
        classes = person, car
        track_max_lost = 2.5
        track_confirm_frames = 2
        ; a comment
        [stream yard]
        url = "tcp://127.0.0.1:9000"
        enabled = false
        """

    @Test func parsesEveryKey() throws {
        let c = try ConfigParser.parse(Self.full, file: "t.conf")
        #expect(c.listenHost == "0.0.0.0" && c.listenPort == 9090)
        #expect(c.logLevel == .debug)
        #expect(c.model == "/opt/models/a.safetensors")
        #expect(c.stdoutSink)
        #expect(c.jsonLinesPath == "/var/lib/netnet/events.jsonl")
        #expect(c.jsonLinesMaxBytes == 10 << 20)
        #expect(c.jsonLinesKeep == 3 && c.sinkQueue == 64)
        #expect(c.stallTimeout == 5 && c.openTimeout == 7.5 && c.backoffBase == 0.5 && c.backoffCap == 20)
        #expect(c.inferenceThreads == 2)
        #expect(c.streams.map(\.id) == ["front-door", "yard"])
        #expect(c.streams[0].url == "rtsp://192.0.2.10:554/stream1")
        #expect(c.streams[0].threshold == 0.6 && c.streams[0].every == 3 && c.streams[0].classes == ["person", "car"])
        var tracking = TrackerSettings()
        tracking.maxLostSeconds = 2.5
        tracking.confirmFrames = 2
        #expect(c.streams[0].tracking == tracking && c.streams[1].tracking == TrackerSettings())
        #expect(c.allowUnauthenticated && c.metricsPublic && c.stateDirectory == "/var/lib/netnet" && c.authToken == nil)
        #expect(c.streams[0].line == 20)
        #expect(c.streams[1].url == "tcp://127.0.0.1:9000" && !c.streams[1].enabled)
        #expect(c.enabledStreams.map(\.id) == ["front-door"])
    }

    @Test func defaults() throws {
        let c = try ConfigParser.parse("[stream a]\nurl = /x.mp4\n", file: "t.conf")
        #expect(c.listenHost == "127.0.0.1" && c.listenPort == 8080)
        #expect(c.logLevel == .info && !c.stdoutSink && c.jsonLinesPath == nil && c.model == nil)
        #expect(c.streams[0].threshold == 0.5 && c.streams[0].every == 1 && c.streams[0].classes.isEmpty && c.streams[0].enabled)
        #expect(c.backoffBase == 1 && c.backoffCap == 30 && c.stallTimeout == 10)
    }

    @Test func ipv6Listen() throws {
        let c = try ConfigParser.parse("[global]\nlisten = [::1]:0\n[stream a]\nurl = /x.mp4\n", file: "t.conf")
        #expect(c.listenHost == "::1" && c.listenPort == 0)
    }

    /// Each case: the text, the line the error must name, and a fragment of the message.
    static let rejections: [(String, Int?, String)] = [
        ("[global]\ntreshold = 1\n[stream a]\nurl = /x\n", 2, "unknown key 'treshold' in [global]"),
        ("[stream a]\nurl = /x\nfps = 3\n", 3, "unknown key 'fps' in [stream a]"),
        ("[streams a]\nurl = /x\n", 1, "unknown section [streams a]"),
        ("[stream]\nurl = /x\n", 1, "needs an id"),
        ("[stream a/b]\nurl = /x\n", 1, "stream id 'a/b'"),
        ("[stream a]\nurl = /x\n[stream a]\nurl = /y\n", 3, "duplicate stream id 'a' (first defined on line 1)"),
        ("[stream a]\nurl = /x\nthreshold = 1.5\n", 3, "threshold = 1.5 is out of range 0-1"),
        ("[stream a]\nurl = /x\nthreshold = high\n", 3, "threshold must be a number"),
        ("[stream a]\nurl = /x\nevery = 0\n", 3, "every = 0 is out of range 1-1000"),
        ("[stream a]\nurl = /x\ntrack_max_lost = -1\n", 3, "track_max_lost = -1 is out of range 0-3600"),
        ("[stream a]\nurl = /x\ntrack_confirm_frames = 2.5\n", 3, "track_confirm_frames = 2.5 is out of range 1-100 (a whole number)"),
        ("[stream a]\nurl = /x\ntrack_high_score = 0x1\n", 3, "track_high_score must be a number (got '0x1')"),
        ("[stream a]\nurl = /x\ntrack_speed = 1\n", 3, "unknown key 'track_speed' in [stream a]"),
        ("[stream a]\nurl = /x\nscene = door.scene\n", 3, "scene must be an absolute path (got 'door.scene')"),
        ("[stream a]\nurl = /x\nscene = /nonexistent/door.scene\n", 3, "scene /nonexistent/door.scene: no such file"),
        ("[stream a]\nurl = /x\nenabled = maybe\n", 3, "enabled must be true or false"),
        ("[stream a]\nurl = camera1\n", 2, "neither an absolute path nor a URL"),
        ("[stream a]\nurl = gopher://x/y\n", 2, "unsupported scheme 'gopher'"),
        ("[stream a]\nurl = rtsp:///path\n", 2, "not a valid rtsp:// URL with a host"),
        ("[stream a]\nurl = rtsp://cam:99999/x\n", 2, "port 99999 is out of range 1-65535"),
        ("[stream a]\nurl = /x\nurl = /y\n", 3, "'url' is set twice"),
        ("[stream a]\nthreshold = 0.2\n", 1, "[stream a] has no url"),
        ("[global]\nlisten = 8080\n[stream a]\nurl = /x\n", 2, "listen must be HOST:PORT"),
        ("[global]\nlisten = 127.0.0.1:70000\n[stream a]\nurl = /x\n", 2, "listen port 70000 is out of range"),
        ("[global]\nlog_level = loud\n[stream a]\nurl = /x\n", 2, "log_level must be one of"),
        ("[global]\nbackoff_base = 5\nbackoff_cap = 2\n[stream a]\nurl = /x\n", 3, "backoff_cap (2.0) must be at least backoff_base (5.0)"),
        ("[global]\nstall_timeout = 0\n[stream a]\nurl = /x\n", 2, "stall_timeout = 0 is out of range 1-3600"),
        ("[global]\njson_lines = events.jsonl\n[stream a]\nurl = /x\n", 2, "json_lines must be an absolute path"),
        ("[global]\njson_lines_max_bytes = 1K\n[stream a]\nurl = /x\n", 2, "json_lines_max_bytes = 1K is out of range 64K-1T"),
        ("[global]\nsink_queue = 1\n[stream a]\nurl = /x\n", 2, "sink_queue = 1 is out of range 16-100000"),
        ("[global]\n[global]\n[stream a]\nurl = /x\n", 2, "[global] appears twice"),
        ("url = /x\n", 1, "outside a section"),
        ("[stream a]\nurl /x\n", 2, "expected 'key = value'"),
        ("[stream a\n", 1, "without ']'"),
        ("[stream a]\nurl = /x\nmodel = /m1\n[stream b]\nurl = /y\nmodel = /m2\n", 4, "all streams share one model"),
        ("[stream a]\nurl = /x\nenabled = false\n", nil, "no enabled stream"),
        ("# nothing\n", nil, "no enabled stream"),
        // A NUL would cut the path short where C reads it: /tmp/a.jsonl\0x would open /tmp/a.jsonl.
        ("[global]\njson_lines = /tmp/a.jsonl\u{0}/x\n[stream a]\nurl = /x\n", 2, "a NUL byte"),
        ("[stream a]\nurl = /x\u{0}y\n", 2, "a NUL byte"),
        ("[stream a]\nurl = /x\nthreshold = 0x0.8p0\n", 3, "threshold must be a number (got '0x0.8p0')"),
        ("[global]\nstall_timeout = 0x10\n[stream a]\nurl = /x\n", 2, "stall_timeout must be a number (got '0x10')"),
        ("[global]\nopen_timeout = inf\n[stream a]\nurl = /x\n", 2, "open_timeout must be a number"),
        ("[global]\nbackoff_base = 1e\n[stream a]\nurl = /x\n", 2, "backoff_base must be a number"),
        ("[global]\nhttp_max_connections = 0x10\n[stream a]\nurl = /x\n", 2, "http_max_connections must be a whole number"),
        ("[global]\nhttp_max_connections = -1\n[stream a]\nurl = /x\n", 2, "http_max_connections = -1 is out of range 0-100000"),
        ("[global]\nhttp_header_timeout = 0\n[stream a]\nurl = /x\n", 2, "http_header_timeout = 0 is out of range 1-3600"),
        ("[global]\nhttp_idle_timeout = 100000\n[stream a]\nurl = /x\n", 2, "http_idle_timeout = 100000 is out of range 1-86400"),
        (ConfigTests.manyStreams(DaemonConfig.maxStreams + 2), 2 * DaemonConfig.maxStreams + 1,
         "\(DaemonConfig.maxStreams + 2) streams, more than the limit of \(DaemonConfig.maxStreams)"),
    ]

    /// `count` stream sections of two lines each.
    static func manyStreams(_ count: Int) -> String {
        (0..<count).map { "[stream s\($0)]\nurl = rtsp://127.0.0.1:9/s\($0)\n" }.joined()
    }

    @Test func streamLimitIsInclusive() throws {
        let c = try ConfigParser.parse(Self.manyStreams(DaemonConfig.maxStreams), file: "t.conf")
        #expect(c.streams.count == DaemonConfig.maxStreams)
    }

    @Test func decimalNumbersOnly() {
        for good in ["10", "+1", "-0.5", ".5", "5.", "1e3", "2.5E-1"] { #expect(ConfigParser.isDecimal(good), "\(good)") }
        for bad in ["0x10", "0X1p3", "nan", "inf", "1e", ".", "", "1_0", " 1", "1.2.3", "--1"] { #expect(!ConfigParser.isDecimal(bad), "\(bad)") }
    }

    @Test func httpKeys() throws {
        let d = try ConfigParser.parse("[stream a]\nurl = /x\n", file: "t")
        #expect(d.httpMaxConnections == 0 && d.httpHeaderTimeout == 10 && d.httpIdleTimeout == 60)
        let c = try ConfigParser.parse("[global]\nhttp_max_connections = 50\nhttp_header_timeout = 2.5\nhttp_idle_timeout = 30\n[stream a]\nurl = /x\n", file: "t")
        #expect(c.httpMaxConnections == 50 && c.httpHeaderTimeout == 2.5 && c.httpIdleTimeout == 30)
    }

    @Test func loopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"] { #expect(ConfigParser.isLoopback(host: host), "\(host)") }
        for host in ["0.0.0.0", "::", "192.0.2.1", "10.0.0.1", "example.com", "::ffff:192.0.2.1"] { #expect(!ConfigParser.isLoopback(host: host), "\(host)") }
    }

    @Test(arguments: 0..<rejections.count)
    func rejects(_ index: Int) throws {
        let (text, line, fragment) = Self.rejections[index]
        do {
            _ = try ConfigParser.parse(text, file: "/etc/netnet/netnet.conf")
            Issue.record("accepted: \(text)")
        } catch let error as ConfigError {
            #expect(error.file == "/etc/netnet/netnet.conf")
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains(fragment), "\(error)")
            let prefix = line.map { "/etc/netnet/netnet.conf:\($0): " } ?? "/etc/netnet/netnet.conf: "
            #expect(error.description.hasPrefix(prefix))
        }
    }

    @Test func missingFile() {
        #expect {
            _ = try ConfigParser.load(path: "/nonexistent/netnet.conf")
        } throws: { error in
            "\(error)" == "/nonexistent/netnet.conf: cannot read the configuration: No such file or directory"
        }
    }

    @Test func windowsLineEndingsAndQuotes() throws {
        let c = try ConfigParser.parse("[stream a]\r\nurl = \"/x y.mp4\"\r\n", file: "t")
        #expect(c.streams[0].url == "/x y.mp4")
    }

    @Test func sameSettingsIgnoresTheLine() throws {
        var a = StreamConfig(id: "a", url: "/x")
        var b = a
        b.line = 9
        #expect(a.sameSettings(as: b))
        a.threshold = 0.9
        #expect(!a.sameSettings(as: b))
    }
}

@Suite("reconnect backoff")
struct BackoffTests {
    @Test func boundsDoubleUpToTheCap() {
        let b = Backoff(base: 0.5, cap: 10)
        #expect((0..<8).map { b.bound(attempt: $0) } == [0.5, 1, 2, 4, 8, 10, 10, 10])
        #expect(b.bound(attempt: 10_000) == 10)
        #expect(b.bound(attempt: -3) == 0.5)
    }

    @Test func fullJitterSpansZeroToTheBound() {
        let b = Backoff(base: 1, cap: 30)
        #expect(b.delay(attempt: 3, unit: 0) == 0)
        #expect(b.delay(attempt: 3, unit: 0.5) == 4)
        #expect(b.delay(attempt: 3, unit: 0.999) < 8)
        #expect(b.delay(attempt: 3, unit: 7) == 8)     // clamped
        #expect(b.delay(attempt: 9, unit: 0.5) == 15)
    }

    @Test func randomDelaysStayUnderTheBound() {
        let b = Backoff(base: 0.2, cap: 3)
        var generator = SystemRandomNumberGenerator()
        for attempt in 0..<12 {
            for _ in 0..<100 {
                let d = b.delay(attempt: attempt, unit: Double.random(in: 0..<1, using: &generator))
                #expect(d >= 0 && d < b.bound(attempt: attempt))
            }
        }
    }

    @Test("scene = FILE is read with the configuration; its problems name both files' lines")
    func sceneKey() throws {
        let path = "/tmp/netnet-config-test-\(getpid()).scene"
        defer { unlink(path) }
        try "[line door]\npoints = 10,10 100,10\n[zone bay]\npoints = 0,0 50,0 50,50\n".write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ConfigParser.parse("[stream a]\nurl = /x\nscene = \(path)\n", file: "t.conf")
        #expect(config.streams[0].scene?.lines.map(\.name) == ["door"] && config.streams[0].scene?.zones.map(\.name) == ["bay"])
        try "[line door]\npoints = 10,10\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError(file: "t.conf", line: 3, message: "scene: \(path):2: a line has 2 points, got 1")) {
            try ConfigParser.parse("[stream a]\nurl = /x\nscene = \(path)\n", file: "t.conf")
        }
    }
}

/// Credentials from files, the bearer token, and an open listen refused.
@Suite struct ConfigSecretsTests {
    let folder: String = {
        let path = NSTemporaryDirectory() + "netnet-secrets-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func write(_ name: String, _ text: String) -> String {
        let path = folder + "/" + name
        try! text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    @Test func usernameAndPasswordFileGoIntoTheURL() throws {
        let password = write("pw", "s3:cr@t/pw\n")
        let config = try ConfigParser.parse("[stream a]\nurl = rtsp://10.0.0.5:554/cam1\nusername = admin\npassword_file = \(password)\n",
                                            file: folder + "/t.conf", environment: [:])
        #expect(config.streams[0].url == "rtsp://admin:s3%3Acr%40t%2Fpw@10.0.0.5:554/cam1")
        #expect(Redaction.redact("auth s3:cr@t/pw failed for \(config.streams[0].url)") == "auth *** failed for rtsp://admin:***@10.0.0.5:554/cam1")
        // A relative name: a systemd credential when $CREDENTIALS_DIRECTORY is set, else next to the file.
        _ = write("cam-pw", "fromcredentials\n")
        let credential = try ConfigParser.parse("[stream a]\nurl = rtsp://h/c\nusername = u\npassword_file = cam-pw\n",
                                                file: "/nonexistent/t.conf", environment: ["CREDENTIALS_DIRECTORY": folder])
        #expect(credential.streams[0].url == "rtsp://u:fromcredentials@h/c")
        let beside = try ConfigParser.parse("[stream a]\nurl = rtsp://h/c\nusername = u\npassword_file = cam-pw\n",
                                            file: folder + "/t.conf", environment: [:])
        #expect(beside.streams[0].url == "rtsp://u:fromcredentials@h/c")
    }

    @Test func badCredentialsAreOneLineNamingTheFile() throws {
        let two = write("two", "a\nb\n"), empty = write("empty", "\n")
        let cases: [(String, String)] = [
            ("url = rtsp://h/c\npassword_file = \(folder)/missing", "t.conf:3: [stream a] password_file \(folder)/missing: No such file or directory"),
            ("url = rtsp://h/c\npassword_file = \(two)", "t.conf:3: [stream a] password_file \(two): more than one line; it should hold one line"),
            ("url = rtsp://h/c\npassword_file = \(empty)", "t.conf:3: [stream a] password_file \(empty): empty"),
            ("url = rtsp://x:y@h/c\nusername = u", "t.conf:3: [stream a] the url already has a user name or password; give them in the url or in username and password_file, not both"),
            ("url = /videos/a.mp4\nusername = u", "t.conf:3: [stream a] username and password_file need a network URL (rtsp://, http://, …)"),
        ]
        for (keys, message) in cases {
            do {
                _ = try ConfigParser.parse("[stream a]\n\(keys)\n", file: "t.conf", environment: [:])
                Issue.record("accepted \(keys)")
            } catch {
                #expect("\(error)" == message)
            }
        }
    }

    @Test func errorsNeverQuoteAPassword() {
        do {
            _ = try ConfigParser.parse("[stream a]\nurl = rtsp://admin:hunter22@\n", file: "t.conf", environment: [:])
            Issue.record("accepted a URL without a host")
        } catch {
            #expect("\(error)" == "t.conf:2: url 'rtsp://admin:***@' is not a valid rtsp:// URL with a host")
        }
    }

    @Test func tokenAndListen() throws {
        let token = write("token", "0123456789abcdef0123\n"), short = write("short", "abc\n")
        let withToken = try ConfigParser.parse("[global]\nlisten = 0.0.0.0:8080\nauth_token_file = \(token)\n[stream a]\nurl = /x\n",
                                               file: "t.conf", environment: [:])
        #expect(withToken.authToken == "0123456789abcdef0123" && !withToken.metricsPublic)
        #expect(Redaction.redact("token 0123456789abcdef0123") == "token ***")
        #expect(throws: ConfigError(file: "t.conf", line: 2, message: "auth_token_file \(short): the token must be at least 16 characters without blanks (e.g. openssl rand -hex 32)")) {
            try ConfigParser.parse("[global]\nauth_token_file = \(short)\n[stream a]\nurl = /x\n", file: "t.conf", environment: [:])
        }
        #expect(throws: ConfigError(file: "t.conf", line: 2, message: "listen = 0.0.0.0:8080 is not a loopback address and there is no auth_token_file: anyone who can reach the port could read every stream; set auth_token_file, or allow_unauthenticated = true to run open anyway")) {
            try ConfigParser.parse("[global]\nlisten = 0.0.0.0:8080\n[stream a]\nurl = /x\n", file: "t.conf", environment: [:])
        }
        let open = try ConfigParser.parse("[global]\nlisten = 0.0.0.0:8080\nallow_unauthenticated = true\nmetrics_public = yes\n[stream a]\nurl = /x\n",
                                          file: "t.conf", environment: [:])
        #expect(open.authToken == nil && open.allowUnauthenticated && open.metricsPublic)
    }

    @Test func sinkSections() throws {
        let password = write("broker.pass", "s3cret-broker\n")
        let text = """
            [global]
            spool_dir = /var/lib/netnet/spool
            spool_max_bytes = 256M
            spool_fsync = 0
            [stream a]
            url = /x
            [sink broker]
            type = mqtt
            url = mqtts://broker.example:8883
            topic = site1/{stream}/{schema}
            qos = 0
            client_id = cam-host-1
            username = netnet
            password_file = \(password)
            lines = event, status
            [sink hook]
            type = http
            url = https://hooks.example/netnet
            """
        let config = try ConfigParser.parse(text, file: "t.conf", environment: [:])
        #expect(config.spoolDirectory == "/var/lib/netnet/spool" && config.spoolMaxBytes == 256 << 20 && config.spoolFsync == 0)
        #expect(config.sinks.map(\.name) == ["broker", "hook"])
        let broker = config.sinks[0]
        #expect(broker.type == .mqtt && broker.url == "mqtts://broker.example:8883" && broker.topic == "site1/{stream}/{schema}")
        #expect(broker.qos == 0 && broker.clientID == "cam-host-1" && broker.username == "netnet" && broker.password == "s3cret-broker")
        #expect(broker.lines == [.event, .status] && broker.line == 7)
        #expect(config.sinks[1].type == .http && config.sinks[1].lines == Set(RecordKind.allCases) && config.sinks[1].qos == nil)
        #expect(Redaction.redact("pw s3cret-broker") == "pw ***")
        let defaults = try ConfigParser.parse("[stream a]\nurl = /x\n", file: "t.conf", environment: [:])
        #expect(defaults.sinks.isEmpty && defaults.spoolDirectory == nil && defaults.spoolMaxBytes == 1 << 30 && defaults.spoolFsync == 0.5)
    }

    @Test func sinkSectionsRejected() {
        let cases: [(String, String)] = [
            ("[sink]\ntype = mqtt", "t.conf:3: a sink section needs a name: [sink NAME]"),
            ("[sink a/b]\ntype = mqtt", "t.conf:3: sink name 'a/b' must be 1 to 64 characters of A-Z a-z 0-9 _ . -"),
            ("[sink m]\ntype = mqtt\nurl = mqtt://h\n[sink m]", "t.conf:6: duplicate sink name 'm' (first defined on line 3)"),
            ("[sink m]\nurl = mqtt://h", "t.conf:3: [sink m] has no type (type = mqtt or type = http)"),
            ("[sink m]\ntype = kafka", "t.conf:4: [sink m] type must be mqtt or http (got 'kafka')"),
            ("[sink m]\ntype = mqtt", "t.conf:3: [sink m] has no url (url = mqtt://HOST:1883)"),
            ("[sink m]\ntype = mqtt\nurl = http://h/x", "t.conf:5: [sink m] url 'http://h/x' is not a mqtt://, mqtts://HOST… URL (type = mqtt)"),
            ("[sink m]\ntype = http\nurl = https://h/x\ntopic = a/b", "t.conf:6: [sink m] topic is an MQTT setting; a type = http sink does not use it"),
            ("[sink m]\ntype = mqtt\nurl = mqtt://u:pw@h", "t.conf:5: [sink m] url: no password in the URL; give password_file"),
            ("[sink m]\ntype = mqtt\nqos = 2", "t.conf:5: [sink m] qos must be 0 or 1 (got '2')"),
            ("[sink m]\ntype = mqtt\ntopic = a/#", "t.conf:5: [sink m] topic must be a topic name without the wildcards + and # (got 'a/#')"),
            ("[sink m]\ntype = mqtt\nlines = frame,video", "t.conf:5: [sink m] lines: unknown line type 'video' (frame, event, status)"),
            ("[sink m]\ntype = mqtt\nretain = yes", "t.conf:5: [sink m] unknown key 'retain' (known: type, url, topic, qos, client_id, username, password_file, ca_file, lines)"),
            ("[sink m]\ntype = mqtt\ntype = http", "t.conf:5: [sink m] 'type' is set twice"),
            ("[sink m]\ntype = mqtt\nurl = mqtt://h\npassword_file = /nonexistent/pw", "t.conf:6: [sink m] password_file: /nonexistent/pw: No such file or directory"),
            ("[sink m]\ntype = mqtt\nurl = mqtts://h\nca_file = /nonexistent/ca.pem", "t.conf:6: [sink m] ca_file /nonexistent/ca.pem: cannot be read"),
            ("[global]\nspool_fsync = -1", "t.conf:4: spool_fsync = -1 is out of range 0-60"),
            ("[global]\nspool_dir = spool", "t.conf:4: spool_dir must be an absolute path (got 'spool')"),
        ]
        for (text, message) in cases {
            do {
                _ = try ConfigParser.parse("[stream a]\nurl = /x\n\(text)\n", file: "t.conf", environment: [:])
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)" == message, "\(text)")
            }
        }
    }
}
