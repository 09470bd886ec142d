import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan

/// String tensors in CPU plans (Docs/PlanFormat.md, "Strings"): a string element is an 8-byte
/// pointer in the arena, so string values get arena slots like any other tensor (of their own:
/// the memory planner leaves strings unplanned); the kernels are in `CPUKernelLibraryStrings`.
/// Lowered: Equal on strings, StringConcat, RegexFullMatch, StringNormalizer, StringSplit and
/// LabelEncoder with string keys or string values. GPU targets refuse string tensors.
///
/// StringSplit and StringNormalizer with stop words have output shapes that depend on the input
/// strings: their results are bounded like NonZero's (`CPUPlanBuilderValueShaped.swift`), and
/// StringSplit's without maxsplit, which have no static bound, heap-resident.
extension CPUPlanBuilder.Generator {
    /// Bytes of one element in the arena: a string is a pointer.
    static func elementBytes(_ dtype: DType) -> Int { dtype == .string ? 8 : dtype.byteSize }

    /// Whether `inst` reads or makes a string tensor.
    func touchesStrings(_ inst: Instruction) -> Bool {
        (inst.operands.compactMap { $0 } + inst.results).contains { f.type(of: $0).dtype == .string }
    }

    /// Lowers an instruction that reads or makes strings; false when it is a plain byte move
    /// (Identity, Reshape, ...) that the general lowering copies pointer by pointer.
    mutating func lowerStrings(_ inst: Instruction) throws -> Bool {
        guard target == .cpu else {
            throw unsupported(inst, "on string tensors (strings are supported by --target cpu only)")
        }
        switch (inst.op.domain, inst.op.type) {
        case ("", "Equal"), ("ai.onnx", "Equal"): try lowerStringBinary(inst, concat: false)
        case ("", "StringConcat"): try lowerStringBinary(inst, concat: true)
        case ("", "RegexFullMatch"): try lowerRegexFullMatch(inst)
        case ("", "StringNormalizer"): try lowerStringNormalizer(inst)
        case ("", "StringSplit"): try lowerStringSplit(inst)
        case ("ai.onnx.ml", "LabelEncoder"): try lowerLabelEncoder(inst)
        case ("", "Reshape"), ("", "Flatten"), ("", "Identity"), ("", "Squeeze"), ("", "Unsqueeze"):
            return false
        default: throw unsupported(inst, "on string tensors")
        }
        return true
    }

    /// The plan argument of a string operand: its arena slot, or for a string constant a slot that
    /// a step fills with heap copies of the constant's strings each run.
    mutating func stringArgument(_ v: ValueID, _ inst: Instruction) throws -> PlanArgument {
        if let b = bufferOf[v] { return .buffer(b) }
        guard let c = constants[v], case .strings(let strings) = c.contents else { return try argument(v, inst) }
        let bytes = strings.count * 8
        let id = addBuffer(offset: arenaBytes, bytes: bytes)
        arenaBytes = PlanLayout.align(arenaBytes + bytes)
        bufferOf[v] = id
        emitStringPrelude()
        let name = nextSymbol
        let values = strings.map { Array($0.utf8) }
        let code = "// \(name): the \(strings.count) strings of constant '\(f.name(of: v))'\n"
            + CPUKernelLibraryStrings.valueTables(name: name, values)
            + """
            void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
              for (long i = begin; i < end; ++i) {
                long k = i;
                \(CPUKernelLibraryStrings.storeValue(name: name, numericValueBytes: nil, output: 0, heap: 1))
              }
            }

            """
        addStep(kind: "string_constant", code: code, arguments: [.buffer(id), .stringHeap], range: strings.count, work: 16)
        return .buffer(id)
    }

    mutating func emitStringPrelude() {
        if !stringPreludeEmitted { source += "\n" + CPUKernelLibraryStrings.prelude; stringPreludeEmitted = true }
    }

