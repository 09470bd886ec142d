#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// Ops of the `ai.onnx.ml` domain (its own opset versions): LabelEncoder, Binarizer,
/// ArrayFeatureExtractor and TreeEnsemble.
extension MiscOps {
    static let mlDomain = "ai.onnx.ml"
    static let mlOps: [OpDefinition] = [labelEncoder, binarizer, arrayFeatureExtractor, treeEnsemble]
}

// MARK: - LabelEncoder

extension MiscOps {
    /// A look-up key: integers exactly, floats by value with every NaN one key and −0 = +0.
    enum LabelKey: Hashable {
        case int(Int64), float(UInt64), string(String)
    }

    static func labelKeys(_ t: Tensor) -> [LabelKey] {
        switch t.storage {
        case .string(let a): return a.map { .string($0) }
        case .f64, .f32, .f16, .bf16:
            return t.doubles.map { d in .float(d.isNaN ? Double.nan.bitPattern : (d == 0 ? 0 : d.bitPattern)) }
        default: return t.int64s.map { .int($0) }
        }
    }

    /// LabelEncoder's table: parallel keys and values, and the value of keys not in the table.
    struct LabelTable {
        var keys: Tensor
        var values: Tensor
        var fallback: Tensor
    }

    /// Reads the table from the attributes. Opset 1 maps strings to their index in
    /// `classes_strings` or back; later versions have `keys_*` / `values_*` lists (and tensors
    /// from opset 4) with `default_*` values.
    static func labelTable(_ ctx: some NodeContext, inputType: DType) throws -> LabelTable {
        if ctx.opset < 2 {
            let classes = try ctx.strings("classes_strings") ?? []
            let indices = Tensor((0 ..< Int64(classes.count)).map { $0 }, shape: [classes.count])
            let names = Tensor(shape: [classes.count], storage: .string(classes))
            let defaultInt = Tensor([Int64(try ctx.int("default_int64", default: -1))], shape: [1])
            let defaultString = Tensor(shape: [1], storage: .string([try ctx.string("default_string", default: "_Unused")]))
            return inputType == .string
                ? LabelTable(keys: names, values: indices, fallback: defaultInt)
                : LabelTable(keys: indices, values: names, fallback: defaultString)
        }
        func list(_ kind: String) throws -> Tensor? {
            if let s = try ctx.strings("\(kind)_strings") { return Tensor(shape: [s.count], storage: .string(s)) }
            if let i = try ctx.ints("\(kind)_int64s") { return Tensor(i.map(Int64.init), shape: [i.count]) }
            if let f = try ctx.floats("\(kind)_floats") { return Tensor(f, shape: [f.count]) }
            if ctx.opset >= 4, let t = try ctx.tensor("\(kind)_tensor") { let v = try Tensor(t); return v.reshaped([v.count]) }
            return nil
        }
        guard let keys = try list("keys"), let values = try list("values") else {
            throw ctx.error("needs one keys_* and one values_* attribute")
        }
        guard keys.count == values.count else {
            throw ctx.error("has \(keys.count) keys but \(values.count) values")
        }
        let fallback: Tensor
        if ctx.has("values_tensor"), let t = try ctx.tensor("default_tensor") {
            fallback = try Tensor(t)
            guard fallback.count == 1, fallback.dtype == values.dtype else {
                throw ctx.error("default_tensor must hold one \(values.dtype), got \(fallback.type)")
            }
        } else {
            switch values.dtype {
            case .string: fallback = Tensor(shape: [1], storage: .string([try ctx.string("default_string", default: "_Unused")]))
            case .f32 where !ctx.has("values_tensor"): fallback = Tensor([try ctx.float("default_float", default: -0.0)], shape: [1])
            case .i64 where !ctx.has("values_tensor"): fallback = Tensor([Int64(try ctx.int("default_int64", default: -1))], shape: [1])
            // values_tensor without default_tensor: ONNX's defaults per kind.
            case let d where d.isFloatingPoint: fallback = Tensor(doubles: [-0.0], dtype: d, shape: [1])
            case let d: fallback = Tensor(doubles: [-1], dtype: d, shape: [1])
            }
        }
        return LabelTable(keys: keys, values: values, fallback: fallback)
    }

