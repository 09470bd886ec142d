/// Structural checks every module must pass, whatever its ops: each value is defined exactly once
/// (as an argument, capture or result), every use comes after its definition, ids are in range, and
/// nested regions capture only values defined before the instruction that holds them.
/// Type checks against the op set are added by `GLMCOps.ModuleVerifier`.
public enum Verifier {
    public static func verifyStructure(_ module: Module) throws {
        try verify(module.main, outerDefined: nil)
    }

    /// `outerDefined`: values of the enclosing function visible at the instruction holding this region.
    static func verify(_ f: Function, outerDefined: Set<ValueID>?) throws {
        var defined = Set<ValueID>()
        func define(_ v: ValueID, _ what: String) throws {
            guard v.index >= 0 && v.index < f.values.count else {
                throw GLMCError("graph '\(f.name)': \(what) refers to value #\(v.index), which does not exist")
            }
            guard defined.insert(v).inserted else {
                throw GLMCError("graph '\(f.name)': value \(describe(v, in: f)) is defined more than once")
            }
        }
        for a in f.arguments { try define(a, "an argument") }
        for c in f.captures {
            guard let outer = outerDefined else { throw GLMCError("graph '\(f.name)': the main function cannot capture values") }
            guard outer.contains(c.outer) else {
                throw GLMCError("graph '\(f.name)': captures a value that is not defined before its use")
            }
            try define(c.inner, "a capture")
        }
        for inst in f.body {
            for case let v? in inst.operands where !defined.contains(v) {
                let what = v.index >= 0 && v.index < f.values.count ? describe(v, in: f) : "#\(v.index)"
                throw GLMCError("\(inst.displayName) in graph '\(f.name)' uses value \(what) before it is defined")
            }
            for body in inst.nestedFunctions { try verify(body, outerDefined: defined) }
            guard !inst.results.isEmpty else { throw GLMCError("\(inst.displayName) in graph '\(f.name)' has no results") }
            for r in inst.results { try define(r, inst.displayName) }
        }
        guard f.outputNames.count == f.outputs.count else {
            throw GLMCError("graph '\(f.name)': \(f.outputs.count) outputs but \(f.outputNames.count) output names")
        }
        for v in f.outputs where !defined.contains(v) {
            throw GLMCError("graph '\(f.name)': output value #\(v.index) is never defined")
        }
    }

    static func describe(_ v: ValueID, in f: Function) -> String {
        let name = f.name(of: v)
        return name.isEmpty ? "#\(v.index)" : "'\(name)'"
    }
}