    /// Equal on two string tensors or StringConcat, with broadcasting.
    mutating func lowerStringBinary(_ inst: Instruction, concat: Bool) throws {
        guard inst.operands.count == 2, let a = inst.operands[0], let b = inst.operands[1] else { throw unsupported(inst) }
        guard f.type(of: a).dtype == .string, f.type(of: b).dtype == .string else {
            throw unsupported(inst, "on \(f.type(of: a).dtype) and \(f.type(of: b).dtype) operands")
        }
        let out = try sizes(inst.results[0], inst)
        let render = Renderer(dialect: target.bodyDialect)
        let ia = render.index(try ElementwiseLowering.broadcastIndex(from: try sizes(a, inst), to: out), top: true)
        let ib = render.index(try ElementwiseLowering.broadcastIndex(from: try sizes(b, inst), to: out), top: true)
        var args = [try stringArgument(a, inst), try stringArgument(b, inst), .buffer(bufferOf[inst.results[0]]!)]
        emitStringPrelude()
        if concat {
            args.append(.stringHeap)
            addStep(kind: "string_concat", code: CPUKernelLibraryStrings.concat(name: nextSymbol, indexA: ia, indexB: ib),
                    arguments: args, range: out.reduce(1, *), work: 64)
        } else {
            addStep(kind: "string_equal", code: CPUKernelLibraryStrings.equal(name: nextSymbol, indexA: ia, indexB: ib),
                    arguments: args + [.stringHeap], range: out.reduce(1, *), work: 16)
        }
    }

    mutating func lowerRegexFullMatch(_ inst: Instruction) throws {
        guard let x = inst.operands.first ?? nil, case .string(let pattern)? = inst.attributes["pattern"] else { throw unsupported(inst) }
        let regex: RE2Regex
        do { regex = try RE2Regex(pattern) } catch let e as RE2Regex.SyntaxError { throw unsupported(inst, "with pattern '\(pattern)': \(e.message)") }
        let args = [try stringArgument(x, inst), .buffer(bufferOf[inst.results[0]]!)]
        emitStringPrelude()
        addStep(kind: "regex_full_match", code: CPUKernelLibraryStrings.regexFullMatch(name: nextSymbol, pattern: pattern, program: regex.program),
                arguments: args, range: try sizes(x, inst).reduce(1, *), work: 64 * regex.program.count)
    }

    /// StringNormalizer: stop words dropped (compared as the interpreter compares them), then the
    /// case change. Without stop words on a non-empty input the result has the input's shape and
    /// each element is done on its own; otherwise one sequential step compacts the kept strings (an
    /// empty result: one empty string) and writes their count into the extent slot.
    mutating func lowerStringNormalizer(_ inst: Instruction) throws {
        guard let x = inst.operands.first ?? nil else { throw unsupported(inst) }
        let count = try sizes(x, inst).reduce(1, *)
        if case .string(let locale)? = inst.attributes["locale"], ["tr", "az", "lt"].contains(where: { locale.lowercased().hasPrefix($0) }) {
            throw unsupported(inst, "with locale '\(locale)' (glmc changes case by Unicode's default rules)")
        }
        let upper: Bool?
        switch stringAttr(inst, "case_change_action", "NONE") {
        case "NONE": upper = nil
        case "LOWER": upper = false
        case "UPPER": upper = true
        case let other: throw unsupported(inst, "with case_change_action '\(other)'")
        }
        var stopWords: [String] = []
        if case .strings(let s)? = inst.attributes["stopwords"] { stopWords = s }
        let y = PlanArgument.buffer(bufferOf[inst.results[0]]!)
        let xArg = try stringArgument(x, inst)
        emitStringPrelude()
        if stopWords.isEmpty, count > 0 {
            addStep(kind: "string_normalizer", code: CPUKernelLibraryStrings.changeCase(name: nextSymbol, upper: upper),
                    arguments: [xArg, y, .stringHeap], range: count, work: 64)
            return
        }
        // The interpreter's keys: the stop words as they are or lowercased, compared by canonical
        // equivalence (so: the bytes of their NFC forms, one entry per form, sorted byte-wise).
        let caseSensitive = intAttr(inst, "is_case_sensitive", 0) != 0
        let keys = Set(stopWords.map { (caseSensitive ? $0 : $0.lowercased()).precomposedStringWithCanonicalMapping })
            .map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        let slot = extentSlot(inst.results[0]).map(PlanArgument.buffer)
        addStep(kind: "string_normalizer", code: CPUKernelLibraryStrings.normalizeWithStopWords(
                    name: nextSymbol, count: count, stopWords: keys, caseSensitive: caseSensitive, upper: upper, writesExtent: slot != nil),
                arguments: [xArg, y] + (slot.map { [$0] } ?? []) + [.stringHeap], range: 1, work: max(1, count) * 64)
    }

