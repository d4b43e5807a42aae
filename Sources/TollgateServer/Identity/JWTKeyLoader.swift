import Foundation
import JWTKit
import TollgateCore

/// Turns key material (config keys, a JWKS document) into ``VerifyingKey``s with jwt-kit, once,
/// off the request path. The result is synchronous: jwt-kit's algorithms verify without awaiting,
/// so the data plane checks signatures on the event loop with no hop.
///
/// A key's algorithm is the one jwt-kit built it for (``JWTAlgorithm/name``), never the token's
/// say-so: a JWK without `alg` yields one verifier per algorithm its key type allows (RSA: RS*/PS*;
/// EC: the curve's ES*; OKP: EdDSA), none that would treat it as an HMAC secret.
enum JWTKeyLoader {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func verifier(_ algorithm: any JWTAlgorithm, keyID: String?) -> VerifyingKey {
        VerifyingKey(keyID: keyID, algorithm: algorithm.name) { input, signature in
            (try? algorithm.verify(signature, signs: input)) ?? false
        }
    }

    /// The keys of `identity.jwt.keys`, with secrets resolved.
    static func configured(_ keys: [JWTConfig.StaticKey], secrets: [String: String]) async throws -> [VerifyingKey] {
        var out: [VerifyingKey] = []
        for (i, key) in keys.enumerated() {
            let kid = JWKIdentifier(string: key.keyID ?? "config-\(i)")
            let collection = JWTKeyCollection()
            func pem() throws -> String {
                switch key.material {
                case .pemFile(let path):
                    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure(description: "cannot read \(path)") }
                    return text
                case .pemSecret(let name):
                    guard let text = secrets[name] else { throw Failure(description: "secret \(name) has no value") }
                    return text
                case .hmacSecret, .jwkSecret:
                    throw Failure(description: "not a PEM key")
                }
            }
            if case .jwkSecret(let name) = key.material {
                guard let text = secrets[name], let doc = try? JSONParser.parse(text) else {
                    throw Failure(description: "identity.jwt.keys[\(i)]: secret \(name) is not a JWK")
                }
                var jwks = doc["keys"] != nil ? doc : JSONValue.object([JSONMember("keys", .array([doc]))])
                if case .object(var members) = jwks, case .array(var items)? = jwks["keys"] {
                    // A kid from the config wins; a JWK without one gets the config's (or a made-up) id.
                    for j in items.indices {
                        guard case .object(var m) = items[j] else { continue }
                        if let kid = key.keyID {
                            m.removeAll { $0.key == "kid" }
                            m.append(JSONMember("kid", .string(kid)))
                        } else if !m.contains(where: { $0.key == "kid" }) {
                            m.append(JSONMember("kid", .string("config-\(i)")))
                        }
                        items[j] = .object(m)
                    }
                    members = [JSONMember("keys", .array(items))]
                    jwks = .object(members)
                }
                let (keys, _) = try await fromJWKS(Array(jwks.serialized.utf8))
                let matching = keys.filter { $0.algorithm == key.algorithm }
                guard !matching.isEmpty else { throw Failure(description: "identity.jwt.keys[\(i)]: the JWK is not an \(key.algorithm) key") }
                out += matching.map { VerifyingKey(keyID: key.keyID ?? $0.keyID, algorithm: $0.algorithm, verify: $0.verify) }
                continue
            }
            do {
                switch key.algorithm {
                case "HS256", "HS384", "HS512":
                    guard case .hmacSecret(let name) = key.material, let secret = secrets[name], !secret.isEmpty else {
                        throw Failure(description: "HMAC key has no secret value")
                    }
                    let digest: DigestAlgorithm = key.algorithm == "HS256" ? .sha256 : key.algorithm == "HS384" ? .sha384 : .sha512
                    // RFC 7518 §3.2: the key is at least as long as the hash.
                    let minimum = key.algorithm == "HS256" ? 32 : key.algorithm == "HS384" ? 48 : 64
                    guard secret.utf8.count >= minimum else {
                        throw Failure(description: "an \(key.algorithm) secret needs at least \(minimum) bytes")
                    }
                    await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: digest, kid: kid)
                case "RS256", "RS384", "RS512":
                    let digest: DigestAlgorithm = key.algorithm == "RS256" ? .sha256 : key.algorithm == "RS384" ? .sha384 : .sha512
                    await collection.add(rsa: try Insecure.RSA.PublicKey(pem: try pem()), digestAlgorithm: digest, kid: kid)
                case "PS256", "PS384", "PS512":
                    let digest: DigestAlgorithm = key.algorithm == "PS256" ? .sha256 : key.algorithm == "PS384" ? .sha384 : .sha512
                    await collection.add(pss: try Insecure.RSA.PublicKey(pem: try pem()), digestAlgorithm: digest, kid: kid)
                case "ES256":
                    await collection.add(ecdsa: try ES256PublicKey(pem: try pem()), kid: kid)
                case "ES384":
                    await collection.add(ecdsa: try ES384PublicKey(pem: try pem()), kid: kid)
                case "EdDSA":
                    await collection.add(eddsa: try EdDSA.PublicKey(pem: try pem()), kid: kid)
                default:
                    throw Failure(description: "unsupported alg \(key.algorithm)")
                }
                let algorithm = try await collection.getKey(for: kid)
                out.append(verifier(algorithm, keyID: key.keyID))
            } catch {
                throw Failure(description: "identity.jwt.keys[\(i)]: \(error)")
            }
        }
        return out
    }

    static let familyAlgorithms: [String: [String]] = [
        "RSA": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        "EC": ["ES256", "ES384", "ES512"],
        "OKP": ["EdDSA"],
    ]

    /// The usable keys of a JWKS document. Keys without `kid`, of an unknown type, or that jwt-kit
    /// cannot read are skipped and named in `skipped`; a document that is not a JWKS throws.
    static func fromJWKS(_ bytes: [UInt8]) async throws -> (keys: [VerifyingKey], skipped: [String]) {
        let jwks = try JSONDecoder().decode(JWKS.self, from: Data(bytes))
        var out: [VerifyingKey] = []
        var skipped: [String] = []
        let document = try? JSONParser.parse(bytes)
        for (i, jwk) in jwks.keys.enumerated() {
            guard let kid = jwk.keyIdentifier else {
                skipped.append("keys[\(i)]: no kid")
                continue
            }
            if case .array(let items)? = document?["keys"], i < items.count, case .string(let use)? = items[i]["use"], use != "sig" {
                skipped.append("\(kid.string): use \(use)")
                continue
            }
            let candidates = jwk.algorithm.map { [$0.rawValue] } ?? familyAlgorithms[jwk.keyType.rawValue] ?? []
            var names = Set<String>()
            for alg in candidates {
                let collection = JWTKeyCollection()
                do {
                    try await collection.add(jwk: jwk)
                    let algorithm = try await collection.getKey(for: kid, alg: alg)
                    guard JWTConfig.algorithms.contains(algorithm.name) || algorithm.name == "ES512",
                          names.insert(algorithm.name).inserted else { continue }
                    out.append(verifier(algorithm, keyID: kid.string))
                } catch {
                    continue
                }
            }
            if names.isEmpty { skipped.append("\(kid.string): unusable \(jwk.keyType.rawValue) key") }
        }
        return (out, skipped)
    }
}