    static func labelKind(_ d: DType) -> Int { d == .string ? 0 : (d.isFloatingPoint ? 1 : 2) }

    static let labelEncoder = OpDefinition("LabelEncoder", domain: mlDomain, since: [1, 2, 4], infer: { ctx in
        let x = try ctx.requiredInput(0)
        let table = try labelTable(ctx, inputType: x.dtype)
        guard labelKind(table.keys.dtype) == labelKind(x.dtype) else {
            throw ctx.error("input is \(x.dtype) but the keys are \(table.keys.dtype)")
        }
        return [TensorType(table.values.dtype, x.shape)]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        let table = try labelTable(ctx, inputType: x.dtype)
        guard labelKind(table.keys.dtype) == labelKind(x.dtype) else {
            throw ctx.error("input is \(x.dtype) but the keys are \(table.keys.dtype)")
        }
        // A repeated key: the last one wins.
        var position: [LabelKey: Int] = [:]
        for (i, k) in labelKeys(table.keys).enumerated() { position[k] = i }
        let fallbackIndex = table.values.count
        let indices = labelKeys(x).map { position[$0] ?? fallbackIndex }
        guard let pool = TensorStorage.concatenating([table.values.storage, table.fallback.storage], dtype: table.values.dtype) else {
            throw ctx.error("the default value's type differs from the values'")
        }
        return [Tensor(shape: x.shape, storage: pool.picking(indices))]
    })
}

// MARK: - Binarizer, ArrayFeatureExtractor

extension MiscOps {
    static let binarizer = OpDefinition("Binarizer", domain: mlDomain, since: [1], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: [.f32, .f64, .i64, .i32], ctx)
        return [x]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        try require(x.dtype, in: [.f32, .f64, .i64, .i32], ctx)
        let threshold = Double(try ctx.float("threshold", default: 0))
        return [Tensor(doubles: x.doubles.map { $0 > threshold ? 1 : 0 }, dtype: x.dtype, shape: x.shape)]
    })

    static let featureTypes: Set<DType> = [.f32, .f64, .i64, .i32, .string]

    /// Selects, along X's last axis, the elements at Y's (flattened) indices. A 1-D X gives a
    /// [1, k] result, as in ONNX Runtime.
    static let arrayFeatureExtractor = OpDefinition("ArrayFeatureExtractor", domain: mlDomain, since: [1], infer: { ctx in
        let x = try ctx.requiredInput(0), y = try ctx.requiredInput(1)
        try require(x.dtype, in: featureTypes, ctx)
        try require(y.dtype, in: [.i64], ctx, "indices")
        guard let d = x.shape.dims, !d.isEmpty else { return [TensorType(x.dtype, .unranked)] }
        let k = size(y.shape.staticSizes.flatMap(checkedElementCount))
        return [TensorType(x.dtype, Shape(d.count == 1 ? [.known(1), k] : d.dropLast() + [k]))]
    }, evaluate: { ctx in
        let x = try ctx.operand(0), y = try ctx.operand(1)
        try require(x.dtype, in: featureTypes, ctx)
        try require(y.dtype, in: [.i64], ctx, "indices")
        guard let last = x.shape.last else { throw ctx.error("X must have rank ≥ 1") }
        let selected = try y.int64s.map { i -> Int in
            guard i >= 0, i < last else { throw ctx.error("index \(i) is out of range for a last axis of \(last)") }
            return Int(i)
        }
        let rows = x.count / max(last, 1)
        var picks: [Int] = []
        picks.reserveCapacity(try resultCount([rows, selected.count], ctx))
        for r in 0 ..< rows { for i in selected { picks.append(r * last + i) } }
        let shape = x.rank == 1 ? [1, selected.count] : x.shape.dropLast() + [selected.count]
        return [Tensor(shape: shape, storage: x.storage.picking(picks))]
    })
}

// MARK: - TreeEnsemble

