/* Opens argv[1] for reading through io_uring (IORING_OP_OPENAT: no open
 * system call at all) and copies it to stdout; prints "open: -ERRNO" and
 * exits 1 when the open fails. Raw io_uring_setup/io_uring_enter, no
 * liburing. Built static with musl-gcc by tests/policy_enforce.rs. */
#include <fcntl.h>

#include "../../sensor/tests/programs/uring.h"

int main(int argc, char **argv) {
    if (argc != 2 || setup() != 0)
        return 2;
    struct io_uring_sqe sqe;
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = IORING_OP_OPENAT;
    sqe.fd = AT_FDCWD;
    sqe.addr = (uint64_t)(uintptr_t)argv[1];
    sqe.open_flags = O_RDONLY | O_CLOEXEC;
    int fd = run(&sqe);
    if (fd < 0) {
        char line[32];
        int n = 0, value = -fd;
        char digits[12];
        int count = 0;
        do {
            digits[count++] = '0' + value % 10;
            value /= 10;
        } while (value);
        memcpy(line, "open: -", 7);
        n = 7;
        while (count)
            line[n++] = digits[--count];
        line[n++] = '\n';
        write(1, line, n);
        return 1;
    }
    char buffer[4096];
    ssize_t got;
    while ((got = read(fd, buffer, sizeof buffer)) > 0)
        write(1, buffer, got);
    return 0;
}
