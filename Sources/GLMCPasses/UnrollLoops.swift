import GLMCIR
import GLMCOps

/// Unrolls `Loop`s with a constant trip count and `Scan`s over a static sequence length into
/// straight-line code.
///
/// A `Loop` is unrolled when its trip count `M` is a constant and it provably runs all `M`
/// iterations: its `cond` input is absent or a constant, and the body's condition output is the
/// body's `cond` argument (through Identity) or a constant true — a condition computed from data
/// stops the loop at a time only the run knows, and the loop stays. A constant false `cond` runs no
/// iteration. Iteration `i` is a copy of the body (`RegionInlining.copy`) with the iteration number
/// bound to a constant `i`, the condition to a constant true and the loop-carried arguments to the
/// previous iteration's outputs (the loop's inputs for the first); the loop's carried results are
/// the last iteration's, and each scan output is the per-iteration values stacked on a new axis 0
/// (`Unsqueeze` each, `Concat`).
///
/// A `Scan` (opset 9 on) is unrolled when its scanned inputs have the same static length along
/// their `scan_input_axes`. Step `t` binds the states to the previous step's and each scanned input
/// to its slice `Gather(x, t, axis)` (`length−1−t` for a reversed input, `scan_input_directions`);
/// scan outputs are stacked along `scan_output_axes`, in reverse step order where
/// `scan_output_directions` says so. A Scan-8 (leading batch axis on every state and scanned input,
/// time on axis 1) is unrolled per batch element the same way, its states and outputs stacked back
/// on axis 0; its `sequence_lens`, if given, must be a constant equal to the length.
///
/// Unrolling trades code size for static shapes, so it is capped: one run of the pass creates at
/// most `instructionLimit` instructions in all; a loop whose unrolling would go past that is left
/// alone (and a back end that cannot run it refuses it as before). Copied instructions pass
/// through the same sweep, so a loop nested in an unrolled body whose trip count the copy makes
/// constant is unrolled too, within the same budget. Values copied for iteration `i` have `_iter<i>`
/// appended to their source names.
public struct UnrollLoops: Pass {
    public static let name = "unroll-loops"
    public static let summary = "Unrolls Loops with a constant trip count and Scans of static length into straight-line code (capped)."
    public init() {}