extension MiscOps {
    /// The trees of a TreeEnsemble node, decoded from its attributes (public: the plan builder
    /// bakes the same decoded trees into its kernel).
    public struct TreeEnsembleModel: Sendable {
        public enum Mode: Int, Sendable { case leq = 0, lt, gte, gt, eq, neq, member }
        public var modes: [Mode]
        public var features: [Int]
        public var splits: [Double]
        public var trueIds: [Int], falseIds: [Int]
        public var trueLeaf: [Bool], falseLeaf: [Bool]
        public var missingTracksTrue: [Bool]
        /// For BRANCH_MEMBER nodes, their set (indexed by node).
        public var members: [Int: Set<Double>]
        public var leafWeights: [Double], leafTargets: [Int]
        public var roots: [Int]
        public var targets: Int
        public var aggregate: Int
        public var postTransform: Int

        public init(_ ctx: some NodeContext) throws {
            func ints(_ name: String) throws -> [Int] {
                guard let v = try ctx.ints(name) else { throw ctx.error("missing attribute '\(name)'") }
                return v
            }
            func doubles(_ name: String, required: Bool = true) throws -> [Double]? {
                if let t = try ctx.tensor(name) { return try Tensor(t).doubles }
                if let f = try ctx.floats(name) { return f.map(Double.init) }
                if required { throw ctx.error("missing attribute '\(name)'") }
                return nil
            }
            guard let modeData = try ctx.tensor("nodes_modes") else { throw ctx.error("missing attribute 'nodes_modes'") }
            modes = try Tensor(modeData).int64s.map { m in
                guard let mode = Mode(rawValue: Int(m)) else { throw ctx.error("unknown node mode \(m)") }
                return mode
            }
            features = try ints("nodes_featureids")
            splits = try doubles("nodes_splits") ?? []
            trueIds = try ints("nodes_truenodeids"); falseIds = try ints("nodes_falsenodeids")
            trueLeaf = try ints("nodes_trueleafs").map { $0 != 0 }; falseLeaf = try ints("nodes_falseleafs").map { $0 != 0 }
            missingTracksTrue = (try ctx.ints("nodes_missing_value_tracks_true") ?? []).map { $0 != 0 }
            leafWeights = try doubles("leaf_weights") ?? []
            leafTargets = try ints("leaf_targetids")
            roots = try ints("tree_roots")
            targets = try ctx.int("n_targets") ?? ((leafTargets.max() ?? -1) + 1)
            guard targets >= 0 else { throw ctx.error("n_targets must not be negative") }
            aggregate = try ctx.int("aggregate_function", default: 1)
            postTransform = try ctx.int("post_transform", default: 0)
            members = [:]
            let nodes = modes.count
            guard [features.count, splits.count, trueIds.count, falseIds.count, trueLeaf.count, falseLeaf.count].allSatisfy({ $0 == nodes }),
                  missingTracksTrue.isEmpty || missingTracksTrue.count == nodes else {
                throw ctx.error("the nodes_* attributes must all have \(nodes) entries")
            }
            guard leafWeights.count == leafTargets.count, leafTargets.allSatisfy({ $0 >= 0 && $0 < targets }) else {
                throw ctx.error("leaf_weights and leaf_targetids must be parallel, with targets in [0, \(targets))")
            }
            for i in 0 ..< nodes {
                guard (0 ..< (trueLeaf[i] ? leafWeights.count : nodes)).contains(trueIds[i]),
                      (0 ..< (falseLeaf[i] ? leafWeights.count : nodes)).contains(falseIds[i]) else {
                    throw ctx.error("node \(i) branches out of range")
                }
            }
            guard roots.allSatisfy({ $0 >= 0 && $0 < nodes }) else { throw ctx.error("a tree root is out of range") }
            guard (0 ... 3).contains(aggregate) else { throw ctx.error("unknown aggregate_function \(aggregate)") }
            guard [0, 1, 2, 3].contains(postTransform) else { throw ctx.unsupported("post_transform \(postTransform)") }
            // Membership sets, NaN-separated, in the order the BRANCH_MEMBER nodes appear.
            var values = (try doubles("membership_values", required: false) ?? [])[...]
            for i in 0 ..< nodes where modes[i] == .member {
                guard !values.isEmpty else { throw ctx.error("membership_values has fewer sets than BRANCH_MEMBER nodes") }
                var set = Set<Double>()
                while let v = values.popFirst(), !v.isNaN { set.insert(v) }
                members[i] = set
            }
        }

