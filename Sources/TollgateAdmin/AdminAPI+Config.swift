import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore

/// `/v1/config`: check a candidate config without applying it, and reload the config file.
extension AdminAPI {
    func addConfigRoutes(_ v1: RouterGroup<AdminRequestContext>) {
        v1.post("config/validate") { request, context in
            try context.require(.write)
            var request = request
            let buffer = try await request.collectBody(upTo: 1 << 20)
            guard buffer.readableBytes > 0 else { throw AdminProblem.invalid([("body", "required: the candidate config as YAML text")]) }
            guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
                return json(Self.verdict(errors: [ConfigIssue(severity: .error, path: "", line: nil, message: "the body is not UTF-8 text")],
                                         warnings: []))
            }
            do throws(ConfigError) {
                let loaded = try ConfigLoader.load(yaml: text, baseDirectory: config.baseDirectory)
                let restart = ReloadPlan.restartOnly(config, loaded.config).map {
                    ConfigIssue(severity: .warning, path: $0.path, line: nil, message: $0.message)
                }
                return json(Self.verdict(errors: [], warnings: loaded.warnings + restart))
            } catch {
                return json(Self.verdict(errors: error.issues, warnings: []))
            }
        }
        v1.post("config/reload") { _, context in
            try context.require(.write)
            switch await live.reload() {
            case .applied(let warnings):
                audit(context, "config.reload", "applied")
                return json(.object([JSONMember("reloaded", .bool(true)), JSONMember("warnings", .array(warnings.map(Self.issue)))]))
            case .refused(let errors):
                audit(context, "config.reload", "refused")
                throw AdminProblem.invalid(errors.map { ($0.path.isEmpty ? "config" : $0.path, ($0.line.map { "line \($0): " } ?? "") + $0.message) },
                                           code: "reload-refused", detail: "The config was not reloaded; the running config is unchanged.")
            }
        }
    }

    static func verdict(errors: [ConfigIssue], warnings: [ConfigIssue]) -> JSONValue {
        .object([JSONMember("valid", .bool(errors.isEmpty)), JSONMember("errors", .array(errors.map(issue))),
                 JSONMember("warnings", .array(warnings.map(issue)))])
    }

    static func issue(_ i: ConfigIssue) -> JSONValue {
        .object([JSONMember("path", .string(i.path)), JSONMember("line", i.line.map { .number(String($0)) } ?? .null),
                 JSONMember("message", .string(i.message))])
    }
}
