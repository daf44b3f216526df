/// One confirmed track on one frame, as the scene rules see it. Value type.
public struct SceneObject: Sendable, Equatable {
    /// The track id.
    public var trackID: Int
    /// The class label (rules may keep some labels only).
    public var label: String
    /// Its position in the rules: the box's bottom-centre (`Scene.anchor`).
    public var position: ScenePoint
    /// An object. Pure.
    public init(trackID: Int, label: String, position: ScenePoint) {
        self.trackID = trackID; self.label = label; self.position = position
    }
}

/// What a scene rule saw happen. Value type.
public enum SceneEventKind: String, Sendable, Equatable, CaseIterable {
    /// A track crossed a line (`direction`).
    case cross
    /// A track entered a zone.
    case enter
    /// A track left a zone (or ended inside it); `dwell` says how long it was in.
    case leave
    /// A track has been in a zone for the zone's `loiter` seconds (once per visit).
    case loiter
}

/// Which way a line was crossed: `in` from the side where cross(b − a, p − a) < 0 to the side
/// where it is > 0 (in image coordinates, y down), `out` the other way. Value type.
public enum CrossingDirection: String, Sendable, Equatable {
    case `in`
    case out
}

/// A rule's event with the inputs that decided it, so a wrong count can be followed back: the
/// track, the last position before the change (`from`) and the first after it (`to`), with their
/// frames. Value type.
public struct SceneEvent: Sendable, Equatable {
    /// What happened.
    public var kind: SceneEventKind
    /// The line's or zone's name.
    public var rule: String
    /// The track.
    public var trackID: Int
    /// Its label.
    public var label: String
    /// `cross`: the direction.
    public var direction: CrossingDirection?
    /// `leave`, `loiter`: seconds of stream time inside, from the first frame inside.
    public var dwell: Double?
    /// The last frame and position before the change (for `loiter`: the first frame inside).
    public var fromFrame: Int, from: ScenePoint
    /// The first frame and position after it (for `loiter`: this frame).
    public var toFrame: Int, to: ScenePoint
}

/// The scene's rules for one stream (docs/scenes.md): line crossings and zone visits of confirmed
/// tracks, each change needing `min_frames` frames on the new side (or inside, or outside) so a
/// track that jitters on a boundary counts once. `update` once per frame in frame order with the
/// frame's confirmed tracks (detected or predicted); `end` when a track ends. Value type; one
/// thread at a time (the record stage's).
public struct SceneRules: Sendable {
    /// The scene it applies.
    public let scene: Scene

    private struct Place: Sendable { var frame: Int; var point: ScenePoint }
    private struct LineState: Sendable {
        var side = 0
        var candidate = 0, count = 0, crossed = false
        var from: Place?, to: Place?
    }
    private struct ZoneState: Sendable {
        var inside = false
        var count = 0
        var from: Place?, to: Place?
        var changedAt = 0.0
        var enteredAt = 0.0, enteredFrame = 0, enteredPoint = ScenePoint(0, 0)
        var loitered = false
    }
    private struct TrackState: Sendable {
        var last: Place
        var lastTime: Double
        var label: String
        var lines: [LineState]
        var zones: [ZoneState]
    }
    private var tracks: [Int: TrackState] = [:]

    /// Rules for `scene`, no track seen yet. Pure.
    public init(scene: Scene) { self.scene = scene }

    /// Advances to `frame` (at `time` seconds of stream time) with its confirmed tracks; returns
    /// the events they caused, lines first, then zones, in track order.
    public mutating func update(frame: Int, time: Double, objects: [SceneObject]) -> [SceneEvent] {
        var events: [SceneEvent] = []
        for object in objects {
            let here = Place(frame: frame, point: object.position)
            guard var track = tracks[object.trackID] else {
                var fresh = TrackState(last: here, lastTime: time, label: object.label,
                                       lines: scene.lines.map { LineState(side: $0.side(of: object.position)) },
                                       zones: [ZoneState](repeating: ZoneState(), count: scene.zones.count))
                for z in scene.zones.indices { observe(zone: z, &fresh.zones[z], object, here: here, before: here, time: time, &events) }
                tracks[object.trackID] = fresh
                continue
            }
            for l in scene.lines.indices { observe(line: l, &track.lines[l], object, here: here, before: track.last, &events) }
            for z in scene.zones.indices { observe(zone: z, &track.zones[z], object, here: here, before: track.last, time: time, &events) }
            track.last = here
            track.lastTime = time
            tracks[object.trackID] = track
        }
        return events
    }

