import GLMCIR

extension ReductionLinearAlgebra {
    static let einsum = OpDefinition("Einsum", since: [12, 28], infer: { ctx in
        let types = try (0..<ctx.inputTypes.count).map { try ctx.requiredInput($0) }
        guard let first = types.first else { throw ctx.error("Einsum needs at least one input") }
        try ReductionSupport.requireNumeric(first.dtype, ctx)
        let dims = types.map { $0.shape.dims }
        guard dims.allSatisfy({ $0 != nil }) else { return [TensorType(first.dtype, .unranked)] }
        // Resolve the equation with non-static sizes as 1 (which broadcasts against anything), then
        // give each output axis the most informative dimension its label has among the inputs.
        let plan = try EinsumPlan(try equation(ctx), shapes: dims.map { $0!.map { $0.value ?? 1 } }, ctx)
        var best: [Int: Dim] = [:]
        for (labels, ds) in zip(plan.operandLabels, dims) {
            for (label, d) in zip(labels, ds!) {
                switch (best[label], d) {
                case (nil, _), (.known(1)?, _), (.unknown?, .symbol): best[label] = d
                case (.symbol?, .known(let v)) where v != 1: best[label] = d
                case (.unknown?, .known(let v)) where v != 1: best[label] = d
                default: break
                }
            }
        }
        return [TensorType(first.dtype, Shape(plan.outLabels.map { best[$0] ?? .known(1) }))]
    }, evaluate: { ctx in
        let inputs = try (0..<ctx.inputs.count).map { try ctx.requiredInput($0) }
        guard let dtype = inputs.first?.dtype else { throw ctx.error("Einsum needs at least one input") }
        guard inputs.allSatisfy({ $0.dtype == dtype }) else { throw ctx.error("Einsum inputs must share one type") }
        let plan = try EinsumPlan(try equation(ctx), shapes: inputs.map(\.shape), ctx)
        let numbers = try inputs.map { try Numbers($0, ctx) }
        if case .int = numbers[0] {
            let ints = numbers.map { n -> [Int64] in if case .int(let v) = n { return v } else { return [] } }
            return [Tensor(int64s: plan.evaluate(ints), dtype: dtype, shape: plan.outShape)]
        }
        return [Tensor(doubles: plan.evaluate(numbers.map(\.doubles)), dtype: dtype, shape: plan.outShape)]
    })

    private static func equation(_ ctx: some NodeContext) throws -> String {
        guard let e = try ctx.string("equation") else { throw ctx.error("missing attribute 'equation'") }
        return e
    }
}

/// An Einsum equation resolved against operand shapes. Every axis gets a label id: letters A–Z, a–z
/// are 0–51 (so id order is ASCII order), the broadcast axes of "..." are 52 onwards, right-aligned.
/// Public for the CPU plan builder, whose Einsum kernel walks the same strides.
public struct EinsumPlan {
    public private(set) var labelSizes: [Int: Int] = [:]
    public private(set) var outLabels: [Int] = []
    public private(set) var sumLabels: [Int] = []
    /// Per operand, per label: the element stride that label advances (summed over repeated labels,
    /// which walks a diagonal; 0 for labels the operand lacks or broadcasts).
    public private(set) var strides: [[Int: Int]] = []
    /// The label of every axis of every operand.
    public private(set) var operandLabels: [[Int]] = []
    public var outShape: [Int] { outLabels.map { labelSizes[$0] ?? 1 } }

    private enum Token: Equatable { case label(Int), ellipsis }

