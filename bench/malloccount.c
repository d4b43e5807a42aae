// LD_PRELOAD shim for bench/allocs.py: counts heap allocations (malloc, calloc, realloc and the
// aligned forms) in the whole process. On SIGUSR2 it writes the count so far, as decimal text, to
// the file named by $MALLOC_COUNT_FILE. Counting is one relaxed atomic add per call.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long count;
static const char *path;

static void counted(void) { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }

void *malloc(size_t n) { counted(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { counted(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { counted(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { counted(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { counted(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    counted();
    void *p = __libc_memalign(a, n);
    if (!p) return 12;  // ENOMEM
    *out = p;
    return 0;
}

static void dump(int sig) {
    (void)sig;
    char text[32];
    int i = sizeof text;
    unsigned long n = __atomic_load_n(&count, __ATOMIC_RELAXED);
    text[--i] = '\n';
    do { text[--i] = '0' + n % 10; n /= 10; } while (n);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { ssize_t w = write(fd, text + i, sizeof text - i); (void)w; close(fd); }
}

__attribute__((constructor)) static void install(void) {
    path = getenv("MALLOC_COUNT_FILE");
    if (!path) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
