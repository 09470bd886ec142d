import GLMCIR

/// Shape arithmetic shared by many ops' inference and evaluation.
public enum ShapeHelpers {
    /// NumPy-style multidirectional broadcasting of static sizes; nil when incompatible.
    public static func broadcast(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            let offset = rank - s.count
            for (i, d) in s.enumerated() {
                let j = offset + i
                if out[j] == d || d == 1 { continue }
                if out[j] == 1 { out[j] = d } else { return nil }
            }
        }
        return out
    }

    /// Broadcasting of possibly symbolic shapes. Throws naming `context` when known sizes conflict.
    public static func broadcast(_ shapes: [Shape], context: some NodeContext) throws -> Shape {
        var dimLists: [[Dim]] = []
        for s in shapes {
            guard let d = s.dims else { return .unranked }
            dimLists.append(d)
        }
        let rank = dimLists.map(\.count).max() ?? 0
        var out = [Dim](repeating: .known(1), count: rank)
        for dims in dimLists {
            let offset = rank - dims.count
            for (i, d) in dims.enumerated() {
                let j = offset + i
                switch (out[j], d) {
                case (_, .known(1)): continue
                case (.known(1), _): out[j] = d
                case (.known(let a), .known(let b)):
                    if a != b {
                        throw context.error("cannot broadcast shapes \(shapes.map(\.description).joined(separator: " and "))")
                    }
                case (.known, _): continue
                case (_, .known): out[j] = d
                case (.symbol(let a), .symbol(let b)) where a == b: continue
                default: out[j] = .unknown
                }
            }
        }
        return Shape(out)
    }

    /// Row-major strides of static sizes.
    public static func strides(_ sizes: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: sizes.count)
        var acc = 1
        for i in stride(from: sizes.count - 1, through: 0, by: -1) { strides[i] = acc; acc *= sizes[i] }
        return strides
    }

    /// Resolves a possibly negative axis against `rank`; throws naming the node when out of range.
    public static func normalizeAxis(_ axis: Int, rank: Int, context: some NodeContext) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else { throw context.error("axis \(axis) is out of range for rank \(rank)") }
        return a
    }
}