    public init(_ equation: String, shapes: [[Int]], _ ctx: some NodeContext) throws {
        let text = equation.filter { $0 != " " }
        let sides = text.components(separatedBy: "->")
        guard sides.count <= 2 else { throw ctx.error("equation '\(equation)' has more than one '->'") }
        let terms = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map { try Self.tokens(String($0), ctx) }
        guard terms.count == shapes.count else {
            throw ctx.error("equation '\(equation)' has \(terms.count) terms for \(shapes.count) inputs")
        }
        // How many axes "..." stands for: the most any operand gives it.
        var ellipsisRanks: [Int] = []
        for (term, shape) in zip(terms, shapes) {
            let letters = term.filter { $0 != .ellipsis }.count
            let hasEllipsis = term.contains(.ellipsis)
            guard hasEllipsis ? shape.count >= letters : shape.count == letters else {
                throw ctx.error("term of equation '\(equation)' does not match an input of rank \(shape.count)")
            }
            ellipsisRanks.append(shape.count - letters)
        }
        let ellipsisRank = ellipsisRanks.max() ?? 0
        // Expand "..." into its label ids so every axis of every operand has one label.
        operandLabels = terms.enumerated().map { t, term in
            term.flatMap { token -> [Int] in
                switch token {
                case .label(let id): return [id]
                case .ellipsis: return (ellipsisRank - ellipsisRanks[t]..<ellipsisRank).map { 52 + $0 }
                }
            }
        }
        var counts: [Int: Int] = [:]
        for (labels, shape) in zip(operandLabels, shapes) {
            for (label, size) in zip(labels, shape) {
                counts[label, default: 0] += 1
                // Size-1 axes broadcast against larger ones (NumPy einsum broadcasting).
                let known = labelSizes[label] ?? size
                guard known == size || known == 1 || size == 1 else {
                    throw ctx.error("label sizes \(known) and \(size) conflict in equation '\(equation)'")
                }
                labelSizes[label] = max(known, size)
            }
        }
        for (labels, shape) in zip(operandLabels, shapes) {
            let own = ShapeHelpers.strides(shape)
            var s: [Int: Int] = [:]
            for (axis, label) in labels.enumerated() where shape[axis] == labelSizes[label] {
                s[label, default: 0] += own[axis]
            }
            strides.append(s)
        }
        let ellipsisLabels = (0..<ellipsisRank).map { 52 + $0 }
        if sides.count == 2 {
            let out = try Self.tokens(sides[1], ctx)
            for token in out {
                switch token {
                case .ellipsis: outLabels += ellipsisLabels
                case .label(let id):
                    guard counts[id] != nil else { throw ctx.error("output label in '\(equation)' is not in any input") }
                    guard !outLabels.contains(id) else { throw ctx.error("output label repeated in '\(equation)'") }
                    outLabels.append(id)
                }
            }
        } else {
            // Implicit output: broadcast axes first, then labels seen exactly once, in ASCII order.
            outLabels = ellipsisLabels + counts.filter { $0.key < 52 && $0.value == 1 }.map(\.key).sorted()
        }
        sumLabels = counts.keys.filter { !outLabels.contains($0) }.sorted()
        _ = try ReductionSupport.count(outShape, ctx)
    }

    private static func tokens(_ term: String, _ ctx: some NodeContext) throws -> [Token] {
        var out: [Token] = []
        var rest = Substring(term)
        while let c = rest.first {
            if rest.hasPrefix("...") {
                guard !out.contains(.ellipsis) else { throw ctx.error("a term of the equation has two '...'") }
                out.append(.ellipsis); rest = rest.dropFirst(3); continue
            }
            guard let ascii = c.asciiValue, c.isLetter else { throw ctx.error("unexpected '\(c)' in equation") }
            out.append(.label(ascii < 97 ? Int(ascii) - 65 : Int(ascii) - 97 + 26))
            rest = rest.dropFirst()
        }
        return out
    }

    /// output[out labels] = Σ over summed labels of Π operands.
    func evaluate<T: LinearAlgebraScalar>(_ operands: [[T]]) -> [T] {
        let outSizes = outLabels.map { labelSizes[$0] ?? 1 }, sumSizes = sumLabels.map { labelSizes[$0] ?? 1 }
        let outOffsets = strides.map { s in ReductionSupport.stridedOffsets(shape: outSizes, strides: outLabels.map { s[$0] ?? 0 }) }
        let sumOffsets = strides.map { s in ReductionSupport.stridedOffsets(shape: sumSizes, strides: sumLabels.map { s[$0] ?? 0 }) }
        let outCount = outSizes.reduce(1, *), sumCount = sumSizes.reduce(1, *)
        var out = [T](repeating: .zero, count: outCount)
        for o in 0..<outCount {
            var acc = T.zero
            for s in 0..<sumCount {
                var p = T.one
                for (t, values) in operands.enumerated() { p = T.mul(p, values[outOffsets[t][o] + sumOffsets[t][s]]) }
                acc = T.mulAdd(acc, p, .one)
            }
            out[o] = acc
        }
        return out
    }
}
