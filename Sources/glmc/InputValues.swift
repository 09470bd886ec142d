import Foundation
import GLMCCodegen
import GLMCIR
import GLMCInterpreter
import GLMCOps
import GLMCPasses

/// Shape-determining inputs: inputs whose values decide shapes (Slice bounds, Reshape and Expand
/// shapes, Pad amounts, TopK's k, OneHot's depth, Resize's scales, ...). A plan with static shapes can only be
/// built when those values are known, so — like TensorRT's shape-tensor inputs — their values are
/// bound at convert time: the input stays in the plan (and is checked at run time against the bound
/// value), but the compiler sees a constant.
enum InputValues {
    /// "NAME=FILE.npy" → (NAME, the tensor in FILE.npy).
    static func parse(_ spec: String) throws -> (name: String, value: Tensor) {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
            throw GLMCError("--input-value '\(spec)': expected NAME=FILE.npy")
        }
        return (String(spec[..<eq]), try NPY.read(path: String(spec[spec.index(after: eq)...])))
    }

    /// Whether inputs of `dtype` can be bound (the manifest records bound values as JSON numbers,
    /// and a runtime compares them).
    static func isBindable(_ dtype: DType) -> Bool { dtype.isInteger || dtype == .bool || dtype.isFloatingPoint }

    /// Whether `value` can be recorded (JSON has no NaN or infinity).
    static func isRecordable(_ value: Tensor) -> Bool { !value.dtype.isFloatingPoint || value.doubles.allSatisfy(\.isFinite) }

    /// The named inputs of `module.main`, checked to exist, to be bindable and to have the value's
    /// dtype; `what` names the option in messages.
    static func resolve(_ values: [(name: String, value: Tensor)], in f: Function, what: String) throws -> [ValueID: Tensor] {
        var resolved: [ValueID: Tensor] = [:]
        for (name, value) in values {
            guard let arg = f.arguments.first(where: { f.name(of: $0) == name }) else {
                let known = f.arguments.map { "'\(f.name(of: $0))'" }.joined(separator: ", ")
                throw GLMCError("\(what) \(name): the model has no input named '\(name)' (inputs: \(known))")
            }
            guard resolved[arg] == nil else { throw GLMCError("\(what) \(name): given twice") }
            let type = f.type(of: arg)
            guard isBindable(type.dtype) else {
                throw GLMCError("\(what) \(name): only integer, bool and floating-point inputs can be bound, and '\(name)' is \(type)")
            }
            guard isRecordable(value) else { throw GLMCError("\(what) \(name): the value holds NaN or infinity, which a plan cannot record") }
            guard value.dtype == type.dtype, type.shape.isCompatible(with: Shape(static: value.shape)) else {
                throw GLMCError("\(what) \(name): the value is \(value.type), but input '\(name)' is \(type)")
            }
            resolved[arg] = value
        }
        return resolved
    }

    /// Of the given input values, those of inputs that determine shapes (none when shape
    /// inference and folding prove every shape without them): binding all of them
    /// lets shape inference prove more shapes, and each one kept is needed for that (without it,
    /// some inferred type gets less precise). The model's declared intermediate and output types are
    /// ignored here, since a declared shape is no substitute for the value the kernels need.
    static func shapeDetermining(_ module: Module, values: [ValueID: Tensor]) throws -> [ValueID: Tensor] {
        let f = module.main
        // Shape-determining operands of ONNX ops (shapes, starts/ends, pads, axes, repeats, scales,
        // sizes, k, depth, split sizes, Range limits, ...) are scalars or vectors.
        var chosen = values.filter { v, value in
            let t = f.type(of: v)
            return isBindable(t.dtype) && t.shape.isStatic && (t.shape.dims?.count ?? 2) <= 1 && isRecordable(value)
        }
        guard !chosen.isEmpty else { return [:] }
        let deciding = controlDeciding(module, values: chosen)
        if let unbound = inferredTypes(module, binding: [:]), unbound.allSatisfy(\.shape.isStatic) { return deciding }
        guard let knowledge = inferredTypes(module, binding: chosen) else { return deciding }
        for arg in f.arguments where chosen[arg] != nil && deciding[arg] == nil {
            var without = chosen
            without[arg] = nil
            if inferredTypes(module, binding: without) == knowledge { chosen = without }
        }
        return chosen
    }

    /// Of `values`, those that decide control flow: the inputs read by an `If`'s condition or a
    /// `Loop`'s trip count or condition (in the main function) that folding turns into a constant
    /// once `values` are bound. Binding them lets inline-constant-if and unroll-loops replace the
    /// control flow by straight-line code, which is what a plan can run.
    static func controlDeciding(_ module: Module, values: [ValueID: Tensor]) -> [ValueID: Tensor] {
        let f = module.main
        var decisions: [ValueID] = []
        for inst in f.body where inst.op.domain.isEmpty || inst.op.domain == "ai.onnx" {
            switch inst.op.type {
            case "If": decisions += inst.operands.prefix(1).compactMap { $0 }
            case "Loop": decisions += inst.operands.prefix(2).compactMap { $0 }
            default: break
            }
        }
        guard !decisions.isEmpty else { return [:] }
        var m = module
        bind(values, in: &m)
        for _ in 0 ..< 2 {
            _ = try? FoldShapeComputations().run(on: &m, context: PassContext())
            _ = try? ConstantFold().run(on: &m, context: PassContext())
        }
        let folded = Set(m.main.body.filter { $0.constantValue != nil }.flatMap(\.results))
        // The inputs each constant decision reads, through the instructions (and captures) defining it.
        let defining = f.definingInstructions()
        var deciding: [ValueID: Tensor] = [:]
        var stack = decisions.filter { folded.contains($0) || values[$0] != nil }
        var seen = Set(stack)
        while let v = stack.popLast() {
            if let value = values[v] { deciding[v] = value }
            guard let i = defining[v] else { continue }
            let inst = f.body[i]
            for read in inst.operands.compactMap({ $0 }) + inst.nestedFunctions.flatMap({ $0.captures.map(\.outer) })
            where seen.insert(read).inserted {
                stack.append(read)
            }
        }
        return deciding
    }

    /// The result types of `module.main`'s instructions as shape inference alone infers them with
    /// `values` bound (declared types erased); nil where inference fails (e.g. an op that needs
    /// one of the values).
    static func inferredTypes(_ module: Module, binding values: [ValueID: Tensor]) -> [TensorType]? {
        var m = module
        let originalCount = m.main.values.count
        for inst in m.main.body where inst.constantValue == nil {
            for r in inst.results { m.main.values[r.index].type = TensorType(m.main.type(of: r).dtype, .unranked) }
        }
        // Ops whose output shapes follow their data's values, and control flow (whose result
        // shapes come from running it), do not count: their operands become values of unknown
        // type that nothing folds (binding their data would only make the whole model a constant
        // for one input).
        for i in m.main.body.indices {
            let inst = m.main.body[i]
            guard !inst.nestedFunctions.isEmpty || CPUPlanBuilder.isValueShaped(inst) else { continue }
            for k in m.main.body[i].operands.indices {
                guard let v = m.main.body[i].operands[k] else { continue }
                m.main.body[i].operands[k] = m.main.addValue(TensorType(m.main.type(of: v).dtype, .unranked))
            }
        }
        bind(values, in: &m)
        // Values computed from static shapes and from the bound values (a Cast, a Concat of shape
        // parts) count as known.
        for _ in 0 ..< 2 {
            guard (try? InputShapes.propagate(&m.main)) != nil else { return nil }
            _ = try? FoldShapeComputations().run(on: &m, context: PassContext())
            _ = try? ConstantFold().run(on: &m, context: PassContext())
        }
        guard (try? InputShapes.propagate(&m.main)) != nil else { return nil }
        return (0 ..< originalCount).map { m.main.values[$0].type }
    }

    /// Makes every reader of each bound input read a constant holding its value instead. The input
    /// stays an argument of the function (unread), so plans keep it and check it at run time.
    static func bind(_ values: [ValueID: Tensor], in module: inout Module) {
        let opset = module.opsets[""] ?? module.opsets["ai.onnx"] ?? OpRegistry.newestOpset
        var constants: [Instruction] = []
        for arg in module.main.arguments where values[arg] != nil {
            let value = values[arg]!
            let v = module.main.addValue(value.type, name: module.main.name(of: arg))
            module.main.replaceAllUses(of: arg, with: v)
            constants.append(Instruction(op: .constant, opset: opset, operands: [], results: [v],
                                         attributes: ["value": .tensor(value.tensorData)], nodeName: ""))
        }
        module.main.body.insert(contentsOf: constants, at: 0)
    }

    /// The bound values by input name, as the plan options take them.
    static func byName(_ values: [ValueID: Tensor], in f: Function) -> [String: TensorData] {
        Dictionary(uniqueKeysWithValues: values.map { (f.name(of: $0.key), $0.value.tensorData) })
    }
}
