import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of GridSample (2-D and 3-D, every mode and padding mode) to the kernel of
/// `CPUKernelLibrarySampling.swift`: the grid is read at run time, the rest is baked in.
extension CPUPlanBuilder.Generator {
    mutating func lowerGridSample(_ inst: Instruction) throws {
        guard inst.operands.count == 2, let xv = inst.operands[0], let gv = inst.operands[1] else { throw unsupported(inst) }
        let x = try sizes(xv, inst), grid = try sizes(gv, inst), y = try sizes(inst.results[0], inst)
        let xType = f.type(of: xv).dtype, gType = f.type(of: gv).dtype
        guard xType != .bool, xType.isFloatingPoint, let element = CScalar(xType), gType.isFloatingPoint, let gridScalar = CScalar(gType) else {
            throw unsupported(inst, "on \(xType) data with a \(gType) grid")
        }
        let k = x.count - 2
        guard k >= 1, grid.count == k + 2, grid[0] == x[0], grid[k + 1] == k, y == [x[0], x[1]] + Array(grid.dropFirst().dropLast()) else {
            throw unsupported(inst, "with data \(x) and grid \(grid)")
        }
        let modeName: String
        if case .string(let m)? = inst.attributes["mode"] { modeName = m } else { modeName = inst.opset >= 20 ? "linear" : "bilinear" }
        let mode: CPUKernelLibrary.GridSampleSpec.Mode
        switch modeName {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        case "cubic", "bicubic": mode = .cubic
        default: throw unsupported(inst, "in mode '\(modeName)'")
        }
        var padding = "zeros"
        if case .string(let p)? = inst.attributes["padding_mode"] { padding = p }
        guard ["zeros", "border", "reflection"].contains(padding) else { throw unsupported(inst, "with padding_mode '\(padding)'") }
        includeReductionHelpers()
        if !source.contains("#define GLMC_GRID_SAMPLE") { source += "\n" + CPUKernelLibrary.gridSampleHelpers }
        let outPlane = grid.dropFirst().dropLast().reduce(1, *)
        let spec = CPUKernelLibrary.GridSampleSpec(mode: mode, padding: padding, alignCorners: intAttr(inst, "align_corners", 0) != 0,
                                                   element: element, gridIsDouble: gType == .f64, batch: x[0], channels: x[1],
                                                   inputDims: Array(x.dropFirst(2)), outPlane: outPlane)
        let taps = mode == .cubic ? 4 : mode == .linear ? 2 : 1
        let combinations = (0 ..< k).reduce(1) { r, _ in r * taps }
        addStep(kind: "grid_sample", code: CPUKernelLibrary.gridSample(name: nextSymbol, spec, grid: gridScalar),
                arguments: [try argument(xv, inst), try argument(gv, inst), try output(inst)], range: x[0] * outPlane,
                work: x[1] * combinations * 2 + 16 * k)
    }
}
