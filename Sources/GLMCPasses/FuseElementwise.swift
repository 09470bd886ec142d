import GLMCIR
import GLMCOps

/// Groups chains of elementwise, broadcast and cheap movement ops into one kernel, and into the
/// epilogue of a producing Conv/MatMul or a reduction (TVM FuseOps style).
///
/// Algorithm (TVM's FuseOps, on one function at a time; nested If/Loop/Scan bodies first):
/// 1. Dataflow graph. The nodes are the instructions that compute at run time. Constants, and
///    instructions computed from constants alone (the ConstantOfShape weights of opset-9 models and
///    Unsqueezes of them), are not nodes: they stay operands of whatever group reads them. Every
///    node has a `FusionKind` (`OpRegistry.fusionKind(of:isConstant:)`); an edge u → v has the kind
///    of v, except that a broadcast op reads an operand of its own result shape elementwise.
/// 2. Post-dominators. Walking the body backwards, a node's immediate post-dominator is the least
///    common ancestor of its users in the post-dominator tree; a node that is returned (or unused)
///    hangs off the exit. Along the way each node records the combined (largest) edge kind on its
///    paths to that post-dominator.
/// 3. Grouping with union-find, visiting nodes in order, in two phases. A node may join the group
///    of its post-dominator `d` — taking every node on every path between them along — when:
///    - (phase 0) its group is anchored by an outEWiseFusable op or a reduction, the edges to `d`
///      are elementwise and every node on the paths, `d` included, is at most broadcast: the anchor
///      absorbs its epilogue (Conv → Add bias → Relu → Add residual; ReduceMean → Add eps → Sqrt);
///    - (phase 0) its group is at most broadcast, the edges to `d` are at most injective or a
///      reduction, the nodes strictly between are at most injective and `d`'s group is not opaque:
///      elementwise chains merge, and join a following movement op, reduction (prologue, Exp →
///      ReduceSum) or an anchored group that post-dominates them;
///    - (phase 1, so anchors finish first) its group is injective and every node up to `d` is at
///      most injective: movement ops merge with each other and with elementwise neighbours.
///    Because `d` post-dominates the node, every path out of the joined nodes ends in `d`: the
///    intermediates have no users outside the group, which has one exit. A merge that would put two
///    anchors (outEWiseFusable or reduction) in one group, or more than `maxGroupSize` nodes, is
///    refused.
/// 4. Every group of two or more nodes that is convex becomes one `glmc.Fused` (`Fusion.fuse`).
///    A member that already is a `glmc.Fused` group (say `conv_bias_relu` from an earlier pass) is
///    inlined, so the new group extends that body rather than nesting it, and the kind becomes
///    `<old kind>_epilogue`. Kinds: `elementwise`, `injective`, `conv_epilogue` / `matmul_epilogue`
///    / `gemm_epilogue`, `reduce_prologue` / `reduce_epilogue` / `reduce_prologue_epilogue`.
public struct FuseElementwise: Pass {
    public static let name = "fuse-elementwise"
    public static let summary = "Groups chains of elementwise, broadcast and cheap movement ops into one kernel, and into the epilogue of a producing Conv/MatMul or a reduction (TVM FuseOps style)."
    public init() {}

