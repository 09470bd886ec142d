import GLMCIR

/// Converts a parsed TorchScript program by running its methods symbolically: each call of an aten
/// or prim op goes through `AtenLowering`, method calls on submodules are inlined, and values known
/// at convert time are computed on the spot. Nothing of the archive is executed.
final class CodeConverter {
    let builder: GraphBuilder
    let archive: TorchArchive
    let classes: [String: CodeClass]
    /// `CONSTANTS.c<n>` of frozen modules.
    let constants: [PickleValue]
    var constantCache: [Int: ValueID] = [:]
    var attributeCache: [String: ValueID] = [:]
    /// Unsupported ops met so far: op → first location.
    var unsupported: [(op: String, location: String)] = []
    var depth = 0

    init(builder: GraphBuilder, archive: TorchArchive, classes: [String: CodeClass], constants: [PickleValue]) {
        self.builder = builder
        self.archive = archive
        self.classes = classes
        self.constants = constants
    }

    func method(_ name: String, of object: ModuleObject, at location: String) throws -> CodeMethod {
        guard let cls = classes[object.className] else {
            throw GLMCError("\(location): no code for class \(object.className) (expected in \(archive.root)/code/)")
        }
        guard let m = cls.methods[name] else {
            throw GLMCError("\(location): class \(object.className) has no method '\(name)'")
        }
        return m
    }

    /// Runs `method` of `object` on `arguments` (not counting `self`).
    func call(_ method: CodeMethod, on object: ModuleObject, arguments: [TorchValue], className: String) throws -> TorchValue {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { throw GLMCError("\(method.location): methods call each other more than 64 deep") }
        let methodName = "\(className.split(separator: ".").last ?? "").\(method.name)"
        var env: [String: TorchValue] = [:]
        let formal = method.parameters.first == "self" ? Array(method.parameters.dropFirst()) : method.parameters
        guard formal.count == arguments.count else {
            throw GLMCError("\(method.location): \(methodName) takes \(formal.count) arguments, called with \(arguments.count)")
        }
        if method.parameters.first == "self" { env["self"] = .object(object) }
        for (name, value) in zip(formal, arguments) { env[name] = value }
        for statement in method.body {
            switch statement {
            case .assign(let targets, let expr, let loc):
                let value = try evaluate(expr, env: env, in: methodName)
                if targets.count == 1 {
                    env[targets[0]] = value
                } else {
                    if value.isUnsupported, value.items == nil { for t in targets { env[t] = .unsupported }; continue }
                    guard let items = value.items, items.count == targets.count else {
                        throw GLMCError("\(loc) in \(methodName): cannot unpack \(value.kindName) into \(targets.count) names")
                    }
                    for (t, v) in zip(targets, items) { env[t] = v }
                }
            case .expression(let expr, _):
                _ = try evaluate(expr, env: env, in: methodName)
            case .return(let expr, _):
                return try evaluate(expr, env: env, in: methodName)
            case .unsupported(let keyword, let loc):
                throw GLMCError("\(loc) in \(methodName): unsupported: '\(keyword)' statement; control flow that depends on data cannot be converted (trace the model, or freeze it so its branches are resolved)")
            }
        }
        return .none
    }

