/// Small editing helpers that passes share: use counts, use replacement, instruction removal.
extension Function {
    /// How often each value is read (indexed by `ValueID.index`): as an operand, as a capture of a
    /// nested region, or as a function output.
    public func useCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: values.count)
        for inst in body {
            for case let v? in inst.operands { counts[v.index] += 1 }
            for nested in inst.nestedFunctions { for c in nested.captures { counts[c.outer.index] += 1 } }
        }
        for v in outputs { counts[v.index] += 1 }
        return counts
    }

    /// The instructions reading each value, by body index (a value read twice by one instruction
    /// is listed twice).
    public func users() -> [ValueID: [Int]] {
        var map: [ValueID: [Int]] = [:]
        for (i, inst) in body.enumerated() {
            for case let v? in inst.operands { map[v, default: []].append(i) }
            for nested in inst.nestedFunctions { for c in nested.captures { map[c.outer, default: []].append(i) } }
        }
        return map
    }

    /// Makes every reader of `old` read `new` instead: operands, captures of nested regions and
    /// outputs (whose source names stay as they were).
    public mutating func replaceAllUses(of old: ValueID, with new: ValueID) {
        guard old != new else { return }
        for i in body.indices {
            for k in body[i].operands.indices where body[i].operands[k] == old { body[i].operands[k] = new }
            for key in body[i].attributes.keys {
                switch body[i].attributes[key]! {
                case .graph(var g):
                    if g.replaceCapturedOuter(old, with: new) { body[i].attributes[key] = .graph(g) }
                case .graphs(var gs):
                    var changed = false
                    for j in gs.indices where gs[j].replaceCapturedOuter(old, with: new) { changed = true }
                    if changed { body[i].attributes[key] = .graphs(gs) }
                default: break
                }
            }
        }
        for k in outputs.indices where outputs[k] == old { outputs[k] = new }
    }

    private mutating func replaceCapturedOuter(_ old: ValueID, with new: ValueID) -> Bool {
        var changed = false
        for k in captures.indices where captures[k].outer == old { captures[k].outer = new; changed = true }
        return changed
    }

    /// Removes the instructions at `indices` (their results must be unused).
    public mutating func removeInstructions(at indices: Set<Int>) {
        guard !indices.isEmpty else { return }
        body = body.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
    }
}
