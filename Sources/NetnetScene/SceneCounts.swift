/// The running figures of a scene (docs/scenes.md, "Counts"): per line, crossings by direction
/// and label since counting began; per zone, entries by label since counting began and the
/// objects inside now, by label. Lines and zones come in the scene's order, labels sorted.
/// Value type; one thread at a time (the record stage's), copied to readers.
public struct SceneCounts: Sendable, Equatable {
    /// One line's crossings.
    public struct LineCount: Sendable, Equatable {
        /// The `[line NAME]` name.
        public var name: String
        /// Crossings `in`, by label.
        public var inward: [String: Int] = [:]
        /// Crossings `out`, by label.
        public var outward: [String: Int] = [:]
        /// No crossing yet. Pure.
        public init(name: String) { self.name = name }
        /// Crossings in `direction`, by label. Pure.
        public func crossings(_ direction: CrossingDirection) -> [String: Int] { direction == .in ? inward : outward }
    }

    /// One zone's entries and occupants.
    public struct ZoneCount: Sendable, Equatable {
        /// The `[zone NAME]` name.
        public var name: String
        /// Entries, by label, since counting began.
        public var entered: [String: Int] = [:]
        /// Objects inside now, by label (a label's entry goes when it reaches 0).
        public var objects: [String: Int] = [:]
        /// No entry yet. Pure.
        public init(name: String) { self.name = name }
    }

    /// Every line of the scene, in file order.
    public var lines: [LineCount]
    /// Every zone of the scene, in file order.
    public var zones: [ZoneCount]

    /// Zero for every line and zone of `scene`. Pure.
    public init(scene: Scene) {
        lines = scene.lines.map { LineCount(name: $0.name) }
        zones = scene.zones.map { ZoneCount(name: $0.name) }
    }

    /// Counts with these lines and zones (as read back from a file). Pure.
    public init(lines: [LineCount], zones: [ZoneCount]) {
        self.lines = lines
        self.zones = zones
    }

    /// Adds what `event` changes: a crossing, an entry and an occupant, or an occupant gone.
    /// Events of rules not in the counts, and `loiter`, change nothing.
    public mutating func apply(_ event: SceneEvent) {
        switch event.kind {
        case .cross:
            guard let i = lines.firstIndex(where: { $0.name == event.rule }) else { return }
            if event.direction == .out { lines[i].outward[event.label, default: 0] += 1 } else { lines[i].inward[event.label, default: 0] += 1 }
        case .enter:
            guard let i = zones.firstIndex(where: { $0.name == event.rule }) else { return }
            zones[i].entered[event.label, default: 0] += 1
            zones[i].objects[event.label, default: 0] += 1
        case .leave:
            guard let i = zones.firstIndex(where: { $0.name == event.rule }) else { return }
            let left = (zones[i].objects[event.label] ?? 0) - 1
            zones[i].objects[event.label] = left > 0 ? left : nil
        case .loiter:
            return
        }
    }

    /// These counts taken on under `scene` (a restart, or a reload that changed the scene): the
    /// cumulative figures of lines and zones still in it, by name, and nobody inside (the
    /// tracks start afresh); lines and zones new to it start at zero. Pure.
    public func carried(to scene: Scene) -> SceneCounts {
        var next = SceneCounts(scene: scene)
        for i in next.lines.indices {
            if let old = lines.first(where: { $0.name == next.lines[i].name }) {
                next.lines[i].inward = old.inward
                next.lines[i].outward = old.outward
            }
        }
        for i in next.zones.indices {
            if let old = zones.first(where: { $0.name == next.zones[i].name }) { next.zones[i].entered = old.entered }
        }
        return next
    }
}