    func evaluate(_ e: CodeExpr, env: [String: TorchValue], in methodName: String) throws -> TorchValue {
        switch e {
        case .int(let v): return .int(v)
        case .float(let v): return .float(v)
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .none: return .none
        case .list(let items): return .list(try items.map { try evaluate($0, env: env, in: methodName) })
        case .tuple(let items): return .tuple(try items.map { try evaluate($0, env: env, in: methodName) })
        case .name(let n, let loc):
            guard let v = env[n] else { throw GLMCError("\(loc) in \(methodName): '\(n)' is not defined") }
            return v
        case .attribute(let base, let name, let loc):
            if case .name("CONSTANTS", _) = base { return try constant(name, at: "\(loc)") }
            let object = try evaluate(base, env: env, in: methodName)
            guard case .object(let o) = object else {
                if object.isUnsupported { return .unsupported }
                throw GLMCError("\(loc) in \(methodName): attribute '\(name)' of a \(object.kindName) (only module attributes are read)")
            }
            return try attribute(name, of: o, at: "\(loc)")
        case .index(let base, let index, let loc):
            let container = try evaluate(base, env: env, in: methodName)
            let i = try evaluate(index, env: env, in: methodName)
            return try lower("aten::__getitem__", CallArguments(positional: [container, i]), at: "\(loc)", in: methodName)
        case .unary(let op, let operand, let loc):
            let v = try evaluate(operand, env: env, in: methodName)
            switch op {
            case "-": return try lower("aten::neg", CallArguments(positional: [v]), at: "\(loc)", in: methodName, numbers: { x in
                if case .int(let a) = x { return .int(-a) }
                if case .float(let a) = x { return .float(-a) }
                return nil
            })
            case "not":
                guard case .bool(let b) = v else { throw GLMCError("\(loc) in \(methodName): 'not' of a \(v.kindName)") }
                return .bool(!b)
            default: return try lower("aten::bitwise_not", CallArguments(positional: [v]), at: "\(loc)", in: methodName)
            }
        case .binary(let op, let l, let r, let loc):
            let names = ["+": "aten::add", "-": "aten::sub", "*": "aten::mul", "/": "aten::div", "//": "aten::floordiv",
                         "%": "aten::remainder", "**": "aten::pow", "==": "aten::eq", "!=": "aten::ne", "<": "aten::lt",
                         "<=": "aten::le", ">": "aten::gt", ">=": "aten::ge", "&": "aten::__and__", "|": "aten::__or__", "^": "aten::__xor__"]
            guard let aten = names[op] else { throw GLMCError("\(loc) in \(methodName): operator '\(op)' is not supported") }
            let args = CallArguments(positional: [try evaluate(l, env: env, in: methodName), try evaluate(r, env: env, in: methodName)])
            return try lower(aten, args, at: "\(loc)", in: methodName)
        case .call(let callee, let positional, let keywords, let loc):
            return try evaluateCall(callee, positional, keywords, env: env, at: loc, in: methodName)
        }
    }

    func evaluateCall(_ callee: CodeExpr, _ positionalExprs: [CodeExpr], _ keywordExprs: [(String, CodeExpr)],
                      env: [String: TorchValue], at loc: SourceLocation, in methodName: String) throws -> TorchValue {
        // `annotate(T, v)` and `uninitialized(T)` carry types only: the type is never evaluated.
        if case .name("annotate", _) = callee, positionalExprs.count == 2 { return try evaluate(positionalExprs[1], env: env, in: methodName) }
        if case .name("uninitialized", _) = callee { return .none }
        let positional = try positionalExprs.map { try evaluate($0, env: env, in: methodName) }
        var keywords: [String: TorchValue] = [:]
        for (k, e) in keywordExprs { keywords[k] = try evaluate(e, env: env, in: methodName) }
        let args = CallArguments(positional: positional, keywords: keywords)

        // Method calls on submodules: `(conv1).forward(x, )`.
        if case .attribute(let base, let name, _) = callee, base.dottedName.map({ env[$0.split(separator: ".").first.map(String.init) ?? ""] != nil }) ?? true {
            let receiver = try evaluate(base, env: env, in: methodName)
            if receiver.isUnsupported { return .unsupported }
            // Tensor methods (`x.size(1)`) are the aten op with the tensor first.
            if case .tensor = receiver {
                return try lower("aten::" + name, CallArguments(positional: [receiver] + positional, keywords: keywords), at: "\(loc)", in: methodName)
            }
            guard case .object(let object) = receiver else {
                throw GLMCError("\(loc) in \(methodName): method '\(name)' called on a \(receiver.kindName)")
            }
            guard keywords.isEmpty else { throw GLMCError("\(loc) in \(methodName): keyword arguments to module methods are not supported") }
            let m = try method(name, of: object, at: "\(loc)")
            return try call(m, on: object, arguments: positional, className: object.className)
        }
        guard let dotted = callee.dottedName else { throw GLMCError("\(loc) in \(methodName): this call is not supported") }
        switch dotted {
        case "int": return try lower("aten::Int", args, at: "\(loc)", in: methodName)
        case "float": return try lower("aten::Float", args, at: "\(loc)", in: methodName)
        case "bool":
            guard let v = positional.first else { return .bool(false) }
            if case .bool = v { return v }
            return .bool(try AtenLowering(b: builder, op: "aten::Bool", args: args).toInt(v, "a") != 0)
        case "len": return try lower("aten::len", args, at: "\(loc)", in: methodName)
        case "getattr":
            // `getattr(layers, "0")`: a ModuleList's submodules have names that are not identifiers.
            guard positional.count == 2, case .object(let object) = positional[0], case .string(let name) = positional[1] else {
                throw GLMCError("\(loc) in \(methodName): getattr takes a module and a string")
            }
            return try attribute(name, of: object, at: "\(loc)")
        case "torch.device": return .device((positional.first.flatMap { if case .string(let s) = $0 { return s } else { return nil } }) ?? "cpu")
        default: break
        }
        let parts = dotted.split(separator: ".").map(String.init)
        let op: String
        if parts.count == 2, parts[0] == "torch" { op = "aten::" + parts[1] }
        else if parts.count == 3, parts[0] == "ops", ["aten", "prim"].contains(parts[1]) { op = parts[1] + "::" + parts[2] }
        else if parts.count == 3, parts[0] == "torch", parts[1] == "_C" || parts[1] == "nn" || parts[1] == "functional" { op = "aten::" + parts[2] }
        else { throw GLMCError("\(loc) in \(methodName): call of '\(dotted)' is not supported") }
        return try lower(op, args, at: "\(loc)", in: methodName)
    }