    /// TVM's max_fuse_depth: bigger groups make kernels no faster and code generation slower.
    static let maxGroupSize = 256

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        var main = module.main
        let changed = Self.fuse(in: &main, module: &module, context: context)
        module.main = main
        return changed
    }

    static func fuse(in f: inout Function, module: inout Module, context: PassContext) -> Bool {
        var changed = false
        // Nested regions first (not fusion bodies: those already are one kernel).
        for i in f.body.indices where f.body[i].op != FusedOps.fused {
            for key in f.body[i].attributes.keys.sorted() {
                switch f.body[i].attributes[key]! {
                case .graph(var g):
                    if fuse(in: &g, module: &module, context: context) { f.body[i].attributes[key] = .graph(g); changed = true }
                case .graphs(var gs):
                    var any = false
                    for j in gs.indices where fuse(in: &gs[j], module: &module, context: context) { any = true }
                    if any { f.body[i].attributes[key] = .graphs(gs); changed = true }
                default: break
                }
            }
        }
        let graph = FusionGraph(f)
        let users = f.users()
        let groups = graph.groups().filter { isFusable($0, in: f, users: users) }
        guard !groups.isEmpty else { return changed }

        // Name each group and remember its members by their first result, which survives both the
        // inlining of fused members and the reordering done by `Fusion.fuse`.
        let defining = f.definingInstructions()
        var plans: [(kind: String, members: Set<ValueID>)] = groups.map { g in
            (kindName(g, in: f, kinds: graph.kinds, defining: defining), Set(g.map { f.body[$0].results[0] }))
        }
        inlineFusedMembers(of: &plans, in: &f)
        for plan in plans {
            let indices = f.body.indices.filter { !f.body[$0].results.isEmpty && plan.members.contains(f.body[$0].results[0]) }
            Fusion.fuse(indices, in: &module, function: &f, kind: plan.kind)
        }
        context.count("groups formed", groups.count)
        context.count("instructions fused", groups.reduce(0) { $0 + $1.count })
        return true
    }

    /// A group is fused only when nothing outside it reads a result of any member but its last.
    /// The post-dominator construction guarantees that; checking it keeps a mistake there from ever
    /// producing wrong code. It also makes the group convex (`Fusion.isConvex`): every path out of
    /// the group starts at its last instruction, which comes after all the others.
    static func isFusable(_ group: [Int], in f: Function, users: [ValueID: [Int]]) -> Bool {
        guard group.count >= 2 else { return false }
        let members = Set(group)
        let outputs = Set(f.outputs)
        for i in group.dropLast() {
            for r in f.body[i].results where outputs.contains(r) || (users[r] ?? []).contains(where: { !members.contains($0) }) {
                return false
            }
        }
        return true
    }

    /// The `kind` attribute of a group, from its anchor (see the header).
    static func kindName(_ group: [Int], in f: Function, kinds: [FusionKind], defining: [ValueID: Int]) -> String {
        guard let anchor = group.first(where: { kinds[$0].isAnchor }) else {
            return group.contains { kinds[$0] == .injective } ? "injective" : "elementwise"
        }
        let inst = f.body[anchor]
        var base: String
        if inst.op == FusedOps.fused, case .string(let old)? = inst.attributes["kind"] {
            base = old
        } else if kinds[anchor] == .commReduce {
            base = "reduce"
        } else {
            base = ["Conv": "conv", "ConvTranspose": "conv", "MatMul": "matmul", "Gemm": "gemm"][inst.op.type] ?? "anchor"
        }
        let members = Set(group)
        let hasPrologue = inst.operands.contains { v in v.flatMap { defining[$0] }.map(members.contains) ?? false }
        let hasEpilogue = group.last! != anchor
        for (present, suffix) in [(hasPrologue, "_prologue"), (hasEpilogue, "_epilogue")] where present && !base.hasSuffix(suffix) {
            base += suffix
        }
        return base
    }

    /// Replaces every `glmc.Fused` member of a planned group by the instructions of its body, so the
    /// new group holds one flat body. The body's outputs keep the fused instruction's result ids;
    /// its other values get fresh ids in `f`. Bodies that cannot be flattened that simply (nested
    /// regions, an output that is an argument or returned twice) stay nested.
    static func inlineFusedMembers(of plans: inout [(kind: String, members: Set<ValueID>)], in f: inout Function) {
        var planOf: [ValueID: Int] = [:]
        for (p, plan) in plans.enumerated() { for v in plan.members { planOf[v] = p } }
        var newBody: [Instruction] = []
        newBody.reserveCapacity(f.body.count)
        for inst in f.body {
            guard inst.op == FusedOps.fused, let p = planOf[inst.results[0]],
                  case .graph(let body)? = inst.attributes["body"], body.body.allSatisfy({ $0.nestedFunctions.isEmpty }),
                  let members = Fusion.flattenedBody(of: inst, into: &f) else {
                newBody.append(inst)
                continue
            }
            for member in members {
                plans[p].members.insert(member.results[0])
                newBody.append(member)
            }
        }
        f.body = newBody
    }
}

