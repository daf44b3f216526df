import Foundation
import Testing
@testable import NetnetMedia

/// A one-connection TCP server on 127.0.0.1 run by a background thread: accepts one client, sends
/// `bytes`, then keeps the connection open (sending nothing) for `holdSeconds` before closing
/// (with `readRequest`, the sending side is shut down first: the client sees the end of the data).
final class StallingServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32

    /// `readRequest`: first read the client's request up to its blank line (HTTP), so closing the
    /// connection later does not reset it.
    init(bytes: Data, holdSeconds: Double, readRequest: Bool = false) throws {
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw MediaError("socket() failed") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 1) == 0 else { close(fd); throw MediaError("bind/listen failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        let thread = Thread {
            let client = accept(fd, nil, nil)
            close(fd)
            guard client >= 0 else { return }
            if readRequest {
                var request = [UInt8]()
                var byte: UInt8 = 0
                while recv(client, &byte, 1, 0) == 1 {
                    request.append(byte)
                    if request.count >= 4 && request.suffix(4) == [13, 10, 13, 10] { break }
                }
            }
            bytes.withUnsafeBytes { raw in
                var sent = 0
                while sent < raw.count {
                    let n = send(client, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                    if n <= 0 { break }
                    sent += n
                }
            }
            if readRequest { shutdown(client, Int32(SHUT_WR)) }   // HTTP: end of body; otherwise stall with the connection open
            Thread.sleep(forTimeInterval: holdSeconds)
            close(client)
        }
        thread.start()
    }
}

@Suite("Streams and pipes", .enabled(if: VideoFixtures.available, VideoFixtures.skipMessage))
struct StreamTests {
    let fx: VideoFixtures
    init() throws { fx = try VideoFixtures.get() }

