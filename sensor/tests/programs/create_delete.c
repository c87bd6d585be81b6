/* Creates argv[1], writes a byte, closes and unlinks it with raw system
 * calls, and prints how long that took in nanoseconds: the file never
 * reaches a diff of the upper layer, the trace must still have it.
 * Built static with musl-gcc by tests/files.rs. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return 3;
    if (syscall(SYS_write, fd, "x", 1) != 1)
        return 4;
    if (syscall(SYS_close, fd) != 0)
        return 5;
    if (syscall(SYS_unlinkat, AT_FDCWD, argv[1], 0) != 0)
        return 6;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
    printf("%lld\n", ns);
    return 0;
}
