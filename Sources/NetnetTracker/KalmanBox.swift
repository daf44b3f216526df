/// A box in pixel corners (x1, y1, x2, y2). Value type.
public struct TrackBox: Sendable, Equatable {
    /// Left, top, right, bottom.
    public var x1, y1, x2, y2: Float
    /// A box from its corners. Pure.
    public init(x1: Float, y1: Float, x2: Float, y2: Float) {
        self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2
    }
    /// A box from centre and size. Pure.
    public init(centerX: Float, centerY: Float, width: Float, height: Float) {
        self.init(x1: centerX - width / 2, y1: centerY - height / 2, x2: centerX + width / 2, y2: centerY + height / 2)
    }
    /// Width (never negative).
    public var width: Float { max(0, x2 - x1) }
    /// Height (never negative).
    public var height: Float { max(0, y2 - y1) }
    /// Centre x.
    public var centerX: Float { (x1 + x2) / 2 }
    /// Centre y.
    public var centerY: Float { (y1 + y2) / 2 }
    /// Area (0 for an empty box).
    public var area: Float { width * height }

    /// Intersection over union with `other`, in [0, 1]; 0 when either is empty. Pure.
    public func iou(_ other: TrackBox) -> Float {
        let w = min(x2, other.x2) - max(x1, other.x1)
        let h = min(y2, other.y2) - max(y1, other.y1)
        guard w > 0, h > 0 else { return 0 }
        let intersection = w * h
        let union = area + other.area - intersection
        return union > 0 ? intersection / union : 0
    }
}

/// The noise model of the constant-velocity filter. Noise scales with the box's height, so a
/// near (large) person may move more pixels a frame than a far one (as in SORT's successors).
/// Value type.
public struct KalmanNoise: Sendable, Equatable {
    /// Standard deviation of position, as a fraction of the height, per frame.
    public var position: Float = 1.0 / 40
    /// Standard deviation of velocity, as a fraction of the height, per frame.
    public var velocity: Float = 1.0 / 40
    /// Standard deviation of a measured position, as a fraction of the height.
    public var measurement: Float = 1.0 / 20
    /// The defaults above. Pure.
    public init() {}
}

/// A constant-velocity Kalman filter over a box's centre and size (cx, cy, w, h and their
/// velocities in pixels per frame), one frame a step. With noise that is diagonal per coordinate
/// (as here), the 8-dimensional filter splits into four independent filters of (value,
/// velocity), each with a 2×2 covariance: this type runs those four, in closed form.
/// `ReferenceKalman` (the tests' plain twin) runs the full 8×8 matrices. Value type.
public struct KalmanBox: Sendable, Equatable {
    /// (cx, cy, w, h).
    public private(set) var value: SIMD4<Float>
    /// Their velocities, per frame.
    public private(set) var velocity: SIMD4<Float>
    /// var(value) per coordinate.
    public private(set) var pp: SIMD4<Float>
    /// cov(value, velocity) per coordinate.
    public private(set) var pv: SIMD4<Float>
    /// var(velocity) per coordinate.
    public private(set) var vv: SIMD4<Float>
    /// The noise model.
    public let noise: KalmanNoise

    /// A filter starting at `box`, at rest, with the initial uncertainty of a first sighting. Pure.
    public init(box: TrackBox, noise: KalmanNoise = KalmanNoise()) {
        self.noise = noise
        value = SIMD4(box.centerX, box.centerY, box.width, box.height)
        velocity = .zero
        let h = max(box.height, 1)
        let p = 2 * noise.position * h, v = 10 * noise.velocity * h
        pp = SIMD4(repeating: p * p)
        pv = .zero
        vv = SIMD4(repeating: v * v)
    }

    /// The box the state says.
    public var box: TrackBox {
        TrackBox(centerX: value[0], centerY: value[1], width: max(value[2], 0), height: max(value[3], 0))
    }

    /// Advances one frame: x += v; P = F P Fᵀ + Q. Pure on the value.
    public mutating func predict() {
        let h = max(value[3], 1)
        let q = noise.position * h, r = noise.velocity * h
        value += velocity
        // F = [[1, 1], [0, 1]] per coordinate.
        let newPP = pp + 2 * pv + vv + SIMD4(repeating: q * q)
        let newPV = pv + vv
        let newVV = vv + SIMD4(repeating: r * r)
        pp = newPP; pv = newPV; vv = newVV
    }

    /// Corrects the state with a measured box (H = [1, 0] per coordinate). Pure on the value.
    public mutating func update(_ box: TrackBox) {
        let z = SIMD4(box.centerX, box.centerY, box.width, box.height)
        let h = max(value[3], 1)
        let m = noise.measurement * h
        let s = pp + SIMD4(repeating: m * m)          // innovation variance
        let gainValue = pp / s, gainVelocity = pv / s
        let innovation = z - value
        value += gainValue * innovation
        velocity += gainVelocity * innovation
        // P = (I − K H) P, kept symmetric.
        let newPP = (1 - gainValue) * pp
        let newPV = (1 - gainValue) * pv
        let newVV = vv - gainVelocity * pv
        pp = newPP; pv = newPV; vv = newVV
    }
}
