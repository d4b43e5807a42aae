import NIOHTTP1
import TollgateCore

/// Policies read NIO's header storage directly; nothing is copied per request.
extension HTTPHeaders: HeaderFields {
    public func forEachField(_ body: (String, String) -> Bool) {
        for (name, value) in self where !body(name, value) { return }
    }
}
