/* Creates and writes argv[1] with raw system calls only (no libc stdio,
 * no open/write wrappers): what a static binary that bypasses any
 * LD_PRELOAD tracer does. Built static with musl-gcc by tests/files.rs. */
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    long fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return 3;
    static const char data[] = "written by raw syscalls\n";
    if (syscall(SYS_write, fd, data, sizeof data - 1) != (long)(sizeof data - 1))
        return 4;
    if (syscall(SYS_close, fd) != 0)
        return 5;
    return 0;
}
