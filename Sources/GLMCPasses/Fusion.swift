import GLMCIR
import GLMCOps

/// Turns a group of instructions into one `glmc.Fused` instruction whose body is the group, shared
/// by every fusion pass so fusion groups look the same whoever made them.
///
/// The body's arguments are the values the group reads from outside (in order of first use); its
/// outputs are the group's values that are read outside it (or returned). The fused instruction keeps
/// those outer value ids, so no use needs rewriting, and the body is then sorted back into place.
public enum Fusion {
    /// Fuses the instructions at `indices` of `f` into one `glmc.Fused {kind, body}` and returns the
    /// new instruction's index. The group must be convex (see `isConvex`); `module.opsets` gains the
    /// `glmc` domain.
    @discardableResult
    public static func fuse(_ indices: [Int], in module: inout Module, function f: inout Function, kind: String) -> Int {
        module.opsets[FusedOps.domain] = FusedOps.version
        let group = indices.sorted()
        let members = Set(group)
        let producedInside = Set(group.flatMap { f.body[$0].results })
        let uses = f.users()
        let outputSet = Set(f.outputs)

        // The group is named after its first computing member (constants pulled into it come first).
        let first = group.first { f.body[$0].op != .constant } ?? group[0]
        var body = Function(name: "\(kind)_\(f.body[first].nodeName.isEmpty ? String(first) : f.body[first].nodeName)")
        var inner: [ValueID: ValueID] = [:]
        var operands: [ValueID] = []
        for i in group {
            for case let v? in f.body[i].operands where !producedInside.contains(v) && inner[v] == nil {
                let a = body.addValue(f.type(of: v), name: f.name(of: v))
                body.arguments.append(a)
                inner[v] = a
                operands.append(v)
            }
        }
        var results: [ValueID] = []
        for i in group {
            var inst = f.body[i]
            inst.operands = inst.operands.map { $0.map { inner[$0]! } }
            inst.results = inst.results.map { r in
                let n = body.addValue(f.type(of: r), name: f.name(of: r))
                inner[r] = n
                let usedOutside = (uses[r] ?? []).contains { !members.contains($0) } || outputSet.contains(r)
                if usedOutside {
                    body.outputs.append(n)
                    body.outputNames.append(f.name(of: r))
                    results.append(r)
                }
                return n
            }
            body.body.append(inst)
        }
        let anchor = f.body[first]
        let fused = Instruction(op: FusedOps.fused, opset: FusedOps.version, operands: operands, results: results,
                                attributes: ["kind": .string(kind), "body": .graph(body)], nodeName: anchor.nodeName)
        let last = group.last!
        f.body[last] = fused
        f.removeInstructions(at: members.subtracting([last]))
        f.sortTopologically()
        return f.body.firstIndex { $0.results == results && $0.op == FusedOps.fused } ?? 0
    }

    /// The body of the `glmc.Fused` instruction `inst`, rewritten to live in `f`: arguments become
    /// the instruction's operands, outputs its results, every other value a fresh value of `f`.
    /// Nil when the body cannot be flattened that simply (captures, an omitted operand, an output
    /// that is an argument or returned twice, a member region that captures values).
    public static func flattenedBody(of inst: Instruction, into f: inout Function) -> [Instruction]? {
        guard inst.op == FusedOps.fused, case .graph(let body)? = inst.attributes["body"],
              body.captures.isEmpty, body.arguments.count == inst.operands.count, inst.operands.allSatisfy({ $0 != nil }),
              body.outputs.count == inst.results.count, Set(body.outputs).count == body.outputs.count,
              Set(body.outputs).isDisjoint(with: body.arguments),
              body.body.allSatisfy({ $0.nestedFunctions.allSatisfy { $0.captures.isEmpty } }) else { return nil }
        var rename: [ValueID: ValueID] = [:]
        for (a, operand) in zip(body.arguments, inst.operands) { rename[a] = operand! }
        for (o, r) in zip(body.outputs, inst.results) { rename[o] = r }
        return body.body.map { original in
            var member = original
            member.operands = member.operands.map { $0.map { rename[$0]! } }
            member.results = member.results.map { r in
                if let outer = rename[r] { return outer }
                let fresh = f.addValue(body.type(of: r), name: body.name(of: r))
                rename[r] = fresh
                return fresh
            }
            return member
        }
    }

    /// True when no path leaves the group and comes back into it: fusing it cannot create a cycle.
    public static func isConvex(_ indices: [Int], in f: Function) -> Bool {
        let members = Set(indices)
        let uses = f.users()
        // Instructions outside the group that (transitively) read a group result.
        var reached = Set<Int>()
        var stack: [Int] = []
        for i in indices { for r in f.body[i].results { for u in uses[r] ?? [] where !members.contains(u) { stack.append(u) } } }
        while let i = stack.popLast() {
            guard reached.insert(i).inserted else { continue }
            for r in f.body[i].results { for u in uses[r] ?? [] where !members.contains(u) { stack.append(u) } }
            if members.contains(i) { return false }
            for r in f.body[i].results { for u in uses[r] ?? [] where members.contains(u) { return false } }
        }
        return true
    }
}

extension Function {
    /// Reorders the body so every value is defined before use, keeping the current order wherever
    /// it is already valid (a stable topological sort).
    public mutating func sortTopologically() {
        let defining = definingInstructions()
        var pending = [Int](repeating: 0, count: body.count)
        var users = [[Int]](repeating: [], count: body.count)
        var sorted = true
        for (i, inst) in body.enumerated() {
            var deps = Set<Int>()
            for case let v? in inst.operands { if let d = defining[v], d != i { deps.insert(d) } }
            for nested in inst.nestedFunctions { for c in nested.captures { if let d = defining[c.outer], d != i { deps.insert(d) } } }
            if deps.contains(where: { $0 > i }) { sorted = false }
            pending[i] = deps.count
            for d in deps { users[d].append(i) }
        }
        if sorted { return }
        var ready = MinHeap()
        for i in 0 ..< body.count where pending[i] == 0 { ready.push(i) }
        var order: [Int] = []
        order.reserveCapacity(body.count)
        while let i = ready.pop() {
            order.append(i)
            for u in users[i] {
                pending[u] -= 1
                if pending[u] == 0 { ready.push(u) }
            }
        }
        guard order.count == body.count else { return } // a cycle: leave it for the verifier to report
        body = order.map { body[$0] }
    }
}
