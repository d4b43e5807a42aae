import Dispatch
import Foundation
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TollgateCore
import TollgateStore

/// The running side of `identity`: the key and client indexes and their change feed, the JWT
/// verifier with its JWKS fetcher, and Tollgate's own token signer.
///
/// The change feed polls the store every ``feedInterval`` for keys and clients an operator changed
/// (from the CLI, another gateway) and applies them to the indexes; every ``usesInterval`` it hands
/// the uses counted here to the store. Neither runs on an event loop.
final class IdentityRuntime: @unchecked Sendable {
    let config: IdentityConfig
    private(set) var services: IdentityServices
    let keys: APIKeyIndex?
    let clients: OAuthClientIndex?
    let tokenEndpoint: TokenEndpoint?
    let keyStore: (any APIKeyStore)?
    let clientStore: (any OAuthClientStore)?
    let jwks: JWKSFetcher?
    let logger: Logger
    private let secrets: [String: String]
    /// Signs issued tokens (set by ``prepare()``).
    private let signer = NIOLockedValueBox<(any JWTAlgorithm)?>(nil)
    /// Tollgate's own JWKS document (the public half of the signing key).
    private(set) var ownJWKS = ""
    /// Token requests per client id and per address.
    let perClient: RateLimiter?
    let perAddress: RateLimiter?
    private var feed: DispatchSourceTimer?
    private let feedQueue = DispatchQueue(label: "tollgate.identity.feed")
    static let feedInterval: DispatchTimeInterval = .milliseconds(250)
    static let usesEvery = 4

    init(config: IdentityConfig, oauth: OAuthConfig?, secrets: [String: String], store: any SpendLedger,
         maxKeys: Int, logger: Logger) throws {
        self.config = config
        self.secrets = secrets
        self.logger = logger
        let hashSecret = config.keyHashSecret.flatMap { secrets[$0] } ?? ""
        let hasher = hashSecret.isEmpty ? nil : APIKeyHasher(secret: hashSecret)
        keyStore = store as? any APIKeyStore
        clientStore = store as? any OAuthClientStore
        if let hasher {
            keys = APIKeyIndex(hasher: hasher, records: try keyStore?.keys() ?? [],
                               shared: store is any SharedRateUsage ? SharedUses() : nil)
        } else {
            keys = nil
        }
        var verifier: JWTVerifier?
        if config.jwt != nil || oauth != nil {
            verifier = JWTVerifier(config: config.jwt ?? JWTConfig(), ring: JWTKeyRing())
        }
        if let oauth, let hasher {
            let index = OAuthClientIndex(records: try clientStore?.clients() ?? [])
            clients = index
            tokenEndpoint = TokenEndpoint(config: oauth, clients: index, hasher: hasher)
            perClient = RateLimiter(rate: oauth.perClient, burst: oauth.perClient.count, maxKeys: maxKeys)
            perAddress = RateLimiter(rate: oauth.perAddress, burst: oauth.perAddress.count, maxKeys: maxKeys)
        } else {
            clients = nil
            tokenEndpoint = nil
            perClient = nil
            perAddress = nil
        }
        if let jwt = config.jwt, let url = jwt.jwksURL, let verifier {
            jwks = try JWKSFetcher(config: jwt, url: url, ring: verifier.ring, logger: logger)
        } else {
            jwks = nil
        }
        services = IdentityServices(keys: keys, jwt: verifier, reactivationHelp: config.reactivationHelp,
                                    headerSigningSecret: config.headerSigningSecret.flatMap { secrets[$0] })
        services.clients = clients
    }

    /// Loads the configured JWT keys and the signing key (jwt-kit builds them asynchronously),
    /// before the listener opens. Throws when one cannot be read.
    func prepare() async throws {
        guard let ring = services.jwt?.ring else { return }
        var fixed = try await JWTKeyLoader.configured(config.jwt?.keys ?? [], secrets: secrets)
        if let oauth = tokenEndpoint?.config {
            let (algorithm, publicKey, jwk) = try await Self.signingKey(oauth, secrets: secrets)
            signer.withLockedValue { $0 = algorithm }
            var own = publicKey
            own.issuer = oauth.issuer
            own.audience = oauth.audience
            own.leeway = oauth.leeway
            fixed.append(own)
            ownJWKS = jwk
        }
        ring.replaceFixed(fixed)
    }

    /// The signer for issued tokens, its verifying half, and the JWKS document publishing it.
    static func signingKey(_ oauth: OAuthConfig, secrets: [String: String]) async throws -> (any JWTAlgorithm, VerifyingKey, String) {
        guard let pem = secrets[oauth.signingKeySecret], !pem.isEmpty else {
            throw JWTKeyLoader.Failure(description: "identity.oauth.signing_key: secret \(oauth.signingKeySecret) has no value")
        }
        let kid = JWKIdentifier(string: oauth.keyID)
        let signing = JWTKeyCollection()
        let verifying = JWTKeyCollection()
        var members = [JSONMember("kid", .string(oauth.keyID)), JSONMember("use", .string("sig")), JSONMember("alg", .string(oauth.algorithm))]
        do {
            switch oauth.algorithm {
            case "EdDSA":
                let key = try EdDSA.PrivateKey(pem: pem)
                await signing.add(eddsa: key, kid: kid)
                await verifying.add(eddsa: key.publicKey, kid: kid)
                members += [JSONMember("kty", .string("OKP")), JSONMember("crv", .string("Ed25519")),
                            JSONMember("x", .string(Base64URL.encode(key.publicKey.rawRepresentation)))]
            default:
                let key = try ES256PrivateKey(pem: pem)
                await signing.add(ecdsa: key, kid: kid)
                await verifying.add(ecdsa: key.publicKey, kid: kid)
                guard let p = key.publicKey.parameters else { throw JWTKeyLoader.Failure(description: "no EC parameters") }
                members += [JSONMember("kty", .string("EC")), JSONMember("crv", .string("P-256")),
                            JSONMember("x", .string(p.x)), JSONMember("y", .string(p.y))]
            }
        } catch let error as JWTKeyLoader.Failure {
            throw error
        } catch {
            throw JWTKeyLoader.Failure(description: "identity.oauth.signing_key: not a PEM \(oauth.algorithm == "EdDSA" ? "Ed25519" : "P-256") private key")
        }
        let signer = try await signing.getKey(for: kid)
        let verifier = JWTKeyLoader.verifier(try await verifying.getKey(for: kid), keyID: oauth.keyID)
        let jwks = JSONValue.object([JSONMember("keys", .array([.object(members)]))]).serialized
        return (signer, verifier, jwks)
    }

