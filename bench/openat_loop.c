/* The per-call benchmark's workload: N openat() calls on a path that does
 * not exist (the cheapest real system call a tracer hooks), timed inside
 * the process so that start-up is not counted. Prints ns per call. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = openat(AT_FDCWD, "/nonexistent/substrate-bench", O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.1f\n", ns / n);
    return 0;
}