    /// Track `trackID` ended (its `object_end`): it leaves every zone it is in (the dwell runs to
    /// its last position), and its state goes.
    public mutating func end(trackID: Int) -> [SceneEvent] {
        guard let track = tracks.removeValue(forKey: trackID) else { return [] }
        var events: [SceneEvent] = []
        for (z, state) in track.zones.enumerated() where state.inside {
            events.append(SceneEvent(kind: .leave, rule: scene.zones[z].name, trackID: trackID, label: track.label, direction: nil,
                                     dwell: max(0, track.lastTime - state.enteredAt), fromFrame: track.last.frame,
                                     from: track.last.point, toFrame: track.last.frame, to: track.last.point))
        }
        return events
    }

    /// Tracks followed now.
    public var trackCount: Int { tracks.count }

    private func applies(_ labels: Set<String>, to object: SceneObject) -> Bool { labels.isEmpty || labels.contains(object.label) }

    private func observe(line index: Int, _ state: inout LineState, _ object: SceneObject, here: Place, before: Place,
                         _ events: inout [SceneEvent]) {
        let line = scene.lines[index]
        guard applies(line.labels, to: object) else { return }
        let side = line.side(of: here.point)
        if side == 0 { return }
        if state.side == 0 { state.side = side; return }
        if side == state.side { state.candidate = 0; state.count = 0; return }
        if state.candidate != side {
            state.candidate = side
            state.count = 0
            state.crossed = false
            state.from = before
            state.to = here
        }
        state.crossed = state.crossed || line.isCrossed(from: before.point, to: here.point)
        state.count += 1
        guard state.count >= line.minFrames else { return }
        // Settled on the new side; a path around the segment's end changes side without a crossing.
        if state.crossed, let from = state.from, let to = state.to {
            events.append(SceneEvent(kind: .cross, rule: line.name, trackID: object.trackID, label: object.label,
                                     direction: state.side < 0 ? .in : .out, dwell: nil,
                                     fromFrame: from.frame, from: from.point, toFrame: to.frame, to: to.point))
        }
        state.side = side
        state.candidate = 0
        state.count = 0
    }

    private func observe(zone index: Int, _ state: inout ZoneState, _ object: SceneObject, here: Place, before: Place, time: Double,
                         _ events: inout [SceneEvent]) {
        let zone = scene.zones[index]
        guard applies(zone.labels, to: object) else { return }
        let inside = zone.polygon.contains(here.point)
        if inside == state.inside {
            state.count = 0
        } else {
            if state.count == 0 {
                state.from = before
                state.to = here
                state.changedAt = time
            }
            state.count += 1
            if state.count >= zone.minFrames, let from = state.from, let to = state.to {
                state.count = 0
                state.inside = inside
                if inside {
                    state.enteredAt = state.changedAt
                    state.enteredFrame = to.frame
                    state.enteredPoint = to.point
                    state.loitered = false
                    events.append(SceneEvent(kind: .enter, rule: zone.name, trackID: object.trackID, label: object.label, direction: nil,
                                             dwell: nil, fromFrame: from.frame, from: from.point, toFrame: to.frame, to: to.point))
                } else {
                    events.append(SceneEvent(kind: .leave, rule: zone.name, trackID: object.trackID, label: object.label, direction: nil,
                                             dwell: max(0, state.changedAt - state.enteredAt), fromFrame: from.frame, from: from.point,
                                             toFrame: to.frame, to: to.point))
                }
            }
        }
        if state.inside, let loiter = zone.loiter, !state.loitered, time - state.enteredAt >= loiter {
            state.loitered = true
            events.append(SceneEvent(kind: .loiter, rule: zone.name, trackID: object.trackID, label: object.label, direction: nil,
                                     dwell: time - state.enteredAt, fromFrame: state.enteredFrame, from: state.enteredPoint,
                                     toFrame: here.frame, to: here.point))
        }
    }
}
