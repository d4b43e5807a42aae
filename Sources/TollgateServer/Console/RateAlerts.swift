import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TollgateCore

/// Evaluates `alerts.rules` every 10 s over the console's series (gathered from every loop, off the
/// hot path). A rule whose measure goes above its threshold fires once — a `warning` log line, a
/// signed webhook POST (`type: rate.firing`) and a notice in the console — and when it is back at
/// or below the threshold a recovery notice follows (`rate.recovered`). Rules whose definition a
/// reload keeps keep their episode.
final class RateAlerts: Sendable {
    private let firing = NIOLockedValueBox<Set<String>>([])
    private let notices = NIOLockedValueBox<[AlertNotice]>([])
    private let timer = NIOLockedValueBox<TimerBox?>(nil)

    /// Notices, newest first (at most 50).
    var recent: [AlertNotice] { notices.withLockedValue { $0 } }

    func start(every interval: DispatchTimeInterval = .seconds(10), evaluate: @escaping @Sendable () async -> Void) {
        let source = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        source.schedule(deadline: .now() + interval, repeating: interval)
        source.setEventHandler { Task { await evaluate() } }
        source.resume()
        timer.withLockedValue { $0 = TimerBox(source: source) }
    }

    func stop() {
        timer.withLockedValue { $0?.source.cancel(); $0 = nil }
    }

    /// Checks every rule against `snapshot`; returns the notices to send.
    func evaluate(_ rules: [AlertRule], snapshot: ConsoleSnapshot, now: Int64) -> [(AlertNotice, JSONValue)] {
        var out: [(AlertNotice, JSONValue)] = []
        for rule in rules {
            let since = now - rule.within.components.seconds
            let total = { (name: String) in snapshot.total(name, since: since) }
            var refused = snapshot.refusalColumns.reduce(0) { $0 + total($1) }
            var answered = refused + total("passed") + total("cached")
            if let route = rule.route {
                let counts = snapshot.routeTotals(route, since: since)
                (refused, answered) = (counts.refused, counts.passed + counts.refused)
            }
            let value = rule.value(total, refused: refused, answered: answered)
            let key = "\(rule.name)|\(rule.measure)|\(rule.above)"
            let wasFiring = firing.withLockedValue { $0.contains(key) }
            let isAbove = value.map { $0 > rule.above } ?? false
            guard isAbove != wasFiring, value != nil || wasFiring else { continue }
            firing.withLockedValue { if isAbove { $0.insert(key) } else { $0.remove(key) } }
            let shown = value.map { Self.format($0) } ?? "no traffic"
            let window = rule.within.compactText
            let text = isAbove
                ? "\(rule.describe) over \(window) is \(shown), above \(Self.format(rule.above))"
                : "\(rule.describe) over \(window) is back to \(shown) (threshold \(Self.format(rule.above)))"
            let notice = AlertNotice(at: now, rule: rule.name, state: isAbove ? "firing" : "recovered", text: text)
            notices.withLockedValue { $0.insert(notice, at: 0); if $0.count > 50 { $0.removeLast() } }
            let body = JSONValue.object([
                JSONMember("type", .string(isAbove ? "rate.firing" : "rate.recovered")),
                JSONMember("rule", .string(rule.name)), JSONMember("measure", .string(rule.describe)),
                JSONMember("value", value.map { .number(Self.format($0)) } ?? .null),
                JSONMember("threshold", .number(Self.format(rule.above))), JSONMember("window", .string(window)),
                JSONMember("text", .string(text)), JSONMember("at", .string(SpendControl.iso8601(now))),
            ])
            out.append((notice, body))
        }
        return out
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.2f", v)
    }
}
