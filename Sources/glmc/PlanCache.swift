import Foundation
import GLMCPlan

/// The plan cache of `glmc run MODEL --engine cpu`: compiling a model (passes, code generation and
/// above all the C compiler) costs far more than loading a plan, so the plan built for a model and a
/// set of options is kept in `$GLMC_CACHE_DIR` (else `$XDG_CACHE_HOME/glmc`, else `~/.cache/glmc`),
/// under `plans/<key>.plan`.
///
/// The key is the SHA-256 of everything the plan depends on: the model file's own SHA-256, the
/// options that shape the plan (pipeline, bound input shapes, ...), the C compiler asked for, and the
/// identity of this glmc executable (path, size, modification time), so that a rebuilt glmc never
/// reuses plans of an older code generator. A cached plan is read like any plan (checksum
/// verified); one that cannot be read is rebuilt with a warning. The cache keeps the
/// `capacity` most recently written plans.
struct PlanCache {
    let directory: String
    static let capacity = 256

    /// The cache folder, or nil (with a warning) when it cannot be created: the run goes on uncached.
    static func standard() -> PlanCache? {
        let env = ProcessInfo.processInfo.environment
        let root: String
        if let dir = env["GLMC_CACHE_DIR"], !dir.isEmpty {
            root = dir
        } else if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            root = xdg + "/glmc"
        } else {
            root = NSHomeDirectory() + "/.cache/glmc"
        }
        let plans = root + "/plans"
        do {
            try FileManager.default.createDirectory(atPath: plans, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            printWarning("plan cache disabled: cannot create \(plans): \(error.localizedDescription)")
            return nil
        }
        return PlanCache(directory: plans)
    }

    /// The key for a model (its SHA-256 in hex) compiled with `options` (one string per setting).
    static func key(modelSha256: String, options: [String]) -> String {
        var parts = ["glmc-plan-cache-v1", modelSha256, executableIdentity()]
        parts += options
        parts.append("CC=" + (ProcessInfo.processInfo.environment["CC"] ?? ""))
        return SHA256Digest.hex(SHA256Digest.hash(Array(parts.joined(separator: "\n").utf8)))
    }

    func path(for key: String) -> String { directory + "/" + key + ".plan" }

    /// The cached plan for `key`, or nil when there is none or it cannot be read (then it is removed).
    func lookup(_ key: String) -> PlanFile? {
        let file = path(for: key)
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        do {
            return try PlanReader.read(path: file)
        } catch let e as PlanError {
            printWarning("ignoring unreadable cached plan (\(e.message)); rebuilding it")
        } catch {
            printWarning("ignoring unreadable cached plan \(file); rebuilding it")
        }
        try? FileManager.default.removeItem(atPath: file)
        return nil
    }

    /// Stores `plan` under `key` (atomically) and trims the cache to `capacity` plans. A failure to
    /// store is a warning: the run itself has what it needs.
    func store(_ plan: PlanFile, key: String) {
        do {
            try PlanWriter.write(plan, to: path(for: key))
        } catch let e as PlanError {
            printWarning("plan cache: \(e.message)")
            return
        } catch {
            printWarning("plan cache: cannot write \(path(for: key))")
            return
        }
        trim()
    }

    /// Removes the least recently written plans beyond `capacity`.
    func trim() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return }
        let plans = names.filter { $0.hasSuffix(".plan") }
        guard plans.count > Self.capacity else { return }
        let dated = plans.map { name -> (String, Date) in
            let file = directory + "/" + name
            let date = (try? fm.attributesOfItem(atPath: file)[.modificationDate] as? Date) ?? .distantPast
            return (file, date)
        }
        for (file, _) in dated.sorted(by: { $0.1 < $1.1 }).prefix(plans.count - Self.capacity) {
            try? fm.removeItem(atPath: file)
        }
    }

    /// This executable's path, size and modification time: changes whenever glmc is rebuilt.
    static func executableIdentity() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: exe) else { return exe }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(exe) \(size) \(modified)"
    }
}