/// The dataflow graph of one function with its post-dominator tree and the grouping of step 3.
/// Node ids are body indices; `isNode` is false for constants and constant-derived instructions.
struct FusionGraph {
    let isNode: [Bool]
    let kinds: [FusionKind]
    /// Out edges of each node: the reading node and the edge's kind.
    let edges: [[(node: Int, kind: FusionKind)]]
    /// Immediate post-dominator (nil: the exit) and the combined edge kind of the paths to it.
    var postDominator: [Int?]
    var pathKind: [FusionKind]
    var depth: [Int]

    init(_ f: Function) {
        let n = f.body.count
        let constant = f.valuesComputedFromConstants()
        let isNode = f.body.map { inst in inst.results.contains { !constant.contains($0) } }
        let kinds = f.body.map { OpRegistry.fusionKind(of: $0, isConstant: constant.contains) }
        let defining = f.definingInstructions()
        var edges = [[(node: Int, kind: FusionKind)]](repeating: [], count: n)
        var escapes = [Bool](repeating: false, count: n)
        for v in f.outputs { if let d = defining[v] { escapes[d] = true } }
        for (i, inst) in f.body.enumerated() where isNode[i] {
            for (k, operand) in inst.operands.enumerated() {
                guard let v = operand, let d = defining[v], isNode[d] else { continue }
                var kind = kinds[i]
                if kind == .broadcast, Self.readsElementwise(operand: k, of: inst, in: f) { kind = .elementwise }
                edges[d].append((i, kind))
            }
            for nested in inst.nestedFunctions {
                for c in nested.captures { if let d = defining[c.outer], isNode[d] { edges[d].append((i, .opaque)) } }
            }
        }
        self.isNode = isNode
        self.kinds = kinds
        self.edges = edges
        postDominator = [Int?](repeating: nil, count: n)
        pathKind = [FusionKind](repeating: .opaque, count: n)
        depth = [Int](repeating: 1, count: n)
        for i in (0 ..< n).reversed() where isNode[i] && !escapes[i] && !edges[i].isEmpty {
            var kind = FusionKind.elementwise
            var lca: Int? = edges[i][0].node
            for e in edges[i] {
                kind = max(kind, e.kind)
                lca = commonAncestor(lca, e.node, &kind)
            }
            postDominator[i] = lca
            pathKind[i] = kind
            depth[i] = lca.map { depth[$0] + 1 } ?? 1
        }
    }

    /// Whether a broadcasting instruction reads operand `k` elementwise: the operand certainly has
    /// the result's shape, axis by axis either the same size or symbol as the result, or the only
    /// operand that can be larger than 1 there (the others are known to be 1 or too short).
    static func readsElementwise(operand k: Int, of inst: Instruction, in f: Function) -> Bool {
        guard inst.results.count == 1, let out = f.type(of: inst.results[0]).shape.dims,
              let mine = f.type(of: inst.operands[k]!).shape.dims, mine.count == out.count else { return false }
        for axis in out.indices {
            switch (mine[axis], out[axis]) {
            case (.known(let a), .known(let b)) where a == b: continue
            case (.symbol(let a), .symbol(let b)) where a == b: continue
            default: break
            }
            for (j, other) in inst.operands.enumerated() where j != k {
                guard let other else { continue }
                guard let dims = f.type(of: other).shape.dims else { return false }
                let at = axis - (out.count - dims.count)
                if at >= 0, dims[at] != .known(1) { return false }
            }
        }
        return true
    }

