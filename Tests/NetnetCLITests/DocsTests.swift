import Foundation
import Testing

/// docs/performance.md is a reference (machines, commands, one current table per CPU kind), not a
/// run log; its length is the guard that keeps it one, as it grew past the bound unnoticed before.
@Suite("docs/")
struct DocsTests {
    @Test("docs/performance.md stays a reference under 250 lines")
    func performanceIsAReference() throws {
        let text = try String(contentsOfFile: "\(repositoryRoot)/docs/performance.md", encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count - (text.hasSuffix("\n") ? 1 : 0)
        #expect(lines < 250, "docs/performance.md has \(lines) lines: keep one current table per CPU kind, history in git")
    }
}
