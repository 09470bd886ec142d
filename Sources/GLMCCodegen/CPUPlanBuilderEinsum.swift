import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of Einsum: the interpreter's resolution of the equation (`EinsumPlan`) gives, per
/// operand, the element stride of every label; one kernel sums, for each output element, the
/// product of the operands over the summed labels, in double (floating-point types only).
extension CPUPlanBuilder.Generator {
    mutating func lowerEinsum(_ inst: Instruction) throws {
        let operands = try inst.operands.map { v -> ValueID in
            guard let v else { throw unsupported(inst, "with an absent operand") }
            return v
        }
        guard let first = operands.first else { throw unsupported(inst) }
        let dtype = f.type(of: first).dtype
        guard dtype.isFloatingPoint, let element = CScalar(dtype), operands.allSatisfy({ f.type(of: $0).dtype == dtype }) else {
            throw unsupported(inst, "on \(dtype) tensors (floating-point only)")
        }
        guard case .string(let equation)? = inst.attributes["equation"] else { throw unsupported(inst, "without an equation") }
        let context = EvalContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                  outputCount: 1, inputs: [])
        let plan: EinsumPlan
        do { plan = try EinsumPlan(equation, shapes: try operands.map { try sizes($0, inst) }, context) } catch let e as GLMCError {
            throw unsupported(inst, "(its equation cannot be planned: \(e.message))")
        }
        guard plan.outShape == (try sizes(inst.results[0], inst)) else { throw unsupported(inst, "(its result is \(plan.outShape))") }
        includeReductionHelpers()
        func axes(_ labels: [Int]) -> [CPUKernelLibrary.EinsumAxis] {
            labels.map { l in .init(size: plan.labelSizes[l] ?? 1, strides: plan.strides.map { $0[l] ?? 0 }) }
        }
        var args = try operands.map { try argument($0, inst) }
        args.append(try output(inst))
        let sumCount = plan.sumLabels.reduce(1) { $0 * (plan.labelSizes[$1] ?? 1) }
        addStep(kind: "einsum", code: CPUKernelLibrary.einsum(name: nextSymbol, element: element, operands: operands.count,
                                                              outAxes: axes(plan.outLabels), sumAxes: axes(plan.sumLabels)),
                arguments: args, range: plan.outShape.reduce(1, *), work: max(1, sumCount * operands.count))
    }
}

extension CPUKernelLibrary {
    /// One label of an Einsum: its size and the element stride it advances in each operand.
    struct EinsumAxis {
        var size: Int
        var strides: [Int]
    }

    /// Einsum: output element o (row-major over `outAxes`) = Σ over `sumAxes` of the product of
    /// the operands, multiplied in operand order from 1 and accumulated in double, as the
    /// interpreter does. Parallel range: the output element count. Arguments: the operands, Y.
    static func einsum(name: String, element: CScalar, operands: Int, outAxes: [EinsumAxis], sumAxes: [EinsumAxis]) -> String {
        let sumCount = sumAxes.reduce(1) { $0 * $1.size }
        var s = "// \(name): einsum of \(operands) operand(s), \(sumCount) products per output\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        for t in 0 ..< operands { s += element.pointer("X\(t)", t) }
        s += element.pointer("Y", operands, const: false)
        let list = (0 ..< operands).map { "b\($0) = 0" }.joined(separator: ", ")
        s += "  for (long o = begin; o < end; ++o) {\n"
        s += "    long rest = o, c, \(list);\n"
        s += "    double acc = 0.0;\n"
        func decompose(_ axes: [EinsumAxis], into bases: String, indent: String) -> String {
            var c = ""
            for axis in axes.reversed() where axis.size > 1 {
                c += "\(indent)c = rest % \(axis.size); rest /= \(axis.size);"
                for (t, st) in axis.strides.enumerated() where st != 0 { c += " \(bases)\(t) += c * \(st);" }
                c += "\n"
            }
            return c
        }
        s += decompose(outAxes, into: "b", indent: "    ")
        s += "    for (long r = 0; r < \(sumCount); ++r) {\n"
        s += "      double p = 1.0;\n"
        s += "      long \((0 ..< operands).map { "q\($0) = b\($0)" }.joined(separator: ", "));\n"
        s += "      rest = r;\n"
        s += decompose(sumAxes, into: "q", indent: "      ")
        for t in 0 ..< operands { s += "      p = p * \(element.load("X\(t)", "q\(t)"));\n" }
        s += "      acc = acc + p;\n"
        s += "    }\n"
        s += "    \(element.store("Y", "o", "acc"))\n"
        s += "  }\n}\n"
        return s
    }
}