    /// A signed compact JWS of `claims` with Tollgate's key.
    func sign(_ claims: JSONValue) -> String? {
        guard let oauth = tokenEndpoint?.config, let signer = signer.withLockedValue({ $0 }) else { return nil }
        let header = JSONValue.object([JSONMember("alg", .string(oauth.algorithm)), JSONMember("typ", .string("JWT")),
                                       JSONMember("kid", .string(oauth.keyID))]).serialized
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.serialized.utf8))
        guard let signature = try? signer.sign(Array(input.utf8)) else { return nil }
        return input + "." + Base64URL.encode(signature)
    }

    /// Writes to the store happen here, never on an event loop.
    private let writer = DispatchQueue(label: "tollgate.identity.writer")

    /// Makes a per-install key for `grant`, stores it (write-through to the index, so it works at
    /// once), and answers 201 with the key — the only time it is shown. `done` runs on the writer.
    func issueClientKey(_ grant: ClientKeyGrant, route: String, requestID: String, done: @escaping @Sendable (Response) -> Void) {
        guard let keys else {
            return done(.problem(.internalError, requestID: requestID, by: .stage(.internal), note: "no key index"))
        }
        writer.async { [self] in
            let now = Int64(Date().timeIntervalSince1970)
            let text = APIKeyText.generate(.install)
            var record = APIKeyRecord(id: text.id, kind: .install, name: "issued by \(route)", owner: "", scopes: grant.scopes,
                                      routes: grant.routes, hash: keys.hasher.hash(text.text), createdAt: now,
                                      expiresAt: grant.lifetime.map { now + $0.components.seconds }, maxUses: grant.maxUses)
            do {
                try keyStore?.insertKey(record)
                record = try keyStore?.key(id: text.id) ?? record
            } catch {
                logger.error("client key not stored", metadata: ["error": "\(error)", "request_id": "\(requestID)"])
                return done(.problem(.internalError, requestID: requestID, by: .stage(.internal), note: "client key not stored"))
            }
            keys.apply([record])
            var members = [JSONMember("key", .string(text.text)), JSONMember("id", .string(text.id)),
                           JSONMember("routes", .array(grant.routes.map { .string($0) }))]
            members.append(JSONMember("expires_at", record.expiresAt.map { .string(SpendControl.iso8601($0)) } ?? .null))
            members.append(JSONMember("max_uses", record.maxUses.map { .number(String($0)) } ?? .null))
            var response = Response.served(201, contentType: "application/json", body: ByteBuffer(string: JSONValue.object(members).serialized),
                                           by: .stage(.issueClientKey))
            response.note = "client key \(text.id) issued"
            done(response)
        }
    }

    /// Revokes a client key after its "signed up" event; in force here at once, elsewhere with the feed.
    func revokeClientKey(_ id: String, requestID: String) {
        writer.async { [self] in
            let now = Int64(Date().timeIntervalSince1970)
            do {
                _ = try keyStore?.updateKey(id: id) { $0.revokedAt = $0.revokedAt ?? now }
                if let record = try keyStore?.key(id: id) { keys?.apply([record]) }
                logger.info("client key revoked after its event", metadata: ["key_id": "\(id)", "request_id": "\(requestID)"])
            } catch {
                logger.error("client key not revoked", metadata: ["key_id": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Starts the change feed and the JWKS schedule (on `loop`); completes after the first JWKS fetch.
    func start(on loop: LoopContext) -> EventLoopFuture<Void> {
        if keyStore != nil || clientStore != nil, keys != nil || clients != nil {
            let timer = DispatchSource.makeTimerSource(queue: feedQueue)
            var tick = 0
            timer.schedule(deadline: .now() + Self.feedInterval, repeating: Self.feedInterval)
            timer.setEventHandler { [self] in
                tick += 1
                pollChanges(flushUses: tick % Self.usesEvery == 0)
            }
            timer.resume()
            feed = timer
        }
        return jwks?.start(on: loop) ?? loop.eventLoop.makeSucceededVoidFuture()
    }

    /// A change was announced (a store notification): read the feed now instead of at the next tick.
    func pollSoon() {
        guard keyStore != nil || clientStore != nil else { return }
        feedQueue.async { [self] in pollChanges(flushUses: false) }
    }

    /// One round of the change feed.
    func pollChanges(flushUses: Bool) {
        do {
            if let keys, let keyStore {
                keys.apply(try keyStore.keyChanges(after: keys.appliedVersion))
                if flushUses { try keyStore.addKeyUses(keys.drainUses()) }
            }
            if let clients, let clientStore { clients.apply(try clientStore.clientChanges(after: clients.appliedVersion)) }
        } catch {
            logger.warning("identity change feed failed; retrying", metadata: ["error": "\(error)"])
        }
    }

    func stop() {
        feed?.cancel()
        feed = nil
        if let keys, let keyStore { try? keyStore.addKeyUses(keys.drainUses()) }
    }
}
