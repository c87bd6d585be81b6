/* Creates and removes argv[2] files in the dir argv[1] as fast as it can:
 * more events than fanotify's queue (16384) holds while nobody reads.
 * Built static with musl-gcc by tests/files.rs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    long count = atol(argv[2]);
    char path[4096];
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
        long fd = syscall(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 || syscall(SYS_close, fd) != 0)
            return 3;
    }
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
        if (syscall(SYS_unlinkat, AT_FDCWD, path, 0) != 0)
            return 4;
    }
    return 0;
}