    @Test("tcp:// input: every frame arrives; the source is live")
    func tcpInput() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.ts")))
        let server = try StallingServer(bytes: bytes, holdSeconds: 0)
        let source = try VideoSource(options: VideoSourceOptions(url: "tcp://127.0.0.1:\(server.port)"))
        #expect(source.isLive)
        #expect(source.estimatedFrameCount == nil || source.estimatedFrameCount! > 0)
        let frame = VideoFrame()
        var frames = 0, audio = 0
        while try source.nextFrame(into: frame, audioSink: { _ in audio += 1 }) { frames += 1 }
        #expect(frames == 75)
        #expect(audio > 100)
    }

    @Test("http:// input: every frame arrives")
    func httpInput() throws {
        let body = try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.ts")))
        let header = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let server = try StallingServer(bytes: Data(header.utf8) + body, holdSeconds: 1, readRequest: true)
        let source = try VideoSource(options: VideoSourceOptions(url: "http://127.0.0.1:\(server.port)/clip.ts"))
        let frame = VideoFrame()
        var frames = 0
        while try source.nextFrame(into: frame, audioSink: nil) { frames += 1 }
        #expect(frames == 75)
    }

    @Test("rtsp:// input over TCP (here in listen mode, fed by the ffmpeg CLI): every frame, audio, live")
    func rtspInput() throws {
        let port = try freeTCPPort()
        let url = "rtsp://127.0.0.1:\(port)/live"
        let clip = fx.path("clip.ts")
        let pusher = Thread {
            Thread.sleep(forTimeInterval: 0.5)   // let the source start listening
            _ = try? run(Fixtures.ffmpegPath!, ["-nostdin", "-loglevel", "error", "-i", clip, "-c:v", "copy", "-c:a", "aac",
                                                "-f", "rtsp", "-rtsp_transport", "tcp", url])
        }
        pusher.start()
        var options = VideoSourceOptions(url: url)
        options.formatOptions = ["rtsp_flags": "listen"]
        let source = try VideoSource(options: options)
        #expect(source.isLive && source.hasAudio && source.width == 320)
        let frame = VideoFrame()
        var frames = 0, audio = 0
        var pts: [Double] = []
        while try source.nextFrame(into: frame, audioSink: { _ in audio += 1 }) {
            frames += 1
            if let t = frame.ptsSeconds { pts.append(t) }
        }
        print("rtsp: \(frames) frames, \(audio) audio packets, last at \(pts.last ?? -1) s")
        #expect(frames == 75)
        #expect(audio > 100)
        #expect(zip(pts, pts.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test("a network read that stalls fails after readTimeout with 'timed out', naming the URL")
    func readTimeout() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.ts")))
        let server = try StallingServer(bytes: bytes.prefix(bytes.count / 2), holdSeconds: 6)
        let url = "tcp://127.0.0.1:\(server.port)"
        var options = VideoSourceOptions(url: url)
        options.readTimeout = 0.7
        let source = try VideoSource(options: options)
        let frame = VideoFrame()
        var frames = 0
        var lastFrameAt = Date()
        do {
            while try source.nextFrame(into: frame, audioSink: nil) { frames += 1; lastFrameAt = Date() }
            Issue.record("the stalled stream ended without an error")
        } catch let error as MediaError {
            let waited = Date().timeIntervalSince(lastFrameAt)
            print("[stalled tcp] \(error.description) after \(frames) frames, \(waited) s after the last one")
            #expect(error.description == "\(url): timed out: no data for 0.7 s")
            #expect(waited < 2.5)
            #expect(frames > 10)
        }
    }

    @Test("interrupt() from another thread ends a blocked read within ~1 s")
    func interruptBlockedRead() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.ts")))
        let server = try StallingServer(bytes: bytes.prefix(bytes.count / 2), holdSeconds: 6)
        var options = VideoSourceOptions(url: "tcp://127.0.0.1:\(server.port)")
        options.readTimeout = 0   // no timeout: only the interrupt can end it
        let source = try VideoSource(options: options)
        let interrupter = options.interrupter
        let frame = VideoFrame()
        let interruptedAt = LockedDate()
        Thread {
            Thread.sleep(forTimeInterval: 1.0)   // by then the reader has drained the sent half and blocks
            interruptedAt.set(Date())
            interrupter.interrupt()
        }.start()
        do {
            while try source.nextFrame(into: frame, audioSink: nil) {}
            Issue.record("the stalled stream ended without an error")
        } catch let error as MediaError {
            let waited = Date().timeIntervalSince(interruptedAt.value ?? .distantPast)
            print("[interrupted read] \(error.description) \(waited) s after interrupt()")
            #expect(error.description.hasSuffix(": interrupted"))
            #expect(waited < 1.0)
        }
        #expect(try !source.nextFrame(into: frame, audioSink: nil))   // ended for good
    }

    @Test("pipe input (pipe:N, the protocol \"-\" uses): every frame, live", arguments: ["clip.ts", "clip.mkv"])
    func pipeInput(name: String) throws {
        let (frames, live) = try withPipe(feeding: fx.path(name)) { fd in
            let source = try VideoSource(options: VideoSourceOptions(url: "pipe:\(fd)"))
            let frame = VideoFrame()
            var frames = 0
            while try source.nextFrame(into: frame, audioSink: nil) { frames += 1 }
            return (frames, source.isLive)
        }
        #expect(frames == 75)
        #expect(live)
    }

    @Test("pipes are pipes (their writer waits; annotate blocks on them): pipe:N, \"-\" and a FIFO path; files and tcp:// are not")
    func pipeKinds() throws {
        // Read to the end: a reader that lets go early would leave the writer thread to SIGPIPE.
        func drained(_ source: VideoSource) throws -> Bool {
            let frame = VideoFrame()
            while try source.nextFrame(into: frame, audioSink: nil) {}
            return source.isPipe
        }
        let viaPipe = try withPipe(feeding: fx.path("clip.ts")) { fd in
            try drained(VideoSource(options: VideoSourceOptions(url: "pipe:\(fd)")))
        }
        #expect(viaPipe)
        let stdin = try withPipe(feeding: fx.path("clip.ts")) { fd -> Bool in
            let saved = dup(0)
            dup2(fd, 0)
            defer { dup2(saved, 0); close(saved) }
            return try drained(VideoSource(options: VideoSourceOptions(url: "-")))
        }
        #expect(stdin)
        let fifo = NSTemporaryDirectory() + "netnet-fifo-\(UUID().uuidString)"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.mkv")))
        Thread {
            // Opening the FIFO for writing waits for the reader: VideoSource's open.
            guard let handle = FileHandle(forWritingAtPath: fifo) else { return }
            handle.write(bytes)
            try? handle.close()
        }.start()
        let source = try VideoSource(options: VideoSourceOptions(url: fifo))
        #expect(source.isPipe && !source.isLive)
        let frame = VideoFrame()
        var frames = 0
        while try source.nextFrame(into: frame, audioSink: nil) { frames += 1 }
        #expect(frames == 75)
        #expect(try !VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4"))).isPipe)
        let server = try StallingServer(bytes: try Data(contentsOf: URL(fileURLWithPath: fx.path("clip.ts"))), holdSeconds: 0)
        #expect(try !VideoSource(options: VideoSourceOptions(url: "tcp://127.0.0.1:\(server.port)")).isPipe)
    }

    @Test("\"-\" reads standard input")
    func standardInput() throws {
        let frames = try withPipe(feeding: fx.path("clip.ts")) { fd -> Int in
            // Put the pipe on fd 0 for the duration of the read (nothing else in the test process reads stdin).
            let saved = dup(0)
            dup2(fd, 0)
            defer { dup2(saved, 0); close(saved) }
            let source = try VideoSource(options: VideoSourceOptions(url: "-"))
            #expect(source.isLive && source.name == "-")
            let frame = VideoFrame()
            var frames = 0
            while try source.nextFrame(into: frame, audioSink: nil) { frames += 1 }
            return frames
        }
        #expect(frames == 75)
    }

    /// Runs `body` with the read end of a pipe that a background thread fills with `path`'s bytes.
    private func withPipe<R>(feeding path: String, _ body: (Int32) throws -> R) throws -> R {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw MediaError("pipe() failed") }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let writeEnd = fds[1]
        Thread {
            bytes.withUnsafeBytes { raw in
                var sent = 0
                while sent < raw.count {
                    let n = write(writeEnd, raw.baseAddress! + sent, raw.count - sent)
                    if n <= 0 { break }
                    sent += n
                }
            }
            close(writeEnd)
        }.start()
        defer { close(fds[0]) }
        return try body(fds[0])
    }
}

/// A Date set once by another thread.
final class LockedDate: @unchecked Sendable {
    private let lock = NSLock()
    private var date: Date?
    func set(_ d: Date) { lock.lock(); date = d; lock.unlock() }
    var value: Date? { lock.lock(); defer { lock.unlock() }; return date }
}
