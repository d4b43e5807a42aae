import Foundation
import Testing
@testable import TollgateCore

@Suite struct SecretResolverTests {
    func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-secrets-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func environmentThenDotEnvThenFile() throws {
        let dir = try tempDir()
        try "# comment\nexport FROM_DOTENV=\"dotenv-value\"\nBOTH=from-file\n".write(toFile: dir + "/.env", atomically: true, encoding: .utf8)
        try "file-value\n".write(toFile: dir + "/key.txt", atomically: true, encoding: .utf8)
        let resolver = SecretResolver(environment: ["FROM_ENV": "env-value", "BOTH": "from-env"], baseDirectory: dir)
        let values = try resolver.resolve([
            "A": .env("FROM_ENV"), "B": .env("FROM_DOTENV"), "C": .file("key.txt"), "D": .env("BOTH"),
        ]).get()
        #expect(values == ["A": "env-value", "B": "dotenv-value", "C": "file-value", "D": "from-env"])
    }

    @Test func missingSecretsNameTheReferenceNotAValue() throws {
        let dir = try tempDir()
        let resolver = SecretResolver(environment: [:], baseDirectory: dir)
        guard case .failure(let error) = resolver.resolve(["KEY": .env("PAID_KEY"), "F": .file("/nonexistent/x")]) else {
            Issue.record("expected failure")
            return
        }
        let text = error.description
        #expect(text.contains("PAID_KEY is not set"))
        #expect(text.contains("/nonexistent/x cannot be read"))
    }

    @Test func referencesParse() {
        #expect(SecretReference("env:KEY") == .env("KEY"))
        #expect(SecretReference("file:/run/secrets/k") == .file("/run/secrets/k"))
        #expect(SecretReference("env:") == nil)
        #expect(SecretReference("env:BAD-NAME") == nil)
        #expect(SecretReference("plainvalue") == nil)
    }

    @Test func literalSecretHeuristic() {
        #expect(SecretHeuristics.looksLikeLiteralSecret("sk_live_abcdef123456"))
        #expect(SecretHeuristics.looksLikeLiteralSecret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"))
        #expect(!SecretHeuristics.looksLikeLiteralSecret("json"))
        #expect(!SecretHeuristics.looksLikeLiteralSecret("a plain sentence with 3 words"))
    }
}
