import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of interpolating Resize and Upsample (linear and cubic modes; nearest mode only moves
/// elements and goes through an index table, see `CPUPlanBuilderMovement.swift`).
///
/// The interpreter's definition (`NeuralOps.resizeInterpolation`) gives, per resized axis and
/// output position, the input taps and weights; they are laid out as two weights (offsets and
/// weights) and one kernel sums the weighted taps of each output element. The tables cost
/// `taps` entries per output position of each resized axis (not per output element), so they
/// stay small for any image size.
extension CPUPlanBuilder.Generator {
    /// Whether `inst` is a Resize or Upsample that interpolates (rather than picks the nearest element).
    func isInterpolatingResize(_ inst: Instruction) -> Bool {
        guard inst.op.type == "Resize" || inst.op.type == "Upsample", case .string(let mode)? = inst.attributes["mode"] else { return false }
        return mode != "nearest"
    }

    mutating func lowerInterpolatingResize(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        // roi, scales and sizes decide the tables: they must be known now.
        var inputs: [Tensor?] = [nil]
        for v in inst.operands.dropFirst() {
            guard let v else { inputs.append(nil); continue }
            guard let c = constants[v] else { throw unsupported(inst, "with a runtime '\(f.name(of: v))' (roi, scales and sizes must be constants)") }
            inputs.append(try Tensor(c))
        }
        let dtype = f.type(of: xv).dtype
        guard dtype != .bool, dtype != .u64, let element = CScalar(dtype) else { throw unsupported(inst, "on \(dtype) tensors") }
        includeReductionHelpers()
        let xSizes = try sizes(xv, inst), ySizes = try sizes(inst.results[0], inst)
        let context = EvalContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                  outputCount: inst.results.count, inputs: inputs)
        let resize: ResizeInterpolation
        do { resize = try NeuralOps.resizeInterpolation(context, inputShape: xSizes) } catch let e as GLMCError {
            throw unsupported(inst, "(its interpolation cannot be planned: \(e.message))")
        }
        guard resize.outSizes == ySizes else { throw unsupported(inst, "(it resizes to \(resize.outSizes), the plan expects \(ySizes))") }
        let count = ySizes.reduce(1, *)
        guard count > 0 else { return }
        if resize.axes.allSatisfy({ $0 == nil }) {
            let bytes = byteCount(inst.results[0])
            return addStep(kind: "copy", code: CPUKernelLibrary.copy(name: nextSymbol, bytes: bytes),
                           arguments: [try argument(xv, inst), try output(inst)], range: bytes, work: 1)
        }
        let strides = Self.strides(xSizes)
        var offsets: [Int64] = [], weights: [Double] = [], taps: [CPUKernelLibrary.ResizeAxisTaps?] = [], work = 1
        for (a, plan) in resize.axes.enumerated() {
            guard let plan else { taps.append(nil); continue }
            taps.append(.init(taps: plan.taps, base: offsets.count))
            work *= plan.taps
            for y in 0 ..< ySizes[a] {
                for t in 0 ..< plan.taps {
                    offsets.append(plan.outside[y] ? -1 : Int64(plan.index[y * plan.taps + t] * strides[a]))
                    weights.append(plan.weight[y * plan.taps + t])
                }
            }
        }
        let extrapolationAt = weights.count
        weights.append(resize.extrapolation)
        let r = inst.results[0], name = f.name(of: r)
        let args = [try argument(xv, inst),
                    try weight(key: "resize_offsets#\(r.index)", name: name + ".resize_offsets",
                               TensorData(type: TensorType(.i64, static: [offsets.count]), elements: offsets), inst),
                    try weight(key: "resize_weights#\(r.index)", name: name + ".resize_weights",
                               TensorData(type: TensorType(.f64, static: [weights.count]), elements: weights), inst),
                    try output(inst)]
        addStep(kind: "resize_interpolate",
                code: CPUKernelLibrary.resizeInterpolate(name: nextSymbol, element: element, outShape: ySizes, axes: taps,
                                                         inputStrides: strides, extrapolationAt: extrapolationAt),
                arguments: args, range: count, work: 2 * work)
    }
}
