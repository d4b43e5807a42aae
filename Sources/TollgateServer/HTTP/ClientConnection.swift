/// An open client connection as shutdown sees it, whatever its protocol (``ClientConnectionHandler``
/// for HTTP/1.1, ``HTTP2Connection``). Each registers itself in its loop's `connections`.
protocol ClientConnection: AnyObject {
    /// Shutdown began: close now if nothing is being answered, else once the answers are written.
    func drain()
    /// The shutdown grace is over: close whatever the state.
    func forceClose()
}
