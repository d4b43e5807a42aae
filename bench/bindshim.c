// LD_PRELOAD shim for the flood benchmark: binds every IPv4 socket to $BIND_ADDR before it
// connects, so a wrk process can play a client with its own loopback address (127.0.0.x).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *source = getenv("BIND_ADDR");
    if (source && addr->sa_family == AF_INET) {
        struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = 0 };
        if (inet_pton(AF_INET, source, &local.sin_addr) == 1) bind(fd, (struct sockaddr *)&local, sizeof local);
    }
    return real(fd, addr, len);
}
