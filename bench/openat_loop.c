/* The per-call benchmarks' workload: N openat() calls, timed inside the
 * process so that start-up is not counted. Prints ns per call.
 *
 *   openat_loop N              a path that does not exist (the cheapest
 *                              real system call a tracer hooks)
 *   openat_loop N FILE         FILE, N times (open + close)
 *   openat_loop N DIR distinct DIR/0 .. DIR/N-1, each once: every open is
 *                              a file's first */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    const char *path = argc > 2 ? argv[2] : "/nonexistent/substrate-bench";
    int distinct = argc > 3 && strcmp(argv[3], "distinct") == 0;
    char name[4096];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        const char *open_path = path;
        if (distinct) {
            snprintf(name, sizeof name, "%s/%ld", path, i);
            open_path = name;
        }
        int fd = openat(AT_FDCWD, open_path, O_RDONLY);
        if (fd >= 0)
            close(fd);
        else if (argc > 2)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.1f\n", ns / n);
    return 0;
}