    /// StringSplit: one sequential step that splits every string once to count the parts (Z, and
    /// the widest into the extent slot), then again into Y, padded with one shared empty string.
    /// A heap-resident Y is allocated on the string heap between the two passes.
    mutating func lowerStringSplit(_ inst: Instruction) throws {
        guard let x = inst.operands.first ?? nil, inst.results.count == 2, let slot = extentSlot(inst.results[0]),
              let y = bufferOf[inst.results[0]], let z = bufferOf[inst.results[1]] else { throw unsupported(inst) }
        let count = try sizes(x, inst).reduce(1, *)
        let delimiter = stringAttr(inst, "delimiter", "")
        var maxSplit: Int?
        if case .int(let m)? = inst.attributes["maxsplit"], m >= 0 { maxSplit = m }
        let heapResident = bounded[inst.results[0]]?.heapResident ?? false
        let bound = heapResident ? nil : try sizes(inst.results[0], inst).last
        let args: [PlanArgument] = [try stringArgument(x, inst), .buffer(y), .buffer(z), .buffer(slot), .stringHeap]
        emitStringPrelude()
        addStep(kind: "string_split", code: CPUKernelLibraryStrings.split(name: nextSymbol, count: count, delimiter: Array(delimiter.utf8),
                                                                          maxSplit: maxSplit, bound: bound),
                arguments: args, range: 1, work: max(1, count) * 64)
    }

