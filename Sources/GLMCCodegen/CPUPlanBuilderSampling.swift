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

    /// AffineGrid with a constant size: the base points are laid out at convert time (the
    /// interpreter's formula), the product with theta is computed at run time.
    mutating func lowerAffineGrid(_ inst: Instruction) throws {
        guard inst.operands.count == 2, let tv = inst.operands[0], let sv = inst.operands[1] else { throw unsupported(inst) }
        guard let sc = constants[sv], let size = try? Tensor(sc).int64s.map({ Int($0) }) else {
            throw unsupported(inst, "with a runtime size (bind it with --input-value)")
        }
        let dtype = f.type(of: tv).dtype
        guard dtype.isFloatingPoint, let element = CScalar(dtype) else { throw unsupported(inst, "on \(dtype) tensors") }
        guard size.count == 4 || size.count == 5, size.allSatisfy({ $0 >= 0 }) else { throw unsupported(inst, "with size \(size)") }
        let spatial = Array(size.dropFirst(2)), k = spatial.count
        guard try sizes(tv, inst) == [size[0], k, k + 1], try sizes(inst.results[0], inst) == [size[0]] + spatial + [k] else {
            throw unsupported(inst, "with theta \(try sizes(tv, inst)) for size \(size)")
        }
        let alignCorners = intAttr(inst, "align_corners", 0) != 0
        let base = spatial.map { s -> [Double] in
            let n = Double(s)
            return (0 ..< s).map { i in
                let di = Double(i)
                if !alignCorners { return -1 + (2 * di + 1) / n }
                return s == 1 ? -1 : -1 + 2 * di / (n - 1)
            }
        }
        let points = spatial.reduce(1, *)
        guard points * size[0] > 0 else { return }
        var table: [Double] = []
        for p in 0 ..< points {
            var index = [Int](repeating: 0, count: k), rest = p
            for d in stride(from: k - 1, through: 0, by: -1) { index[d] = rest % spatial[d]; rest /= spatial[d] }
            table += (0 ..< k).map { base[k - 1 - $0][index[k - 1 - $0]] } + [1]
        }
        includeReductionHelpers()
        let r = inst.results[0]
        let args = [try argument(tv, inst),
                    try weight(key: "affine_points#\(r.index)", name: f.name(of: r) + ".base_points",
                               TensorData(type: TensorType(.f64, static: [points, k + 1]), elements: table), inst),
                    try output(inst)]
        addStep(kind: "affine_grid", code: CPUKernelLibrary.affineGrid(name: nextSymbol, element: element, points: points, k: k),
                arguments: args, range: size[0] * points, work: 2 * k * (k + 1))
    }

    /// RoiAlign (avg and max modes, both coordinate modes, any sampling ratio): ROIs and batch
    /// indices are read at run time.
    mutating func lowerRoiAlign(_ inst: Instruction) throws {
        guard inst.operands.count == 3, let xv = inst.operands[0], let rv = inst.operands[1], let iv = inst.operands[2] else { throw unsupported(inst) }
        let x = try sizes(xv, inst), r = try sizes(rv, inst), n = try sizes(iv, inst).reduce(1, *), y = try sizes(inst.results[0], inst)
        let dtype = f.type(of: xv).dtype
        guard dtype.isFloatingPoint, let element = CScalar(dtype), let rois = CScalar(f.type(of: rv).dtype), f.type(of: rv).dtype.isFloatingPoint,
              let indices = CScalar(f.type(of: iv).dtype), !f.type(of: iv).dtype.isFloatingPoint else {
            throw unsupported(inst, "on \(dtype) data with \(f.type(of: rv).dtype) ROIs")
        }
        let ph = intAttr(inst, "output_height", 1), pw = intAttr(inst, "output_width", 1)
        guard x.count == 4, r == [n, 4], ph > 0, pw > 0, y == [n, x[1], ph, pw] else { throw unsupported(inst, "with input \(x) and ROIs \(r)") }
        var mode = "avg", coordinates = "half_pixel"
        if case .string(let m)? = inst.attributes["mode"] { mode = m }
        if case .string(let c)? = inst.attributes["coordinate_transformation_mode"] { coordinates = c }
        guard y.reduce(1, *) > 0 else { return }
        includeReductionHelpers()
        addStep(kind: "roi_align",
                code: CPUKernelLibrary.roiAlign(name: nextSymbol, element: element, rois: rois, indices: indices, batch: x[0], channels: x[1],
                                                height: x[2], width: x[3], outHeight: ph, outWidth: pw,
                                                samplingRatio: intAttr(inst, "sampling_ratio", 0), spatialScale: floatAttr(inst, "spatial_scale", 1),
                                                halfPixel: inst.opset >= 16 && coordinates == "half_pixel", isMax: mode == "max"),
                arguments: [try argument(xv, inst), try argument(rv, inst), try argument(iv, inst), try output(inst)],
                range: y.reduce(1, *), work: 64)
    }
}
