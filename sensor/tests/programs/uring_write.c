/* Creates and writes argv[1] through io_uring (IORING_OP_OPENAT, then
 * IORING_OP_WRITE, then IORING_OP_CLOSE): no open/write/close system call
 * at all. Raw io_uring_setup/io_uring_enter, no liburing. Built static
 * with musl-gcc by tests/files.rs. */
#include <fcntl.h>

#include "uring.h"

int main(int argc, char **argv) {
    if (argc != 2 || setup() != 0)
        return 2;
    struct io_uring_sqe sqe;
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = IORING_OP_OPENAT;
    sqe.fd = AT_FDCWD;
    sqe.addr = (uint64_t)(uintptr_t)argv[1];
    sqe.open_flags = O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC;
    sqe.len = 0644; /* the mode */
    int fd = run(&sqe);
    if (fd < 0)
        return 3;
    static const char data[] = "written through io_uring\n";
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = IORING_OP_WRITE;
    sqe.fd = fd;
    sqe.addr = (uint64_t)(uintptr_t)data;
    sqe.len = sizeof data - 1;
    if (run(&sqe) != (int)(sizeof data - 1))
        return 4;
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = IORING_OP_CLOSE;
    sqe.fd = fd;
    if (run(&sqe) != 0)
        return 5;
    return 0;
}
