import ArgumentParser
import Foundation
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCPasses

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's IR as text, a Graphviz graph, or JSON.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, dot, json }
    enum Weights: String, ExpressibleByArgument, CaseIterable { case elide, full }

    @Argument(help: "An ONNX model or glmc IR text (detected by content).")
    var model: String

    @Option(help: "Output format: text (glmc IR), dot (Graphviz dataflow), json.")
    var format: Format = .text

    @OptionGroup var passOptions: PassOptions

    @Option(help: "Weights in IR text: 'elide' prints large tensors as dense_resource<__elided__>; 'full' prints every byte (the text then reproduces the model).")
    var weights: Weights = .elide

    func run() throws {
        try reportingErrors {
            let result = try ModelLoader.load(path: model, allowUnsupported: true)
            var module = result.module
            try ModuleVerifier.verify(module)
            for u in result.unsupported {
                printWarning("unsupported op \(u.op) (\(u.count) node\(u.count == 1 ? "" : "s")): \(u.reason)")
            }
            try passOptions.optimize(&module, defaultLevel: 0)
            if (passOptions.level ?? 0) > 0 || passOptions.passes != nil {
                FileHandle.standardError.write(Data((MemoryPlanner.plan(module.main).summary + "\n").utf8))
            }
            switch format {
            case .text: print(Printer(weights: weights == .full ? .full : .elideLarge).print(module), terminator: "")
            case .dot: print(GraphvizWriter.write(module))
            case .json: print(JSONWriter.write(module))
            }
        }
    }
}

/// The dataflow of the main function as a Graphviz digraph: one box per instruction, ellipses for
/// inputs and outputs, edges labelled with the value's type.
enum GraphvizWriter {
    static func write(_ module: Module) -> String {
        let f = module.main
        var lines = ["digraph \(quoted(f.name)) {", "  rankdir=TB;", "  node [fontname=\"Helvetica\", fontsize=10];"]
        var producer: [ValueID: String] = [:]
        for (i, a) in f.arguments.enumerated() {
            lines.append("  in\(i) [shape=ellipse, label=\(quoted(f.name(of: a) + "\n" + f.type(of: a).description))];")
            producer[a] = "in\(i)"
        }
        for (i, inst) in f.body.enumerated() {
            let label = inst.constantValue != nil ? "const \(f.type(of: inst.results[0]))" : inst.op.description
            let style = inst.constantValue != nil ? "shape=note, color=gray" : "shape=box"
            lines.append("  n\(i) [\(style), label=\(quoted(label + (inst.nodeName.isEmpty ? "" : "\n" + inst.nodeName)))];")
            for case let v? in inst.operands {
                if let p = producer[v] { lines.append("  \(p) -> n\(i) [label=\(quoted(f.type(of: v).description))];") }
            }
            for r in inst.results { producer[r] = "n\(i)" }
        }
        for (i, o) in f.outputs.enumerated() {
            lines.append("  out\(i) [shape=ellipse, label=\(quoted(f.outputNames[i] + "\n" + f.type(of: o).description))];")
            if let p = producer[o] { lines.append("  \(p) -> out\(i);") }
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }
}

/// The module as JSON: opsets, metadata and functions with typed values (ids are `%<index>` in
/// each function's value table), instructions with their attributes, nested graphs inline.
enum JSONWriter {
    static func write(_ module: Module) -> String {
        let object: JSON = .object([
            "opsets": .object(module.opsets.mapValues { .int($0) }),
            "metadata": .object(module.metadata.mapValues { .string($0) }),
            "main": function(module.main),
        ])
        return object.text
    }

    static func function(_ f: Function) -> JSON {
        func value(_ v: ValueID) -> JSON {
            .object(["id": .string("%\(v.index)"), "name": .string(f.name(of: v)), "type": .string(f.type(of: v).description)])
        }
        return .object([
            "name": .string(f.name),
            "arguments": .array(f.arguments.map(value)),
            "captures": .array(f.captures.map { .object(["outer": .string("%\($0.outer.index)"), "inner": value($0.inner)]) }),
            "outputs": .array(zip(f.outputs, f.outputNames).map { v, n in
                .object(["id": .string("%\(v.index)"), "name": .string(n), "type": .string(f.type(of: v).description)])
            }),
            "instructions": .array(f.body.map { inst in
                .object([
                    "op": .string(inst.op.description),
                    "opset": .int(inst.opset),
                    "node": .string(inst.nodeName),
                    "operands": .array(inst.operands.map { $0.map { .string("%\($0.index)") } ?? .null }),
                    "results": .array(inst.results.map(value)),
                    "attributes": .object(inst.attributes.mapValues(attribute)),
                ])
            }),
        ])
    }

    static func attribute(_ a: Attribute) -> JSON {
        func tensor(_ t: TensorData) -> JSON {
            .object(["type": .string(t.type.description), "data": .string(Printer().data(t))])
        }
        switch a {
        case .int(let v): return .int(v)
        case .float(let v): return v.isFinite ? .number(Double(v)) : .string(floatText(v))
        case .string(let s): return .string(s)
        case .tensor(let t): return tensor(t)
        case .graph(let g): return function(g)
        case .ints(let v): return .array(v.map { .int($0) })
        case .floats(let v): return .array(v.map { $0.isFinite ? .number(Double($0)) : .string(floatText($0)) })
        case .strings(let v): return .array(v.map { .string($0) })
        case .tensors(let v): return .array(v.map(tensor))
        case .graphs(let v): return .array(v.map(function))
        }
    }
}

/// A minimal JSON value with deterministic (sorted-key) serialization.
indirect enum JSON {
    case null, bool(Bool), int(Int), number(Double), string(String), array([JSON]), object([String: JSON])

    var text: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let v): return String(v)
        case .number(let v): return v == v.rounded() && abs(v) < 1e15 ? String(format: "%.1f", v) : "\(v)"
        case .string(let s): return jsonQuoted(s)
        case .array(let items): return "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.keys.sorted().map { jsonQuoted($0) + ":" + fields[$0]!.text }.joined(separator: ",") + "}"
        }
    }
}

func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
