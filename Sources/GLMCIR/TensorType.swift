/// One dimension of a tensor shape: a known size, a named symbolic size (`?batch`), or unknown (`?`).
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case known(Int)
    case symbol(String)
    case unknown

    public var value: Int? { if case .known(let v) = self { return v } else { return nil } }

    public var description: String {
        switch self {
        case .known(let v): return String(v)
        case .symbol(let s): return "?" + s
        case .unknown: return "?"
        }
    }
}

/// A tensor shape. `dims == nil` means the rank itself is unknown (printed `[*]`).
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public var dims: [Dim]?

    public init(_ dims: [Dim]?) { self.dims = dims }
    public init(static sizes: [Int]) { self.dims = sizes.map { .known($0) } }
    public static let unranked = Shape(nil)
    public static let scalar = Shape(static: [])

    public var rank: Int? { dims?.count }
    /// All sizes when every dimension is known.
    public var staticSizes: [Int]? {
        guard let dims else { return nil }
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims { guard let v = d.value else { return nil }; out.append(v) }
        return out
    }
    public var isStatic: Bool { staticSizes != nil }

    public var description: String {
        guard let dims else { return "[*]" }
        return "[" + dims.map(\.description).joined(separator: ",") + "]"
    }

    /// Whether a value of shape `other` may flow where this shape is declared: ranks agree when both
    /// are known and every pair of known sizes is equal. Symbols and unknowns match anything.
    public func isCompatible(with other: Shape) -> Bool {
        guard let a = dims, let b = other.dims else { return true }
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            if let vx = x.value, let vy = y.value, vx != vy { return false }
        }
        return true
    }

    /// The more informative of two compatible shapes, dimension by dimension (known beats symbol
    /// beats unknown). Callers check compatibility first.
    public func refined(by other: Shape) -> Shape {
        guard let a = dims else { return other }
        guard let b = other.dims, a.count == b.count else { return self }
        return Shape(zip(a, b).map { x, y in
            switch (x, y) {
            case (.known, _): return x
            case (_, .known): return y
            case (.symbol, _): return x
            default: return y
            }
        })
    }
}

/// The type of an IR value: element type and shape, printed `f32[1,3,224,224]`.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: Shape

    public init(_ dtype: DType, _ shape: Shape) { self.dtype = dtype; self.shape = shape }
    public init(_ dtype: DType, static sizes: [Int]) { self.init(dtype, Shape(static: sizes)) }

    public var description: String { dtype.rawValue + shape.description }

    public func isCompatible(with other: TensorType) -> Bool {
        dtype == other.dtype && shape.isCompatible(with: other.shape)
    }
}

/// Element count of a static shape, or nil when it overflows `Int` (a corrupt or hostile model).
public func checkedElementCount(_ sizes: [Int]) -> Int? {
    var n = 1
    for s in sizes {
        guard s >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: s)
        if overflow { return nil }
        n = p
    }
    return n
}