        /// The leaf that `row` reaches from `root`.
        func leaf(_ row: ArraySlice<Double>, root: Int, _ ctx: some NodeContext) throws -> Int {
            var node = root
            // Every step visits a new node unless the tree has a cycle.
            for _ in 0 ... modes.count {
                guard features[node] >= 0, features[node] < row.count else {
                    throw ctx.error("node \(node) reads feature \(features[node]) of \(row.count)")
                }
                let x = row[row.startIndex + features[node]], s = splits[node]
                let taken: Bool
                if x.isNaN && !missingTracksTrue.isEmpty && missingTracksTrue[node] {
                    taken = true
                } else {
                    switch modes[node] {
                    case .leq: taken = x <= s
                    case .lt: taken = x < s
                    case .gte: taken = x >= s
                    case .gt: taken = x > s
                    case .eq: taken = x == s
                    case .neq: taken = x != s
                    case .member: taken = members[node]?.contains(x) ?? false
                    }
                }
                if taken ? trueLeaf[node] : falseLeaf[node] { return taken ? trueIds[node] : falseIds[node] }
                node = taken ? trueIds[node] : falseIds[node]
            }
            throw ctx.error("tree from root \(root) has a cycle")
        }
    }

    static let treeEnsemble = OpDefinition("TreeEnsemble", domain: mlDomain, since: [5], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: [.f32, .f64, .f16], ctx)
        let targets = size(try ctx.int("n_targets"))
        return [TensorType(x.dtype, Shape([x.shape.dims?.first ?? .unknown, targets]))]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        try require(x.dtype, in: [.f32, .f64, .f16], ctx)
        guard x.rank == 2 else { throw ctx.error("X must be [N, F], got \(x.shape)") }
        let model = try TreeEnsembleModel(ctx)
        let (rows, features) = (x.shape[0], x.shape[1])
        let xs = x.doubles
        // MIN and MAX start from the extremes of X's type (what targets no leaf reaches keep).
        let largest: Double = x.dtype == .f64 ? .greatestFiniteMagnitude : (x.dtype == .f32 ? Double(Float.greatestFiniteMagnitude) : 65504)
        let initial: Double = model.aggregate == 2 ? largest : (model.aggregate == 3 ? -largest : 0)
        var out = [Double](repeating: initial, count: try resultCount([rows, model.targets], ctx))
        for r in 0 ..< rows {
            let row = xs[(r * features) ..< ((r + 1) * features)]
            for root in model.roots {
                let leaf = try model.leaf(row, root: root, ctx)
                let w = model.leafWeights[leaf], o = r * model.targets + model.leafTargets[leaf]
                switch model.aggregate {
                case 0: out[o] += w / Double(model.roots.count)
                case 1: out[o] += w
                case 2: out[o] = min(out[o], w)
                default: out[o] = max(out[o], w)
                }
            }
            applyPostTransform(model.postTransform, &out[(r * model.targets) ..< ((r + 1) * model.targets)])
        }
        return [Tensor(doubles: out, dtype: x.dtype, shape: [rows, model.targets])]
    })

    /// SOFTMAX (1), LOGISTIC (2) or SOFTMAX_ZERO (3, a softmax that leaves zeros at zero) of one row.
    static func applyPostTransform(_ kind: Int, _ row: inout ArraySlice<Double>) {
        switch kind {
        case 1, 3:
            let ignoreZeros = kind == 3
            let m = row.filter { !ignoreZeros || $0 != 0 }.max() ?? 0
            var sum = 0.0
            for i in row.indices where !ignoreZeros || row[i] != 0 { row[i] = exp(row[i] - m); sum += row[i] }
            if sum > 0 { for i in row.indices where !ignoreZeros || row[i] != 0 { row[i] /= sum } }
        case 2:
            for i in row.indices { row[i] = 1 / (1 + exp(-row[i])) }
        default:
            break
        }
    }
}