    /// The most instructions one run of the pass creates.
    public static let instructionLimit = 16_384

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        var budget = Self.instructionLimit
        let opset = Folding.constantOpset(module)
        return Folding.forEachFunction(&module.main) { f in
            var unroller = Unroller(f: f, opset: opset, budget: budget)
            for inst in f.body { unroller.emit(inst) }
            budget = unroller.budget
            guard unroller.loops + unroller.scans > 0 else { return false }
            unroller.f.body = unroller.body
            Folding.renameOutputs(&unroller.f, unroller.rename)
            Folding.refineTypes(in: &unroller.f)
            f = unroller.f
            if unroller.loops > 0 { context.count("loops unrolled", unroller.loops) }
            if unroller.scans > 0 { context.count("scans unrolled", unroller.scans) }
            return true
        }
    }

    /// The sweep over one function: the new body, how the results of unrolled loops were renamed,
    /// and what is left of the instruction budget.
    private struct Unroller {
        var f: Function
        let opset: Int
        var budget: Int
        var constants: [ValueID: TensorData]
        var body: [Instruction] = []
        var rename: [ValueID: ValueID] = [:]
        var loops = 0, scans = 0

        init(f: Function, opset: Int, budget: Int) {
            self.f = f
            self.opset = opset
            self.budget = budget
            constants = Folding.constants(in: f)
        }

        mutating func emit(_ original: Instruction) {
            var inst = original
            Folding.rename(&inst, rename)
            let firstNew = f.values.count
            let replacements: [ValueID]?
            if RegionInlining.isOp(inst, "Loop") {
                replacements = unrollLoop(inst)
                if replacements != nil { loops += 1 }
            } else if RegionInlining.isOp(inst, "Scan") {
                replacements = inst.opset >= 9 ? unrollScan(inst) : unrollScan8(inst)
                if replacements != nil { scans += 1 }
            } else {
                replacements = nil
            }
            guard let replacements else {
                if let c = inst.constantValue { constants[inst.results[0]] = c }
                body.append(inst)
                return
            }
            for (r, v) in zip(inst.results, replacements) {
                RegionInlining.replace(r, by: v, in: &f, rename: &rename, createdFrom: firstNew)
            }
        }

        /// Charges `count` instructions to the budget; false (and nothing charged) when it does not cover them.
        mutating func charge(_ count: Int) -> Bool {
            guard count >= 0, count <= budget else { return false }
            budget -= count
            return true
        }

        // MARK: Loop

        /// Unrolls `inst` (a Loop) and returns the values its results became, or nil when it must stay.
        mutating func unrollLoop(_ inst: Instruction) -> [ValueID]? {
            guard let loopBody = RegionInlining.graph(inst, "body"), inst.operands.count >= 2,
                  let tripCount = RegionInlining.scalar(inst.operands[0], constants) else { return nil }
            let initial = inst.operands.dropFirst(2).compactMap { $0 }
            let carriedCount = initial.count
            guard initial.count == inst.operands.count - 2, loopBody.arguments.count == carriedCount + 2,
                  loopBody.outputs.count >= carriedCount + 1 else { return nil }
            var runs = true
            if let c = inst.operands[1] {
                guard let value = RegionInlining.scalar(c, constants) else { return nil }
                runs = value != 0
            }
            // A trip count past the budget is refused below (before converting, so it cannot overflow).
            guard !runs || tripCount <= Double(budget) else { return nil }
            let iterations = runs ? Int(max(0, tripCount)) : 0
            if iterations > 0, !conditionStaysTrue(loopBody) { return nil }
            let scanCount = loopBody.outputs.count - 1 - carriedCount
            // A loop that runs no iteration gives empty scan outputs: their shape must be known.
            var empty: [Tensor] = []
            if iterations == 0 {
                for k in 0 ..< scanCount {
                    let t = loopBody.type(of: loopBody.outputs[1 + carriedCount + k])
                    guard let sizes = t.shape.staticSizes, t.dtype != .string else { return nil }
                    empty.append(Tensor.zeros(t.dtype, shape: [0] + sizes))
                }
            }
            let perIteration = loopBody.body.count + 2 + 2 * scanCount
            guard iterations <= budget, charge(iterations * perIteration + scanCount) else { return nil }

            var carried = Array(initial)
            var scanned: [[ValueID]] = Array(repeating: [], count: scanCount)
            for i in 0 ..< iterations {
                let number = constant(Tensor([Int64(i)], shape: []))
                let condition = constant(Tensor([true], shape: []))
                let outputs = copy(loopBody, arguments: [number, condition] + carried, nameSuffix: "_iter\(i)")
                carried = Array(outputs[1 ..< 1 + carriedCount])
                for k in 0 ..< scanCount { scanned[k].append(outputs[1 + carriedCount + k]) }
            }
            let stacked = scanned.enumerated().map { k, parts in
                parts.isEmpty ? constant(empty[k]) : stack(parts, axis: 0)
            }
            return carried + stacked
        }

        /// Whether the body's condition output is its condition argument (through Identity) or a
        /// constant true, so a loop entered with a true condition runs every iteration.
        func conditionStaysTrue(_ g: Function) -> Bool {
            let defining = g.definingInstructions()
            let bodyConstants = Folding.constants(in: g)
            var v = g.outputs[0]
            var seen = Set<ValueID>()
            while seen.insert(v).inserted {
                if v == g.arguments[1] { return true }
                if let c = g.captures.first(where: { $0.inner == v }) {
                    return RegionInlining.scalar(c.outer, constants).map { $0 != 0 } ?? false
                }
                if let value = RegionInlining.scalar(v, bodyConstants) { return value != 0 }
                guard let i = defining[v], RegionInlining.isOp(g.body[i], "Identity"),
                      let x = g.body[i].operands.first ?? nil else { return false }
                v = x
            }
            return false
        }

        // MARK: Scan

        /// Unrolls `inst` (a Scan of opset 9 or later) and returns the values its results became, or
        /// nil when it must stay.
        mutating func unrollScan(_ inst: Instruction) -> [ValueID]? {
            guard let scanBody = RegionInlining.graph(inst, "body"), case .int(let scanCount)? = inst.attributes["num_scan_inputs"],
                  scanCount > 0, scanCount <= inst.operands.count else { return nil }
            let operands = inst.operands.compactMap { $0 }
            let stateCount = operands.count - scanCount
            guard operands.count == inst.operands.count, scanBody.arguments.count == operands.count,
                  scanBody.outputs.count >= stateCount else { return nil }
            let scannedInputs = Array(operands[stateCount...])
            let inputAxes = ints(inst, "scan_input_axes"), inputDirections = ints(inst, "scan_input_directions")
            let outputAxes = ints(inst, "scan_output_axes"), outputDirections = ints(inst, "scan_output_directions")
            guard let inputAxes, let inputDirections, let outputAxes, let outputDirections,
                  let length = sequenceLength(scannedInputs, axes: inputAxes) else { return nil }
            let outputCount = scanBody.outputs.count - stateCount
            // An output axis out of range is an error the Scan reports when it runs; it stays a Scan.
            for k in 0 ..< min(outputCount, outputAxes.count) {
                guard let rank = scanBody.type(of: scanBody.outputs[stateCount + k]).shape.rank,
                      (-(rank + 1) ... rank).contains(outputAxes[k]) else { return nil }
            }
            let perStep = scanBody.body.count + 2 * scanCount + 2 * outputCount
            guard length > 0, length <= budget, charge(length * perStep + outputCount) else { return nil }

            let steps = run(scanBody, length: length, states: Array(operands[..<stateCount]), scanned: scannedInputs,
                            axes: scannedInputs.indices.map { $0 < inputAxes.count ? inputAxes[$0] : 0 },
                            reversed: scannedInputs.indices.map { $0 < inputDirections.count && inputDirections[$0] == 1 })
            let stacked = steps.outputs.enumerated().map { k, parts in
                let reversed = k < outputDirections.count && outputDirections[k] == 1
                return stack(reversed ? parts.reversed() : parts, axis: k < outputAxes.count ? outputAxes[k] : 0)
            }
            return steps.states + stacked
        }

        /// Unrolls `inst` (a Scan-8: batch on axis 0 of every state and scanned input, time on
        /// axis 1) per batch element, or returns nil when it must stay.
        mutating func unrollScan8(_ inst: Instruction) -> [ValueID]? {
            guard let scanBody = RegionInlining.graph(inst, "body"), case .int(let scanCount)? = inst.attributes["num_scan_inputs"],
                  scanCount > 0, inst.operands.count >= 1 + scanCount else { return nil }
            let operands = inst.operands.dropFirst().compactMap { $0 }
            let stateCount = operands.count - scanCount
            guard operands.count == inst.operands.count - 1, scanBody.arguments.count == operands.count,
                  scanBody.outputs.count >= stateCount, let directions = ints(inst, "directions"),
                  let batch = sequenceLength(operands, axes: Array(repeating: 0, count: operands.count)),
                  let length = sequenceLength(Array(operands[stateCount...]), axes: Array(repeating: 1, count: scanCount))
            else { return nil }
            if let lengths = inst.operands[0] {
                guard let data = constants[lengths], !data.isElided, let values = data.integers(),
                      values.allSatisfy({ $0 == length }) else { return nil }
            }
            let outputCount = scanBody.outputs.count - stateCount
            let perStep = scanBody.body.count + 2 * scanCount + 2 * outputCount
            let perBatch = length * perStep + 2 * operands.count + outputCount
            guard batch > 0, length > 0, batch * length <= budget,
                  charge(batch * perBatch + 2 * (stateCount + outputCount)) else { return nil }

            var states: [[ValueID]] = Array(repeating: [], count: stateCount)
            var outputs: [[ValueID]] = Array(repeating: [], count: outputCount)
            for b in 0 ..< batch {
                let element = operands.map { slice($0, at: b, axis: 0) }
                let scannedInputs = Array(element[stateCount...])
                let steps = run(scanBody, length: length, states: Array(element[..<stateCount]), scanned: scannedInputs,
                                axes: Array(repeating: 0, count: scanCount),
                                reversed: scannedInputs.indices.map { $0 < directions.count && directions[$0] == 1 })
                for k in 0 ..< stateCount { states[k].append(steps.states[k]) }
                for k in 0 ..< outputCount { outputs[k].append(stack(steps.outputs[k], axis: 0)) }
            }
            return (states + outputs).map { stack($0, axis: 0) }
        }

        /// Runs `length` steps of a scan body: states threaded through, step `t` reading slice `t`
        /// (`length−1−t` where `reversed`) of each `scanned` input along its axis. Returns the final
        /// states and each scan output's per-step values.
        mutating func run(_ scanBody: Function, length: Int, states initial: [ValueID], scanned: [ValueID],
                          axes: [Int], reversed: [Bool]) -> (states: [ValueID], outputs: [[ValueID]]) {
            var states = initial
            var outputs: [[ValueID]] = Array(repeating: [], count: scanBody.outputs.count - initial.count)
            for t in 0 ..< length {
                var slices: [ValueID] = []
                for (k, x) in scanned.enumerated() { slices.append(slice(x, at: reversed[k] ? length - 1 - t : t, axis: axes[k])) }
                let values = copy(scanBody, arguments: states + slices, nameSuffix: "_iter\(t)")
                states = Array(values[..<initial.count])
                for k in outputs.indices { outputs[k].append(values[initial.count + k]) }
            }
            return (states, outputs)
        }

        /// Copies `region` with `arguments` bound, each copied instruction emitted (so loops in it
        /// are unrolled in turn); returns the values its outputs became.
        mutating func copy(_ region: Function, arguments: [ValueID], nameSuffix: String) -> [ValueID] {
            var copy = RegionInlining.Copy(region, arguments: arguments, nameSuffix: nameSuffix)
            for original in region.body { emit(copy.copy(original, into: &f, constants: &constants, rename: rename)) }
            return copy.outputs(rename: rename)
        }

        /// The common static size of `values` along their `axes` (negative axes count from the end),
        /// or nil when one is not static or they differ.
        func sequenceLength(_ values: [ValueID], axes: [Int]) -> Int? {
            var length: Int?
            for (k, v) in values.enumerated() {
                guard let dims = f.type(of: v).shape.dims else { return nil }
                var axis = k < axes.count ? axes[k] : 0
                if axis < 0 { axis += dims.count }
                guard axis >= 0, axis < dims.count, let size = dims[axis].value, length == nil || length == size else { return nil }
                length = size
            }
            return length
        }

        /// An INTS attribute (empty when absent; nil when it has another kind).
        func ints(_ inst: Instruction, _ name: String) -> [Int]? {
            switch inst.attributes[name] {
            case nil: return []
            case .ints(let v)?: return v
            default: return nil
            }
        }

        // MARK: Building instructions

        /// A `const` holding `t`.
        mutating func constant(_ t: Tensor) -> ValueID {
            let v = f.addValue(t.type)
            append(Instruction(op: .constant, opset: opset, operands: [], results: [v], attributes: ["value": .tensor(t.tensorData)]))
            constants[v] = t.tensorData
            return v
        }

        /// `x` at `index` along `axis`, the axis removed: Gather with a scalar index.
        mutating func slice(_ x: ValueID, at index: Int, axis: Int) -> ValueID {
            let i = constant(Tensor([Int64(index)], shape: []))
            return add("Gather", [x, i], ["axis": .int(axis)], like: x)
        }

        /// `parts` stacked along a new axis `axis`: Unsqueeze each, then Concat.
        mutating func stack(_ parts: [ValueID], axis: Int) -> ValueID {
            // Unsqueeze takes its axes as an operand from opset 13 on, as an attribute before.
            let axes = opset >= 13 ? constant(Tensor([Int64(axis)], shape: [1])) : nil
            let unsqueezed = parts.map { part -> ValueID in
                if let axes { return add("Unsqueeze", [part, axes], [:], like: part) }
                return add("Unsqueeze", [part], ["axes": .ints([axis])], like: part)
            }
            return unsqueezed.count == 1 ? unsqueezed[0] : add("Concat", unsqueezed, ["axis": .int(axis)], like: parts[0])
        }

        /// Appends a default-domain `type` instruction with one result, typed by shape inference (an
        /// unranked tensor of `like`'s dtype if inference cannot tell).
        mutating func add(_ type: String, _ operands: [ValueID], _ attributes: [String: Attribute], like: ValueID) -> ValueID {
            var inst = Instruction(op: OpName(type), opset: opset, operands: operands, results: [ValueID(-1)], attributes: attributes)
            let resultType = RegionInlining.inferredTypes(of: inst, in: f, constants: constants)?.first
                ?? TensorType(f.type(of: like).dtype, .unranked)
            inst.results = [f.addValue(resultType)]
            append(inst)
            return inst.results[0]
        }

        mutating func append(_ inst: Instruction) { body.append(inst) }
    }
}
