import Testing
@testable import NetnetMedia

/// What `Redaction` hides, and what it leaves alone.
@Suite struct RedactionTests {
    @Test("passwords in URLs, userinfo without one, secret query values", arguments: [
        ("rtsp://admin:s3cretpw@10.0.0.5:554/cam1", "rtsp://admin:***@10.0.0.5:554/cam1"),
        ("rtsp://admin:s3cretpw@10.0.0.5/cam1: Connection refused", "rtsp://admin:***@10.0.0.5/cam1: Connection refused"),
        ("https://TOKENVALUE@example.com/x", "https://***@example.com/x"),
        ("http://cam/stream?user=bob&password=hunter22&fps=5", "http://cam/stream?user=bob&password=***&fps=5"),
        ("http://cam/s?TOKEN=abc123: Server returned 401", "http://cam/s?TOKEN=***: Server returned 401"),
        ("url 'rtsp://a:b@c/d' is not valid", "url 'rtsp://a:***@c/d' is not valid"),
        ("two: rtsp://u:p1@h1/a and rtsp://v:p2@h2/b", "two: rtsp://u:***@h1/a and rtsp://v:***@h2/b"),
        ("rtsp://10.0.0.5/cam1 and a path /var/lib/x@y", "rtsp://10.0.0.5/cam1 and a path /var/lib/x@y"),
        ("file:///videos/a@b.mp4", "file:///videos/a@b.mp4"),
        ("netnet: 795 frames, 0 dropped", "netnet: 795 frames, 0 dropped"),
        ("http://cam/a?keyframe=1&monkey=2", "http://cam/a?keyframe=1&monkey=2"),
    ])
    func masks(_ text: String, _ expected: String) {
        #expect(Redaction.redact(text) == expected)
    }

    @Test func registeredSecretsAreMaskedAnywhereAsWrittenOrEncoded() {
        Redaction.register(secret: "p@ss wörd-7781")
        #expect(Redaction.redact("[rtsp @ 0x1] auth with p@ss wörd-7781 failed") == "[rtsp @ 0x1] auth with *** failed")
        #expect(Redaction.redact("GET /x?p=p%40ss%20w%C3%B6rd-7781") == "GET /x?p=***")
        Redaction.register(secret: "ab")   // too short to mask without garbling text
        #expect(Redaction.redact("abc") == "abc")
    }
}
