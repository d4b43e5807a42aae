/// Reads proof-of-work settings: top-level `challenge` (the signing key and difficulties) and a
/// route's `challenge` (when to ask).
enum ChallengeReader {
    static func gateway(_ node: ConfigNode, secrets: [String: SecretReference]) -> ProofOfWork.Config? {
        guard let keys = node.object(allowed: ["key", "expires", "base_difficulty", "max_difficulty"]) else { return nil }
        guard let keyNode = keys["key"] else { node.error("needs key: a secret name for signing challenges"); return nil }
        guard let key = keyNode.secretName(in: secrets) else { return nil }
        var config = ProofOfWork.Config(key: key, expires: .seconds(300), baseDifficulty: 20_000, maxDifficulty: 20_000_000)
        if let d = keys["expires"]?.duration() { config.expires = d }
        if let n = keys["base_difficulty"]?.int(min: 1) { config.baseDifficulty = n }
        if let n = keys["max_difficulty"]?.int(min: 1) { config.maxDifficulty = n }
        if config.maxDifficulty < config.baseDifficulty { keys["max_difficulty"]?.error("must be ≥ base_difficulty") }
        return config
    }

    static func route(_ node: ConfigNode) -> (when: ChallengePolicy.When, softRate: Rate)? {
        guard let keys = node.object(allowed: ["when", "soft_rate"]) else { return nil }
        let when = keys["when"].flatMap { $0.choice(["always", "over_rate"]) } == "over_rate" ? ChallengePolicy.When.overRate : .always
        return (when, keys["soft_rate"]?.rate() ?? Rate("30/min")!)
    }
}