    /// The least common ancestor of two post-dominator tree nodes (nil is the exit, the root),
    /// folding the path kinds climbed through into `kind`.
    func commonAncestor(_ a: Int?, _ b: Int?, _ kind: inout FusionKind) -> Int? {
        var a = a, b = b
        while a != b {
            guard let x = a, let y = b else { return nil }
            if depth[x] >= depth[y] { kind = max(kind, pathKind[x]); a = postDominator[x] }
            if depth[y] >= depth[x] { kind = max(kind, pathKind[y]); b = postDominator[y] }
        }
        return a
    }

    /// Step 3 of the header: the groups, each a sorted list of body indices (singletons included).
    func groups() -> [[Int]] {
        var groups = UnionFind(kinds: kinds, anchors: kinds.map { $0.isAnchor ? 1 : 0 })
        for phase in 0 ... 1 {
            for i in kinds.indices where isNode[i] {
                let kind = groups.kind(of: i)
                guard kind != .opaque, let d = postDominator[i], groups.find(i) != groups.find(d) else { continue }
                let edge = pathKind[i]
                let allowed: (FusionKind, Bool) -> Bool
                switch kind {
                case .outEWiseFusable, .commReduce:
                    guard phase == 0, edge == .elementwise else { continue }
                    allowed = { k, _ in k <= .broadcast }
                case .elementwise, .broadcast:
                    guard phase == 0, edge <= .injective || edge == .commReduce else { continue }
                    allowed = { k, isSink in isSink ? k != .opaque : k <= .injective }
                case .injective:
                    guard phase == 1 else { continue }
                    allowed = { k, _ in k <= .injective }
                case .opaque:
                    continue
                }
                guard let path = nodes(from: i, to: d, groups: groups, allowed: allowed) else { continue }
                groups.merge(path + [i], into: d, maxSize: FuseElementwise.maxGroupSize)
            }
        }
        var byRoot: [Int: [Int]] = [:]
        for i in kinds.indices where isNode[i] { byRoot[groups.find(i), default: []].append(i) }
        return byRoot.values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
    }

    /// Every node on a path from `source` (exclusive) to `sink` (inclusive), or nil when one of them
    /// belongs to a group whose kind `allowed(kind, isSink)` rejects.
    func nodes(from source: Int, to sink: Int, groups: UnionFind, allowed: (FusionKind, Bool) -> Bool) -> [Int]? {
        var visited = Set<Int>()
        var stack = edges[source].map(\.node)
        while let v = stack.popLast() {
            guard visited.insert(v).inserted else { continue }
            guard allowed(groups.kind(of: v), v == sink) else { return nil }
            if v != sink { stack.append(contentsOf: edges[v].map(\.node)) }
        }
        return Array(visited)
    }
}

/// Disjoint sets of nodes with each set's kind (the largest of its members), anchor count and size.
struct UnionFind {
    private var parent: [Int]
    private var kinds: [FusionKind]
    private var anchors: [Int]
    private var sizes: [Int]

    init(kinds: [FusionKind], anchors: [Int]) {
        parent = Array(kinds.indices)
        self.kinds = kinds
        self.anchors = anchors
        sizes = [Int](repeating: 1, count: kinds.count)
    }

    func find(_ i: Int) -> Int {
        var i = i
        while parent[i] != i { i = parent[i] }
        return i
    }

    func kind(of i: Int) -> FusionKind { kinds[find(i)] }

    /// Merges the groups of `nodes` into the group of `target`, unless the result would hold more
    /// than one anchor or more than `maxSize` nodes.
    mutating func merge(_ nodes: [Int], into target: Int, maxSize: Int) {
        let root = find(target)
        let roots = Set(nodes.map(find)).union([root])
        guard roots.reduce(0, { $0 + anchors[$1] }) <= 1, roots.reduce(0, { $0 + sizes[$1] }) <= maxSize else { return }
        for r in roots where r != root {
            parent[r] = root
            kinds[root] = max(kinds[root], kinds[r])
            anchors[root] += anchors[r]
            sizes[root] += sizes[r]
        }
    }
}
