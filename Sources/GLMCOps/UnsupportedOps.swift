import GLMCIR

/// An op a module uses that glmc cannot run, with where it appears.
public struct UnsupportedOp: Sendable, Equatable {
    public var op: OpName
    public var opset: Int
    public var count: Int
    /// The first few node names (at most five).
    public var nodeNames: [String]
    public var reason: String
}

/// What a front end produces: the module, plus every unsupported op it uses (empty unless allowed).
public struct ImportResult: Sendable {
    public var module: Module
    public var unsupported: [UnsupportedOp]

    /// Lists the module's unsupported ops; unless `allowUnsupported`, any at all is an error naming
    /// every one of them.
    public init(checking module: Module, allowUnsupported: Bool) throws {
        self.module = module
        self.unsupported = OpRegistry.unsupportedOps(in: module)
        if !allowUnsupported, !unsupported.isEmpty {
            let list = unsupported.map { "\($0.op) (\($0.reason); first at node '\($0.nodeNames.first ?? "")')" }
            throw GLMCError("unsupported op\(list.count > 1 ? "s" : ""): " + list.joined(separator: ", "))
        }
    }
}

extension OpRegistry {
    /// Every op in `module` (nested regions included) that has no definition, or none at its
    /// opset version, in order of first appearance.
    public static func unsupportedOps(in module: Module) -> [UnsupportedOp] {
        var found: [OpName: UnsupportedOp] = [:]
        var order: [OpName] = []
        func scan(_ f: Function) {
            for inst in f.body {
                inst.nestedFunctions.forEach(scan)
                if inst.op == .constant { continue }
                let reason: String
                if let d = definition(of: inst.op) {
                    if d.schemaVersion(forOpset: inst.opset) != nil { continue }
                    reason = "not defined at opset \(inst.opset)"
                } else {
                    reason = inst.op.domain.isEmpty ? "not implemented" : "domain '\(inst.op.domain)' is not supported"
                }
                if var u = found[inst.op] {
                    u.count += 1
                    if u.nodeNames.count < 5 { u.nodeNames.append(inst.nodeName) }
                    found[inst.op] = u
                } else {
                    found[inst.op] = UnsupportedOp(op: inst.op, opset: inst.opset, count: 1, nodeNames: [inst.nodeName], reason: reason)
                    order.append(inst.op)
                }
            }
        }
        scan(module.main)
        return order.compactMap { found[$0] }
    }
}
