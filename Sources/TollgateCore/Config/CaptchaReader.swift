/// Reads top-level `captcha`.
enum CaptchaReader {
    static func read(_ node: ConfigNode, secrets: [String: SecretReference]) -> CaptchaPolicy.Config? {
        guard let keys = node.object(allowed: ["provider", "siteverify_url", "secret", "timeout", "on_error", "remember"]) else { return nil }
        var provider = CaptchaPolicy.Config.Provider.turnstile
        if let p = keys["provider"] {
            guard let parsed = p.oneOf(CaptchaPolicy.Config.Provider.self) else { return nil }
            provider = parsed
        }
        guard let secretNode = keys["secret"] else { node.error("needs secret: a secret name"); return nil }
        guard let secret = secretNode.secretName(in: secrets) else { return nil }
        var url: UpstreamURL
        if let u = keys["siteverify_url"] {
            guard let parsed = u.url() else { return nil }
            url = parsed
        } else {
            url = try! UpstreamURL(CaptchaPolicy.Config.defaultURL(provider))
        }
        let onError = keys["on_error"].flatMap { $0.choice(["refuse", "allow"], hint: " (refuse fails closed)") } ?? "refuse"
        return CaptchaPolicy.Config(provider: provider, siteverifyURL: url, secret: secret,
                                    timeout: keys["timeout"]?.duration() ?? .seconds(3), failOpen: onError == "allow",
                                    remember: keys["remember"]?.duration() ?? .seconds(600))
    }
}