    /// LabelEncoder with string keys (any values) or integer keys and string values. The table is
    /// what the interpreter's LabelEncoder makes of each key (repeated keys: the last wins) and of
    /// one string or integer that is no key (the default), so the plan maps exactly as it does.
    mutating func lowerLabelEncoder(_ inst: Instruction) throws {
        guard let x = inst.operands.first ?? nil else { throw unsupported(inst) }
        let inputType = f.type(of: x).dtype, valueType = f.type(of: inst.results[0]).dtype
        let count = try sizes(x, inst).reduce(1, *)
        let probe: Tensor
        var stringKeys: [String] = [], integerKeys: [Int64] = []
        if inputType == .string {
            // One key per canonical form (NFC): the interpreter's keys compare by canonical equivalence.
            stringKeys = Array(Set(try labelStringKeys(inst).map(\.precomposedStringWithCanonicalMapping)))
            // Longer than every key and ASCII: equal to none, even canonically.
            let filler = String(repeating: "x", count: (stringKeys.map { $0.unicodeScalars.count }.max() ?? 0) + 1)
            probe = Tensor(shape: [stringKeys.count + 1], storage: .string(stringKeys + [filler]))
        } else if inputType.isInteger, valueType == .string {
            integerKeys = Array(Set(try labelIntegerKeys(inst)))
            var missing: Int64 = 0
            while integerKeys.contains(missing) { missing += 1 }
            probe = Tensor(doubles: (integerKeys + [missing]).map(Double.init), dtype: inputType, shape: [integerKeys.count + 1])
        } else {
            throw unsupported(inst, "from \(inputType) to \(valueType) (string tensors: string keys or string values)")
        }
        // The interpreter's mapping of the keys and the probe.
        var g = Function(name: "label_table")
        let key = g.addValue(TensorType(inputType, static: probe.shape)), value = g.addValue(TensorType(valueType, static: probe.shape))
        g.arguments = [key]
        g.body = [Instruction(op: inst.op, opset: inst.opset, operands: [key], results: [value], attributes: inst.attributes, nodeName: inst.nodeName)]
        g.outputs = [value]
        let mapped: Tensor
        do { mapped = try Interpreter.run(g, arguments: [probe], captured: [])[0] } catch {
            throw unsupported(inst, "whose table the interpreter refuses (\(error))")
        }
        emitStringPrelude()
        let name = nextSymbol
        let xArg = inputType == .string ? try stringArgument(x, inst) : try argument(x, inst)
        let y = PlanArgument.buffer(bufferOf[inst.results[0]]!)
        if inputType == .string {
            // Keys sorted byte-wise (the kernel's binary search); the default last.
            let order = stringKeys.indices.sorted { Array(stringKeys[$0].utf8).lexicographicallyPrecedes(Array(stringKeys[$1].utf8)) } + [stringKeys.count]
            let keys = order.dropLast().map { Array(stringKeys[$0].utf8) }
            if case .string(let values) = mapped.storage {
                let code = CPUKernelLibraryStrings.labelEncodeStrings(name: name, keys: keys, numericValueBytes: nil, stringValues: order.map { Array(values[$0].utf8) })
                addStep(kind: "label_encoder", code: code, arguments: [xArg, y, .stringHeap], range: count, work: 64)
            } else {
                let table = mapped.tensorData.bytes, size = Self.elementBytes(valueType)
                let ordered = order.flatMap { table[($0 * size) ..< (($0 + 1) * size)] }
                let weight = try self.weight(key: "label_values_\(steps.count)", name: "\(name)_values",
                                             TensorData(type: TensorType(valueType, static: [order.count]), elements: ordered), inst)
                let code = CPUKernelLibraryStrings.labelEncodeStrings(name: name, keys: keys, numericValueBytes: size, stringValues: [])
                addStep(kind: "label_encoder", code: code, arguments: [xArg, weight, y, .stringHeap], range: count, work: 64)
            }
        } else {
            guard case .string(let values) = mapped.storage else { throw unsupported(inst) }
            let cType = "\(inputType.isSignedInteger ? "" : "u")int\(inputType.byteSize * 8)_t"
            let order = integerKeys.indices.sorted { integerKeys[$0] < integerKeys[$1] } + [integerKeys.count]
            let code = CPUKernelLibraryStrings.labelEncodeIntegers(name: name, inputType: cType,
                                                                   keys: order.dropLast().map { integerKeys[$0] },
                                                                   stringValues: order.map { Array(values[$0].utf8) })
            addStep(kind: "label_encoder", code: code, arguments: [xArg, y, .stringHeap], range: count, work: 64)
        }
    }

    /// The string keys of a LabelEncoder (`keys_strings`, a string `keys_tensor`, or opset 1's
    /// `classes_strings`).
    func labelStringKeys(_ inst: Instruction) throws -> [String] {
        if inst.opset < 2, case .strings(let s)? = inst.attributes["classes_strings"] { return s }
        if case .strings(let s)? = inst.attributes["keys_strings"] { return s }
        if inst.opset >= 4, case .tensor(let t)? = inst.attributes["keys_tensor"], t.dtype == .string { return t.strings }
        throw unsupported(inst, "without string keys")
    }

    /// The integer keys of a LabelEncoder mapping integers to strings.
    func labelIntegerKeys(_ inst: Instruction) throws -> [Int64] {
        if inst.opset < 2, case .strings(let s)? = inst.attributes["classes_strings"] { return (0 ..< Int64(s.count)).map { $0 } }
        if case .ints(let v)? = inst.attributes["keys_int64s"] { return v.map(Int64.init) }
        if inst.opset >= 4, case .tensor(let t)? = inst.attributes["keys_tensor"], t.dtype.isInteger, let v = t.integers() { return v.map(Int64.init) }
        throw unsupported(inst, "without integer keys")
    }
}
