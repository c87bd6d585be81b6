/* Writes an anonymous file (O_TMPFILE in the dir argv[1]) and gives it the
 * name argv[2] with linkat: the file appears at once, already written.
 * Built static with musl-gcc by tests/files.rs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    long fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return 3;
    if (syscall(SYS_write, fd, "anonymous\n", 10) != 10)
        return 4;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%ld", fd);
    if (syscall(SYS_linkat, AT_FDCWD, proc, AT_FDCWD, argv[2], AT_SYMLINK_FOLLOW) != 0)
        return 5;
    return syscall(SYS_close, fd) == 0 ? 0 : 6;
}