    /// One op through the lowering table; unsupported ops are recorded and yield `.unsupported`.
    func lower(_ op: String, _ args: CallArguments, at location: String, in methodName: String,
               numbers: ((TorchValue) -> TorchValue?)? = nil) throws -> TorchValue {
        if let numbers, args.positional.count == 1, let v = numbers(args.positional[0]) { return v }
        builder.location = "\(location) in \(methodName)"
        if args.positional.contains(where: { $0.isUnsupported }) || args.keywords.values.contains(where: { $0.isUnsupported }) {
            // Downstream of an unsupported op: only look for more unsupported ops.
            if AtenLowering(b: builder, op: op, args: args).isOutsideTheTable, !unsupported.contains(where: { $0.op == op }) {
                unsupported.append((op, builder.location))
            }
            return .unsupported
        }
        guard let results = try AtenLowering(b: builder, op: op, args: args).lower() else {
            if !unsupported.contains(where: { $0.op == op }) { unsupported.append((op, builder.location)) }
            return .unsupported
        }
        return results.count == 1 ? results[0] : .tuple(results)
    }

    func constant(_ name: String, at location: String) throws -> TorchValue {
        guard name.hasPrefix("c"), let k = Int(name.dropFirst()), k >= 0, k < constants.count else {
            throw GLMCError("\(location): CONSTANTS.\(name) does not exist (the archive has \(constants.count) constants)")
        }
        if let id = constantCache[k] { return .tensor(id) }
        let value = try TorchScriptImporter.value(constants[k], archive: archive, folder: "constants", path: "CONSTANTS.\(name)", builder: builder)
        if case .tensor(let id) = value { constantCache[k] = id }
        return value
    }

    func attribute(_ name: String, of object: ModuleObject, at location: String) throws -> TorchValue {
        guard let v = object.attribute(name) else {
            throw GLMCError("\(location): module \(object.className) has no attribute '\(name)'")
        }
        let path = object.path.isEmpty ? name : object.path + "." + name
        if let id = attributeCache[path] { return .tensor(id) }
        let value = try TorchScriptImporter.value(v, archive: archive, folder: "data", path: path, builder: builder)
        if case .tensor(let id) = value { attributeCache[path] = id }
        return value
    }
}
